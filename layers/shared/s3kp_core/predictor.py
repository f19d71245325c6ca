"""The port the per-object flow asks for predictions: one JPEG in, predictions and figures out.

`s3kp_core.inference.InferenceClient` implements it over HTTP; unit tests pass a fake.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from s3kp_core.results import Prediction


@dataclass(frozen=True)
class InferenceResult:
    predictions: tuple[Prediction, ...]  # in the SENT image's pixels
    image_width: int  # as reported by the endpoint (fallback: what we sent)
    image_height: int
    inference_id: str | None
    server_time_ms: float | None
    bytes_sent: int
    attempts: int
    elapsed_ms: float


class Predictor(Protocol):
    def predict(
        self,
        jpeg: bytes,
        *,
        deadline: float | None = None,
        max_attempts: int | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> InferenceResult:
        """Predictions for one JPEG; `deadline` is a clock time after which no new attempt starts;
        `max_attempts` lowers the predictor's own attempt budget (None: its default); `give_up`, asked
        before each retry, stops retrying when True (another call found the endpoint failing)."""
        ...
