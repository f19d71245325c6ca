"""The interface every keypoint pipeline implements; the HTTP layer only knows this."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

RGBImage = NDArray[np.uint8]  # shape (height, width, 3), RGB, already EXIF-oriented


@dataclass(frozen=True)
class Keypoint:
    x: float  # image pixels
    y: float
    confidence: float  # 0..1 (visibility/presence where the model has it, else the detection score)
    class_id: int  # slot in the model's keypoint list
    name: str  # snake_case label, e.g. "left_eye"


@dataclass(frozen=True)
class Detection:
    x: float  # box centre, image pixels
    y: float
    width: float
    height: float
    confidence: float
    class_name: str
    class_id: int
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
