"""Specification of the inference client: the request it sends, what it makes of each answer, when it
retries, and that the API key never shows in an error."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.server
import json
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from hypothesis import given
from hypothesis import strategies as st
from s3kp_core import errors
from s3kp_core.errors import PermanentError, ProcessingError, TransientError
from s3kp_core.imaging import fit_size
from s3kp_core.inference import InferenceClient, InferenceSettings
from s3kp_core.inference_wire import parse_response
from s3kp_core.redact import unregister_all
from s3kp_core.rescale import rescale
from s3kp_core.results import Keypoint, Prediction

from s3kp import samples
from tests.unit.derived_settings import inference_settings

BASE_URL = "https://detect.example.test"
MODEL = "my-pose/3"
ENDPOINT = f"{BASE_URL}/{MODEL}"
API_KEY = "rf_TEST_k3y_9f8e7d"
JPEG = samples.sample_jpeg("astronaut")

OK_BODY: dict[str, Any] = {
    "time": 0.031,
    "inference_id": "abc-123",
    "image": {"width": 512, "height": 512},
    "predictions": [
        {
            "x": 189.5, "y": 100, "width": 163, "height": 186, "class": "person", "class_id": 0,
            "confidence": 0.544, "detection_id": "d-1", "extra_field": True,
            "keypoints": [
                {"x": 189, "y": 20, "confidence": 0.91, "class_id": 0, "class": "nose"},
                {"x": 200, "y": 25, "confidence": 0.12, "class_id": 1, "class_name": "left_eye"},
            ],
        }
    ],
}  # fmt: skip


class FakeTime:
    """A clock that only moves when the client sleeps: retries run instantly and are measurable."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    unregister_all()
    yield
    unregister_all()


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def settings(**overrides: Any) -> InferenceSettings:
    return inference_settings(**{"base_url": BASE_URL, "model_id": MODEL, "api_key": API_KEY} | overrides)


def client(fake_time: FakeTime, *, largest_jitter: bool = True, **overrides: Any) -> InferenceClient:
    jitter = (lambda limit: limit) if largest_jitter else None
    return InferenceClient(settings(**overrides), sleep=fake_time.sleep, clock=fake_time.clock, jitter=jitter)


def query_of(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def assert_key_hidden(error: BaseException) -> None:
    text = "".join(traceback.format_exception(error)) + repr(error)
    if isinstance(error, ProcessingError):
        text += error.message + error.reason().model_dump_json()
    assert API_KEY not in text


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


# --- parse_response ----------------------------------------------------------------------------------


def test_parse_accepts_both_keypoint_label_spellings() -> None:
    parsed = parse_response(OK_BODY)

    assert [kp.name for kp in parsed.predictions[0].keypoints] == ["nose", "left_eye"]


def test_parse_tolerates_missing_optional_fields() -> None:
    """GIVEN a minimal prediction: no class_id, detection_id, keypoint class_id or label."""
    payload = {
        "predictions": [
            {"x": 1, "y": 2, "width": 3, "height": 4, "confidence": 0.5, "class_name": "hand",
             "keypoints": [{"x": 1, "y": 1, "confidence": 0.9}, {"x": 2, "y": 2, "confidence": 0.8}]},
        ]
    }  # fmt: skip

    parsed = parse_response(payload)

    (prediction,) = parsed.predictions
    assert (prediction.class_name, prediction.class_id, prediction.detection_id) == ("hand", -1, None)
    assert [(kp.class_id, kp.name) for kp in prediction.keypoints] == [(0, "0"), (1, "1")]
    assert (parsed.image_width, parsed.image_height, parsed.inference_id, parsed.server_time_ms) == (
        None,
    ) * 4


def wire_prediction(**overrides: object) -> dict[str, object]:
    return {"x": 1, "y": 1, "width": 1, "height": 1, "confidence": 1, "class": "a"} | overrides


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ([], "body"),
        ({"message": "ok"}, "predictions: Field required"),
        ({"predictions": {"x": 1}}, "predictions"),
        ({"predictions": [wire_prediction(x="left")]}, "predictions.0.x"),
        ({"predictions": [wire_prediction(x=float("nan"))]}, "predictions.0.x"),
        ({"predictions": [wire_prediction(width=-5)]}, "predictions.0.width"),
        ({"predictions": [wire_prediction(**{"class": None})]}, "predictions.0.class"),
        ({"predictions": [wire_prediction(keypoints=[{"x": 1}])]}, "predictions.0.keypoints.0.y"),
        ({"predictions": [], "image": {"width": 0, "height": 10}}, "image.width"),
    ],
)
def test_parse_rejects_malformed_answers_with_a_message_naming_the_field(
    payload: object, problem: str
) -> None:
    with pytest.raises(PermanentError) as raised:
        parse_response(payload)

    assert raised.value.code == errors.INFERENCE_BAD_RESPONSE
    assert problem in raised.value.message


# --- failures that are not retried ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (400, {"message": "Could not load input image. Cause: bad"}, errors.INFERENCE_REJECTED),
        (401, {"message": "Unauthorized api_key"}, errors.INFERENCE_UNAUTHORIZED),
        (402, {"message": "Out of credits"}, errors.INFERENCE_REJECTED),
        (403, {"message": "Forbidden: quota exceeded"}, errors.INFERENCE_UNAUTHORIZED),
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
    assert f"HTTP {status}" in raised.value.message
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

    with pytest.raises(PermanentError) as raised:
        client(fake_time).predict(JPEG)

    assert "API key *** is not valid" in raised.value.message
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
    assert "does not follow the contract" in raised.value.message
    assert len(mocked.calls) == 3


def test_a_200_with_the_wrong_shape_then_a_good_answer_succeeds(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, json={"message": "ok"})
    mocked.post(ENDPOINT, json=OK_BODY)

    result = client(fake_time).predict(JPEG)

    assert result.attempts == 2
    assert len(result.predictions) == 1


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


def test_exhausted_retries_are_transient_with_the_last_failure_and_no_key(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, body=requests.ConnectionError(f"refused: {ENDPOINT}?api_key={API_KEY}&format=json"))
    mocked.post(ENDPOINT, json={"message": "Model not ready"}, status=503)

    with pytest.raises(TransientError) as raised:
        client(fake_time, max_attempts=4).predict(JPEG)

    assert raised.value.code == errors.INFERENCE_UNAVAILABLE
    assert "after 4 attempt(s)" in raised.value.message
    assert "HTTP 503: Model not ready" in raised.value.message
    assert len(mocked.calls) == 4
    assert fake_time.sleeps == [0.5, 1.0, 2.0]
    assert_key_hidden(raised.value)


def test_a_connection_error_message_is_redacted(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    mocked.post(ENDPOINT, body=requests.ConnectionError(f"refused: {ENDPOINT}?api_key={API_KEY}&format=json"))

    with pytest.raises(TransientError) as raised:
        client(fake_time, max_attempts=1).predict(JPEG)

    assert "api_key=***" in raised.value.message
    assert_key_hidden(raised.value)


def test_a_200_that_is_not_json_is_retried_then_reported_as_a_bad_response(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, body="<html>502 Bad Gateway</html>", content_type="text/html")

    with pytest.raises(TransientError) as raised:
        client(fake_time, max_attempts=2).predict(JPEG)

    assert raised.value.code == errors.INFERENCE_BAD_RESPONSE
    assert "not JSON: <html>502 Bad Gateway</html>" in raised.value.message
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
    assert "no time left" in raised.value.message


def test_a_deadline_already_passed_makes_no_request(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    with pytest.raises(TransientError) as raised:
        client(fake_time).predict(JPEG, deadline=fake_time.now - 1)

    assert len(mocked.calls) == 0
    assert "after 0 attempt(s)" in raised.value.message


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


# --- against a real local HTTP server ----------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable
    delay = 0.0
    peers: list[tuple[str, int]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).peers.append(self.client_address)
        time.sleep(type(self).delay)
        payload = json.dumps(OK_BODY).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client may have timed out
            self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"peers": [], "delay": 0.0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_one_pooled_connection_serves_consecutive_predictions(
    local_server: tuple[str, type[_Handler]],
) -> None:
    url, handler = local_server
    inference = InferenceClient(settings(base_url=url))

    for _ in range(3):
        assert len(inference.predict(JPEG).predictions) == 1
    inference.close()

    assert len(handler.peers) == 3
    assert len(set(handler.peers)) == 1  # the same client port: one kept-alive connection


def test_a_real_read_timeout_is_retried_then_reported(local_server: tuple[str, type[_Handler]]) -> None:
    url, handler = local_server
    handler.delay = 1.0
    inference = InferenceClient(
        settings(base_url=url, read_timeout=0.2, max_attempts=2), sleep=lambda _: None
    )

    with pytest.raises(TransientError) as raised:
        inference.predict(JPEG)

    assert "timed out (ReadTimeout)" in raised.value.message
    assert_key_hidden(raised.value)


# --- rescale --------------------------------------------------------------------------------------------


def test_rescale_maps_a_prediction_on_the_sent_image_onto_the_original() -> None:
    sent = Prediction(
        x=512, y=341.5, width=1024, height=683, confidence=0.9, class_name="person", class_id=0,
        keypoints=(Keypoint(x=1024, y=683, confidence=0.8, class_id=0, name="nose"),),
    )  # fmt: skip

    (original,) = rescale([sent], 3000 / 1024, 2000 / 683)

    assert (original.x, original.y, original.width, original.height) == pytest.approx(
        (1500, 1000, 3000, 2000)
    )
    assert (original.keypoints[0].x, original.keypoints[0].y) == pytest.approx((3000, 2000))
    assert (original.class_name, original.confidence, original.keypoints[0].name) == ("person", 0.9, "nose")


sizes = st.tuples(st.integers(16, 12_000), st.integers(16, 12_000))
fractions = st.floats(0, 1)


@given(size=sizes, max_side=st.integers(64, 2048), box=st.tuples(fractions, fractions, fractions, fractions))
def test_rescale_inverts_the_downscale_exactly(
    size: tuple[int, int], max_side: int, box: tuple[float, float, float, float]
) -> None:
    """GIVEN a box and keypoint in original pixels, as they appear on the image actually sent
    THEN rescaling by original/sent per axis recovers them (to float precision)."""
    original_w, original_h = size
    sent_w, sent_h = fit_size(size, max_side)
    scale_x, scale_y = original_w / sent_w, original_h / sent_h
    fx, fy, fw, fh = box
    truth = Prediction(
        x=fx * original_w, y=fy * original_h, width=fw * original_w, height=fh * original_h,
        confidence=0.5, class_name="c", class_id=0,
        keypoints=(Keypoint(x=fw * original_w, y=fh * original_h, confidence=0.5, class_id=0, name="k"),),
    )  # fmt: skip
    on_sent = truth.model_copy(
        update={
            "x": truth.x / scale_x, "y": truth.y / scale_y,
            "width": truth.width / scale_x, "height": truth.height / scale_y,
            "keypoints": (truth.keypoints[0].model_copy(update={"x": truth.keypoints[0].x / scale_x,
                                                               "y": truth.keypoints[0].y / scale_y}),),
        }
    )  # fmt: skip

    (back,) = rescale([on_sent], scale_x, scale_y)

    values = (back.x, back.y, back.width, back.height, back.keypoints[0].x, back.keypoints[0].y)
    expected = (truth.x, truth.y, truth.width, truth.height, truth.keypoints[0].x, truth.keypoints[0].y)
    assert values == pytest.approx(expected, rel=1e-12, abs=1e-9)
    # The sent image's far corner lands on the original's far corner.
    assert (sent_w * scale_x, sent_h * scale_y) == pytest.approx((original_w, original_h), rel=1e-12)
