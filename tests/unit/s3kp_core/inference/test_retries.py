"""Answers the client retries: which, how long it waits (backoff, jitter, Retry-After), the deadline."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import pytest
import requests
import responses
from s3kp_core import errors
from s3kp_core.errors import TransientError
from s3kp_core.inference import InferenceClient

from tests.unit.s3kp_core.inference.builders import (
    API_KEY,
    ENDPOINT,
    JPEG,
    OK_BODY,
    FakeTime,
    assert_key_hidden,
    client,
    settings,
)

# --- retried failures -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_until_success(
    mocked: responses.RequestsMock, fake_time: FakeTime, status: int
) -> None:
    mocked.post(ENDPOINT, json={"message": "busy"}, status=status)
    mocked.post(ENDPOINT, json={"message": "busy"}, status=status)
    mocked.post(ENDPOINT, json=OK_BODY)

    result = client(fake_time).predict(JPEG)

    assert result.attempts == 3
    assert len(mocked.calls) == 3
    assert fake_time.sleeps == [0.5, 1.0]  # the largest jitter: base * 2^(n-1)


@pytest.mark.parametrize(
    "failure",
    [requests.ConnectTimeout("connect timed out"), requests.ReadTimeout("read timed out"),
     requests.ConnectionError(f"Max retries exceeded with url: /my-pose/3?api_key={API_KEY}")],
)  # fmt: skip
def test_timeouts_and_connection_errors_are_retried(
    mocked: responses.RequestsMock, fake_time: FakeTime, failure: Exception
) -> None:
    mocked.post(ENDPOINT, body=failure)
    mocked.post(ENDPOINT, json=OK_BODY)

    assert client(fake_time).predict(JPEG).attempts == 2


def test_retries_stop_as_soon_as_the_caller_says_to_give_up(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    """A circuit breaker that learns, during this call's retries, that the endpoint is failing (another
    call opened it) makes this one stop: no further attempt, no further wait."""
    mocked.post(ENDPOINT, json={"message": "busy"}, status=503)
    answers = iter([False, True])

    with pytest.raises(errors.EndpointUnavailable) as raised:
        client(fake_time).predict(JPEG, give_up=lambda: next(answers))

    assert len(mocked.calls) == 2
    assert fake_time.sleeps == [0.5]
    assert raised.value.message.endswith("(2 attempts)")
    assert raised.value.detail is not None
    assert raised.value.detail.endswith("; stopped retrying: another call found the endpoint failing")


def test_exhausted_retries_are_transient_with_the_last_failure_and_no_key(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, body=requests.ConnectionError(f"refused: {ENDPOINT}?api_key={API_KEY}&format=json"))
    mocked.post(ENDPOINT, json={"message": "Model not ready"}, status=503)

    with pytest.raises(TransientError) as raised:
        client(fake_time, max_attempts=4).predict(JPEG)

    assert raised.value.code == errors.INFERENCE_UNAVAILABLE
    # One short sentence is stored for people; what happened goes to the log.
    assert raised.value.message == "inference endpoint unavailable (HTTP 503) (4 attempts)"
    assert raised.value.detail is not None
    assert "after 4 attempt(s)" in raised.value.detail
    assert "HTTP 503: Model not ready" in raised.value.detail
    assert len(mocked.calls) == 4
    assert fake_time.sleeps == [0.5, 1.0, 2.0]
    assert_key_hidden(raised.value)


def test_a_connection_error_message_is_redacted(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    mocked.post(ENDPOINT, body=requests.ConnectionError(f"refused: {ENDPOINT}?api_key={API_KEY}&format=json"))

    with pytest.raises(TransientError) as raised:
        client(fake_time, max_attempts=1).predict(JPEG)

    assert raised.value.detail is not None
    assert "api_key=***" in raised.value.detail
    assert "?" not in raised.value.message
    assert "://" not in raised.value.message
    assert_key_hidden(raised.value)


def test_a_200_that_is_not_json_is_retried_then_reported_as_a_bad_response(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, body="<html>502 Bad Gateway</html>", content_type="text/html")

    with pytest.raises(TransientError) as raised:
        client(fake_time, max_attempts=2).predict(JPEG)

    assert raised.value.code == errors.INFERENCE_BAD_RESPONSE
    assert raised.value.message == "inference endpoint answered with a body that is not JSON (2 attempts)"
    assert raised.value.detail is not None
    assert "not JSON: <html>502 Bad Gateway</html>" in raised.value.detail
    assert len(mocked.calls) == 2


def test_backoff_doubles_up_to_the_cap(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    mocked.post(ENDPOINT, status=500)

    with pytest.raises(TransientError):
        client(fake_time, max_attempts=7, backoff_base=0.5, backoff_cap=4.0).predict(JPEG)

    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_full_jitter_stays_within_zero_and_the_exponential_ceiling(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, status=503)

    with pytest.raises(TransientError):
        client(fake_time, largest_jitter=False, max_attempts=40, backoff_base=0.5, backoff_cap=8.0).predict(
            JPEG
        )

    ceilings = [min(8.0, 0.5 * 2**n) for n in range(39)]
    assert len(fake_time.sleeps) == 39
    assert all(0 <= sleep <= ceiling for sleep, ceiling in zip(fake_time.sleeps, ceilings, strict=True))
    assert len(set(fake_time.sleeps)) > 30  # actually random, not the ceiling every time


@pytest.mark.parametrize(("header", "expected"), [("3", 3.0), ("0", 0.0), ("120", 8.0), ("soon", 0.5)])
def test_retry_after_seconds_are_honoured_and_capped(
    mocked: responses.RequestsMock, fake_time: FakeTime, header: str, expected: float
) -> None:
    mocked.post(ENDPOINT, status=429, headers={"Retry-After": header}, json={"message": "slow down"})
    mocked.post(ENDPOINT, json=OK_BODY)

    client(fake_time, backoff_cap=8.0).predict(JPEG)

    assert fake_time.sleeps == [expected]  # an unreadable header falls back to the backoff


def test_retry_after_as_an_http_date_is_honoured(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    in_five_seconds = email.utils.formatdate(time.time() + 5, usegmt=True)
    mocked.post(ENDPOINT, status=503, headers={"Retry-After": in_five_seconds})
    mocked.post(ENDPOINT, json=OK_BODY)

    client(fake_time).predict(JPEG)

    (slept,) = fake_time.sleeps
    assert 3.0 <= slept <= 5.0  # the header has a one-second resolution


def test_no_attempt_starts_after_the_deadline(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    """GIVEN backoffs of 0.5 s then 1 s WHEN the deadline is 1.2 s away THEN the second wait would pass
    it, so the client gives up after two attempts instead of five, without sleeping past the deadline."""
    mocked.post(ENDPOINT, status=503, json={"message": "Model not ready"})

    with pytest.raises(TransientError) as raised:
        client(fake_time).predict(JPEG, deadline=fake_time.now + 1.2)

    assert len(mocked.calls) == 2
    assert fake_time.sleeps == [0.5]
    assert raised.value.code == errors.INFERENCE_UNAVAILABLE
    assert raised.value.detail is not None
    assert "no time left" in raised.value.detail


def test_a_deadline_already_passed_makes_no_request(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    with pytest.raises(TransientError) as raised:
        client(fake_time).predict(JPEG, deadline=fake_time.now - 1)

    assert len(mocked.calls) == 0
    assert raised.value.message == "no time left to call the inference endpoint"


def test_timeouts_are_shortened_to_end_by_the_deadline(fake_time: FakeTime) -> None:
    seen: list[object] = []

    class RecordingSession(requests.Session):
        def post(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            seen.append(kwargs["timeout"])
            raise requests.ReadTimeout("slow")

    inference = InferenceClient(
        settings(connect_timeout=3.05, read_timeout=30.0, max_attempts=1),
        session=RecordingSession(), sleep=fake_time.sleep, clock=fake_time.clock,
    )  # fmt: skip

    with pytest.raises(TransientError):
        inference.predict(JPEG)
    with pytest.raises(TransientError):
        inference.predict(JPEG, deadline=fake_time.now + 2.0)

    assert seen == [(3.05, 30.0), (2.0, 2.0)]


REFUSED = (
    "HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /p/1?api_key=*** "
    "(Caused by "
    "NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=9): Failed to establish a new connection: "
    '[Errno 111] Connection refused"))'
)
UNRESOLVED = (
    "NameResolutionError(\"Failed to resolve 'nowhere.invalid' ([Errno -2] Name or service not known)\")"
)


@pytest.mark.parametrize(
    ("error_text", "cause"),
    [
        (REFUSED, "connection refused"),
        (UNRESOLVED, "host name not found"),
        (
            "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))",
            "connection reset",
        ),
        (
            "RemoteDisconnected('Remote end closed connection without response')",
            "connection closed without an answer",
        ),
        ("SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED]'))", "TLS handshake failed"),
        ("something else entirely", "connection failed"),
    ],
)
def test_a_connection_failure_is_stored_as_a_short_cause_without_the_url(
    mocked: responses.RequestsMock, fake_time: FakeTime, error_text: str, cause: str
) -> None:
    """Issue 19: the stored reason read `...&format=json&api_***ey=*** (Caused by NewConnectionError(...`."""
    mocked.post(ENDPOINT, body=requests.ConnectionError(error_text))

    with pytest.raises(TransientError) as raised:
        client(fake_time, max_attempts=4).predict(JPEG)

    attempts = "1 attempt" if cause == "connection refused" else "4 attempts"
    assert raised.value.message == f"inference endpoint unreachable: {cause} ({attempts})"


def test_a_refused_connection_is_not_retried_within_the_call(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    """Nothing listens there: the next three attempts would only raise the request rate a down endpoint sees
    (the soak's first outage minute counted 7 of a 6 budget); the message waits and the circuit probes."""
    mocked.post(ENDPOINT, body=requests.ConnectionError(REFUSED))

    with pytest.raises(TransientError):
        client(fake_time, max_attempts=4).predict(JPEG)

    assert len(mocked.calls) == 1
    assert fake_time.sleeps == []
