"""Inference parameters and the Roboflow rules for reading them.

Both routes (v0 query string, v1 JSON body) end in one `InferenceParams`; the quirks live here only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DEFAULT_CONFIDENCE = 0.4
DEFAULT_OVERLAP = 0.3
DEFAULT_MAX_DETECTIONS = 300
MIN_THRESHOLD = 0.01


class OutputFormat(StrEnum):
    JSON = "json"
    IMAGE = "image"
    IMAGE_AND_JSON = "image_and_json"


def threshold_from_roboflow(value: float | None, default: float) -> float:
    """Roboflow's percent-or-fraction rule: >= 1 is a percentage (so `1` means 1 %), floor 0.01.

    `40` and `0.4` mean the same; a value above 100 % is clipped to 1.
    """
    if value is None:
        return default
    fraction = value / 100 if value >= 1 else value
    return min(1.0, max(MIN_THRESHOLD, fraction))


def keypoint_threshold_from_roboflow(value: float | None) -> float:
    """The same percent-or-fraction reading as `confidence`, without the floor: 0 keeps every keypoint."""
    if value is None:
        return 0.0
    return min(1.0, value / 100 if value >= 1 else value)


def class_names_from_csv(value: str | None) -> frozenset[str] | None:
    """`classes=a, b,,c` -> {"a", "b", "c"}; empty or absent -> None (keep every class)."""
    if value is None:
        return None
    names = frozenset(name.strip() for name in value.split(",") if name.strip())
    return names or None


@dataclass(frozen=True)
class InferenceParams:
    confidence: float = DEFAULT_CONFIDENCE  # 0..1
    iou_threshold: float = DEFAULT_OVERLAP  # 0..1
    classes: frozenset[str] | None = None  # None keeps every class
    keypoint_confidence: float = 0.0  # keypoints under it are dropped
    max_detections: int = DEFAULT_MAX_DETECTIONS
    output: OutputFormat = OutputFormat.JSON
    labels: bool = False  # drawing options of the image formats
    stroke: int | None = None  # None: scaled to the image (upstream draws 1 px, invisible on 12 MP)

    @property
    def wants_image(self) -> bool:
        return self.output is not OutputFormat.JSON


def v0_params(
    *,
    confidence: float | None,
    overlap: float | None,
    classes: str | None,
    keypoint_confidence: float | None,
    max_detections: int,
    output: OutputFormat,
    labels: bool,
    stroke: int | None,
) -> InferenceParams:
    """The v0 query parameters (already validated) read with Roboflow's rules."""
    return InferenceParams(
        confidence=threshold_from_roboflow(confidence, DEFAULT_CONFIDENCE),
        iou_threshold=threshold_from_roboflow(overlap, DEFAULT_OVERLAP),
        classes=class_names_from_csv(classes),
        keypoint_confidence=keypoint_threshold_from_roboflow(keypoint_confidence),
        max_detections=max_detections,
        output=output,
        labels=labels,
        stroke=stroke,
    )
