"""The interface every keypoint pipeline implements; the HTTP layer only knows this."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from s3kp_core.results import Keypoint

RGBImage = NDArray[np.uint8]  # shape (height, width, 3), RGB, already EXIF-oriented


@dataclass(frozen=True)
class Detection:
    x: float  # box centre, image pixels
    y: float
    width: float
    height: float
    confidence: float
    class_name: str
    class_id: int
    # The domain's keypoint (the one the ingest function stores), in image pixels; its confidence is the
    # landmark's visibility or presence where the model has one, else the detection score.
    keypoints: tuple[Keypoint, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ModelInfo:
    model_id: str  # "project/version", e.g. "faces/1"
    description: str
    class_names: tuple[str, ...]
    keypoint_names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...]  # pairs of keypoint class_ids to join with a line
    input_width: int
    input_height: int


class KeypointPipeline(Protocol):
    """A loaded model. `predict` must be safe to call from several threads at once."""

    info: ModelInfo

    def predict(
        self,
        image: RGBImage,
        *,
        confidence: float,
        iou_threshold: float,
        max_detections: int,
    ) -> list[Detection]:
        """Detections sorted by confidence, highest first, in the image's pixel coordinates.

        `confidence`, `iou_threshold` and `max_detections` choose among the model's detections and never
        change one: a detection reported at one setting is identical at every other that reports it.
        """
        ...
