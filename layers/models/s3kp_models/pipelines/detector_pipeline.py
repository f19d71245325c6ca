"""The steps every pipeline here shares: detect, choose, then turn each chosen detection into a Detection.

    DetectorPipeline.predict  detect down to `confidence` -> `candidates` (the request's choice, best
                              first) -> `locate` each until `max_detections` are found -> Detection

A pipeline says only what differs: which detections are candidates (hands first merge palms of one hand)
and where a candidate's box and keypoints are (the detector's own, or a landmark model's on a crop, which
may find nothing there: `None` skips the candidate without counting it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from s3kp_models.pipelines.base import Detection, ModelInfo, RGBImage
from s3kp_models.pipelines.boxes import CentreBox
from s3kp_models.pipelines.detector import SsdDetector, choose
from s3kp_models.pipelines.keypoints import keypoints_from
from s3kp_models.pipelines.tensors_to_detections import Detections


@dataclass(frozen=True)
class Located:
    """Where one detected object is, in image pixels."""

    box: CentreBox  # centre x, centre y, width, height
    points: NDArray[np.float32]  # (K, 2): x, y of each keypoint, in the model's keypoint order
    confidences: Sequence[float] | NDArray[np.float32]  # (K,)


class DetectorPipeline(ABC):
    """A `KeypointPipeline` built on an SSD detector; the detector's score is the detection's confidence."""

    class_name: ClassVar[str]  # the one class each of these models detects
    keypoint_names: ClassVar[tuple[str, ...]]

    def __init__(self, info: ModelInfo, detector: SsdDetector) -> None:
        self.info = info
        self.detector = detector

    def predict(
        self, image: RGBImage, *, confidence: float, iou_threshold: float, max_detections: int
    ) -> list[Detection]:
        found = self.detector.detect(image, down_to=confidence)
        results: list[Detection] = []
        for index in self.candidates(found, confidence=confidence, iou_threshold=iou_threshold):
            if len(results) == max_detections:
                break
            located = self.locate(image, found, index)
            if located is None:
                continue
            x, y, width, height = located.box
            results.append(
                Detection(
                    x=x,
                    y=y,
                    width=width,
                    height=height,
                    confidence=float(found.scores[index]),
                    class_name=self.class_name,
                    class_id=0,
                    keypoints=keypoints_from(located.points, located.confidences, self.keypoint_names),
                )
            )
        return results

    def candidates(self, found: Detections, *, confidence: float, iou_threshold: float) -> list[int]:
        """Indices into `found` worth locating, best first (`detector.choose` unless a model needs more)."""
        return choose(found, confidence=confidence, iou_threshold=iou_threshold)

    @abstractmethod
    def locate(self, image: RGBImage, found: Detections, index: int) -> Located | None:
        """The box and keypoints of detection `index`, or None when the object is not there after all."""
