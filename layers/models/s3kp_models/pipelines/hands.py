"""`hands/1`: the full palm detector, then the 21-landmark full hand model on a rotated crop of each palm.

Options from palm_detection_cpu.pbtxt, palm_detection_detection_to_roi.pbtxt and hand_landmark_cpu.pbtxt.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from s3kp_core.skeletons import HAND_21

from s3kp_models.pipelines.anchors import SsdAnchorOptions
from s3kp_models.pipelines.base import ModelInfo, RGBImage
from s3kp_models.pipelines.boxes import landmark_box
from s3kp_models.pipelines.detector import DetectorSpec, SsdDetector, choose
from s3kp_models.pipelines.detector_pipeline import DetectorPipeline, Located
from s3kp_models.pipelines.interpreter_pool import InterpreterPool
from s3kp_models.pipelines.landmarks import crop_and_run
from s3kp_models.pipelines.roi import (
    Rect,
    associate,
    rect_from_box_and_keypoints,
    rect_to_image,
    transform_rect,
)
from s3kp_models.pipelines.tensors_to_detections import Detections

PALM_DETECTOR = DetectorSpec(
    SsdAnchorOptions(input_width=192, input_height=192, strides=(8, 16, 16, 16)),
    num_keypoints=7,
    value_range=(0.0, 1.0),
)
WRIST_CENTRE, MIDDLE_FINGER_BASE = 0, 2  # palm keypoints that set the crop's rotation
ROI_SCALE, ROI_SHIFT_Y = 2.6, -0.5  # the palm box grows into a box around the whole hand
MIN_PRESENCE = 0.5  # the ThresholdingCalculator on the hand flag
SAME_HAND_IOU = 0.5  # hand rects overlapping more than this are one hand (AssociationNormRectCalculator)


class HandPipeline(DetectorPipeline):
    """Detection confidence = the palm detector's score; keypoint confidence = the hand presence score."""

    class_name = "hand"
    keypoint_names = HAND_21.keypoint_names

    def __init__(
        self,
        info: ModelInfo,
        detector: SsdDetector,
        landmarks: InterpreterPool,
        *,
        min_presence: float = MIN_PRESENCE,
    ) -> None:
        super().__init__(info, detector)
        self.landmarks = landmarks
        self.min_presence = min_presence

    def candidates(self, found: Detections, *, confidence: float, iou_threshold: float) -> list[int]:
        # One hand per group of overlapping rects, decided among every detection found (the graph's own
        # first), and only then the request's choice: so `confidence` and `overlap` pick hands, never
        # which palm stands for one.
        hands = [hand_rect(box, points) for box, points in zip(found.boxes, found.keypoints, strict=True)]
        graph_count = int((found.scores >= self.detector.spec.min_score).sum())
        associated = associate(hands, min_similarity=SAME_HAND_IOU, graph_count=graph_count)
        chosen = choose(found.take(associated), confidence=confidence, iou_threshold=iou_threshold)
        return [associated[c] for c in chosen]

    def locate(self, image: RGBImage, found: Detections, index: int) -> Located | None:
        input_width, input_height = self.landmarks.input_size
        image_size = (image.shape[1], image.shape[0])
        seen, outputs = crop_and_run(
            self.landmarks, image, hand_rect(found.boxes[index], found.keypoints[index])
        )
        raw_landmarks, hand_flag = outputs[:2]
        presence = float(hand_flag.reshape(-1)[0])
        if presence < self.min_presence:
            return None
        raw = raw_landmarks.reshape(len(HAND_21.keypoint_names), 3)
        in_crop = np.asarray(raw[:, :2] / (input_width, input_height), np.float32)
        pixels = rect_to_image(seen, in_crop)
        # No per-landmark visibility in the hand model (its presence stands for every landmark): what
        # keeps the box on the hand is leaving out landmarks outside the image.
        presences = [presence] * len(pixels)
        box = landmark_box(pixels, presences, image_size, fallback=found.boxes[index])
        return Located(box, pixels, presences)


def hand_rect(palm_box: NDArray[np.float32], palm_points: NDArray[np.float32]) -> Rect:
    """The rotated square around the whole hand that the landmark model sees, from one palm detection."""
    return transform_rect(
        rect_from_box_and_keypoints(
            palm_box, palm_points, WRIST_CENTRE, MIDDLE_FINGER_BASE, target_degrees=90
        ),
        scale=ROI_SCALE,
        shift_y=ROI_SHIFT_Y,
        square_long=True,
    )
