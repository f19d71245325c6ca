"""The inference client's request (the contract's query string and body) and what it makes of a 200."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import pytest
import responses

from s3kp import samples
from tests.unit.s3kp_core.inference.builders import (
    API_KEY,
    BASE_URL,
    ENDPOINT,
    JPEG,
    MODEL,
    OK_BODY,
    FakeTime,
    client,
    query_of,
    settings,
)

# --- the request --------------------------------------------------------------------------------------


def test_the_request_follows_the_contract(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    mocked.post(ENDPOINT, json=OK_BODY)

    client(fake_time).predict(JPEG)

    (call,) = mocked.calls
    assert urlsplit(call.request.url).path == "/my-pose/3"
    assert query_of(call) == {
        "api_key": [API_KEY], "confidence": ["0.4"], "overlap": ["0.3"], "format": ["json"],
    }  # fmt: skip
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert base64.b64decode(call.request.body) == JPEG


def test_classes_are_sent_comma_separated_when_configured(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, json=OK_BODY)

    client(fake_time, classes=("person", "hand")).predict(JPEG)

    assert query_of(mocked.calls[0])["classes"] == ["person,hand"]


@pytest.mark.parametrize(("confidence", "sent"), [(1.0, "100"), (0.5, "0.5"), (0.005, "0.005"), (0.0, "0")])
def test_thresholds_are_sent_as_fractions_except_certainty_which_is_100_percent(
    mocked: responses.RequestsMock, fake_time: FakeTime, confidence: float, sent: str
) -> None:
    """The endpoint reads a value >= 1 as a percentage: `1` would mean 1 %."""
    mocked.post(ENDPOINT, json=OK_BODY)

    client(fake_time, confidence=confidence, overlap=confidence).predict(JPEG)

    assert query_of(mocked.calls[0])["confidence"] == [sent]
    assert query_of(mocked.calls[0])["overlap"] == [sent]


@pytest.mark.parametrize("field", ["confidence", "overlap"])
@pytest.mark.parametrize("value", [-0.1, 1.5, 40])
def test_thresholds_outside_0_to_1_are_refused_in_settings(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        settings(**{field: value})


def test_the_settings_repr_hides_the_key() -> None:
    assert API_KEY not in repr(settings())


def test_base_url_and_model_id_slashes_are_normalised() -> None:
    assert settings(base_url=f"{BASE_URL}/", model_id=f"/{MODEL}/").endpoint == ENDPOINT


# --- a successful answer -----------------------------------------------------------------------------


def test_a_200_is_parsed_into_predictions_and_metadata(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, json=OK_BODY)

    result = client(fake_time).predict(JPEG)

    (prediction,) = result.predictions
    assert (prediction.x, prediction.y, prediction.width, prediction.height) == (189.5, 100, 163, 186)
    assert (prediction.class_name, prediction.class_id, prediction.confidence) == ("person", 0, 0.544)
    assert prediction.detection_id == "d-1"
    assert [(kp.name, kp.class_id) for kp in prediction.keypoints] == [("nose", 0), ("left_eye", 1)]
    assert (result.image_width, result.image_height) == (512, 512)
    assert result.inference_id == "abc-123"
    assert result.server_time_ms == pytest.approx(31.0)
    assert result.bytes_sent == len(base64.b64encode(JPEG))
    assert result.attempts == 1
    assert result.elapsed_ms >= 0


def test_without_an_image_size_in_the_answer_the_sent_size_is_used(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, json={"predictions": []})
    jpeg = samples.encode(samples.astronaut().resize((300, 200)))

    result = client(fake_time).predict(jpeg)

    assert (result.image_width, result.image_height) == (300, 200)
    assert (result.inference_id, result.server_time_ms, result.predictions) == (None, None, ())
