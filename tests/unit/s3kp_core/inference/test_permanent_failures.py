"""Answers the client does not retry: client errors, redirects; and the key never shows in them."""

from __future__ import annotations

from typing import Any

import pytest
import responses
from s3kp_core import errors
from s3kp_core.errors import EndpointUnavailable, PermanentError, TransientError

from tests.unit.s3kp_core.inference.builders import (
    API_KEY,
    ENDPOINT,
    JPEG,
    OK_BODY,
    FakeTime,
    assert_key_hidden,
    client,
)

# --- failures that are not retried ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, {"message": "Could not load input image. Cause: bad"}, errors.INFERENCE_REJECTED),
        (404, {"message": "Model not found"}, errors.INFERENCE_REJECTED),
        (413, {"message": "Payload too large"}, errors.INFERENCE_REJECTED),
        (
            422,
            {"detail": [{"loc": ["query", "confidence"], "msg": "not a number"}]},
            errors.INFERENCE_REJECTED,
        ),
    ],
)
def test_client_errors_are_permanent_and_not_retried(
    mocked: responses.RequestsMock, fake_time: FakeTime, status: int, body: dict[str, Any], code: str
) -> None:
    mocked.post(ENDPOINT, json=body, status=status)

    with pytest.raises(PermanentError) as raised:
        client(fake_time).predict(JPEG)

    assert raised.value.code == code
    assert raised.value.message.startswith(f"inference endpoint rejected the request (HTTP {status}): ")
    first_value = next(iter(body.values()))
    expected = first_value if isinstance(first_value, str) else "not a number"
    assert expected in raised.value.message
    assert len(mocked.calls) == 1
    assert fake_time.sleeps == []
    assert_key_hidden(raised.value)


def test_a_server_message_echoing_the_key_is_redacted(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, json={"message": f"API key {API_KEY} is not valid for my-pose"}, status=401)

    with pytest.raises(EndpointUnavailable) as raised:
        client(fake_time).predict(JPEG)

    assert raised.value.detail is not None
    assert "API key *** is not valid" in raised.value.detail
    assert_key_hidden(raised.value)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "inference endpoint refused the API key (HTTP 401)"),
        (402, "inference endpoint refused the request: out of credits (HTTP 402)"),
        (
            403,
            "inference endpoint refused the API key: no access, or the quota is used up (HTTP 403)",
        ),
    ],
)
def test_a_refused_key_is_the_endpoints_side_not_retried_now_and_not_permanent(
    mocked: responses.RequestsMock, fake_time: FakeTime, status: int, message: str
) -> None:
    """Issue 19: a wrong, rotated or exhausted key is the operator's to fix; the upload must still be
    waiting then, so it is an `EndpointUnavailable` (the message is deferred), not a recorded failure."""
    mocked.post(ENDPOINT, json={"message": "Unauthorized api_key"}, status=status)

    with pytest.raises(EndpointUnavailable) as raised:
        client(fake_time).predict(JPEG)

    assert (raised.value.code, raised.value.message) == (errors.INFERENCE_UNAUTHORIZED, message)
    assert not raised.value.permanent
    assert len(mocked.calls) == 1  # a key does not fix itself within seconds
    assert_key_hidden(raised.value)


def test_a_redirect_is_not_followed(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    mocked.post(ENDPOINT, status=302, headers={"Location": "https://elsewhere.test/"})

    with pytest.raises(PermanentError) as raised:
        client(fake_time).predict(JPEG)

    assert "HTTP 302" in raised.value.message
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("body", [{"predictions": "none"}, {"message": "ok"}, []])
def test_a_200_with_the_wrong_shape_is_retried_then_reported_as_a_bad_response(
    mocked: responses.RequestsMock, fake_time: FakeTime, body: object
) -> None:
    """A gateway's 200 that breaks the contract is the endpoint's fault, not the image's: retried like a
    5xx, and `inference_bad_response` is a TransientError (recorded only when deliveries run out)."""
    mocked.post(ENDPOINT, json=body)

    with pytest.raises(TransientError) as raised:
        client(fake_time, max_attempts=3).predict(JPEG)

    assert raised.value.code == errors.INFERENCE_BAD_RESPONSE
    assert raised.value.message == "inference endpoint's answer breaks the response contract (3 attempts)"
    assert raised.value.detail is not None
    assert "does not follow the contract" in raised.value.detail
    assert len(mocked.calls) == 3


def test_a_200_with_the_wrong_shape_then_a_good_answer_succeeds(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, json={"message": "ok"})
    mocked.post(ENDPOINT, json=OK_BODY)

    result = client(fake_time).predict(JPEG)

    assert result.attempts == 2
    assert len(result.predictions) == 1
