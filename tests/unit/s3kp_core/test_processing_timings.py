"""`timings_ms` in a result: every stage in milliseconds, rounded to the microsecond (3 decimals)."""

from __future__ import annotations

import dataclasses
import io

from PIL import Image
from s3kp_core.imaging import prepare_for_inference
from s3kp_core.predictor import InferenceResult
from s3kp_core.processing import Collaborators, ObjectEvent, process_object
from s3kp_core.results import SourceObject

from tests.unit.derived_settings import processing_settings
from tests.unit.s3kp_core.fakes import FakeObjectStore, FakePredictor, InMemoryResultsStore, fixed_now

BUCKET = "uploads"
KEY = "incoming/clock.png"
# What a perf_counter difference looks like: far more digits than a timing means.
RAW_INFERENCE_MS = 6.8480629997793585


class RawPredictor(FakePredictor):
    """Reports its latency unrounded, as a real client measuring with perf_counter would."""

    def predict(
        self, jpeg: bytes, *, deadline: float | None = None, max_attempts: int | None = None
    ) -> InferenceResult:
        return dataclasses.replace(super().predict(jpeg, deadline=deadline), elapsed_ms=RAW_INFERENCE_MS)


class IrregularClock:
    """A monotonic clock whose steps are not whole microseconds, so unrounded timings would show it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.012345678901
        return self.now


def png(width: int = 320, height: int = 240) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def has_at_most_3_decimals(value: float) -> bool:
    return value == round(value, 3)


def test_every_stage_timing_of_a_result_is_rounded_to_3_decimals() -> None:
    """GIVEN a predictor and a clock reporting durations with many digits
    WHEN an object is processed
    THEN each value of the recorded timings_ms has at most 3 decimals, the inference one included."""
    deps = Collaborators(
        objects=FakeObjectStore({(BUCKET, KEY): png()}),
        predictor=RawPredictor(),
        results=InMemoryResultsStore(),
        clock=IrregularClock(),
        now=fixed_now,
    )
    event = ObjectEvent(source=SourceObject(bucket=BUCKET, key=KEY, etag="etag-1"))

    outcome = process_object(event, settings=processing_settings(), deps=deps)

    assert outcome.record is not None
    timings = outcome.record.timings_ms
    assert set(timings) >= {"download", "decode", "resize", "encode", "inference", "parse", "annotate", "put"}
    assert timings["inference"] == round(RAW_INFERENCE_MS, 3)
    assert all(has_at_most_3_decimals(value) for value in timings.values()), timings


def test_image_preparation_reports_its_timings_rounded_to_3_decimals() -> None:
    """GIVEN an image that is decoded, resized and encoded
    WHEN it is prepared for inference
    THEN its decode, resize and encode timings have at most 3 decimals."""
    prepared, _ = prepare_for_inference(png(800, 600), max_side=400, max_pixels=10_000_000)

    assert set(prepared.timings_ms) == {"decode", "resize", "encode"}
    assert all(has_at_most_3_decimals(value) for value in prepared.timings_ms.values()), prepared.timings_ms
