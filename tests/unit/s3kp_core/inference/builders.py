"""What the inference client's specification is written with: an endpoint, a key, an answer, a clock."""

from __future__ import annotations

import traceback
from typing import Any
from urllib.parse import parse_qs, urlsplit

from s3kp_core.errors import ProcessingError
from s3kp_core.inference import InferenceClient, InferenceSettings

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
        text += error.message + repr(error.reason())
    assert API_KEY not in text
