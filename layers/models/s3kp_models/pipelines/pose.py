"""`pose/1`: the BlazePose detector, then the 33-landmark full model on a rotated crop of EVERY person.

MediaPipe's legacy Pose follows the first detection only; we run the landmark model once per detection.
Options from pose_detection_cpu.pbtxt, pose_detection_to_roi.pbtxt, pose_landmark_by_roi_cpu.pbtxt and
tensors_to_pose_landmarks_and_segmentation.pbtxt.
"""

from __future__ import annotations

import numpy as np
from s3kp_core.skeletons import POSE_33

from s3kp_models.pipelines.anchors import SsdAnchorOptions
from s3kp_models.pipelines.base import ModelInfo, RGBImage
from s3kp_models.pipelines.boxes import person_box
from s3kp_models.pipelines.detector import DetectorSpec, SsdDetector
from s3kp_models.pipelines.detector_pipeline import DetectorPipeline, Located
from s3kp_models.pipelines.interpreter_pool import InterpreterPool
from s3kp_models.pipelines.landmarks import crop_and_run, refine_with_heatmap
from s3kp_models.pipelines.roi import rect_from_alignment_points, rect_to_image, transform_rect
from s3kp_models.pipelines.tensors_to_detections import Detections, sigmoid

POSE_DETECTOR = DetectorSpec(
    SsdAnchorOptions(input_width=224, input_height=224, strides=(8, 16, 32, 32, 32)),
    num_keypoints=4,  # mid-hip, full-body size/rotation point, mid-shoulder, upper-body size/rotation point
    value_range=(-1.0, 1.0),
)
ALIGNMENT_START, ALIGNMENT_END = 0, 1  # mid-hip centre and the full-body size/rotation point
ROI_SCALE = 1.25
NUM_MODEL_LANDMARKS = 39  # 33 pose landmarks + 6 auxiliary ones used by MediaPipe for tracking
NUM_POSE_LANDMARKS = len(POSE_33.keypoint_names)
VALUES_PER_LANDMARK = 5  # x, y, z, visibility logit, presence logit
MIN_PRESENCE = 0.5  # the ThresholdingCalculator on the pose flag


class PosePipeline(DetectorPipeline):
    """Detection confidence = the detector's score; keypoint confidence = landmark visibility (sigmoid)."""

    class_name = "person"
    keypoint_names = POSE_33.keypoint_names

    def __init__(self, info: ModelInfo, detector: SsdDetector, landmarks: InterpreterPool) -> None:
        super().__init__(info, detector)
        self.landmarks = landmarks

    def locate(self, image: RGBImage, found: Detections, index: int) -> Located | None:
        input_width, input_height = self.landmarks.input_size
        image_size = (image.shape[1], image.shape[0])
        points, box = found.keypoints[index], found.boxes[index]
        rect = rect_from_alignment_points(points, ALIGNMENT_START, ALIGNMENT_END, target_degrees=90)
        seen, outputs = crop_and_run(
            self.landmarks, image, transform_rect(rect, scale=ROI_SCALE, square_long=True)
        )
        raw_landmarks, pose_flag, _segmentation, heatmap = outputs[:4]
        if float(pose_flag.reshape(-1)[0]) < MIN_PRESENCE:
            return None
        raw = raw_landmarks.reshape(NUM_MODEL_LANDMARKS, VALUES_PER_LANDMARK)[:NUM_POSE_LANDMARKS]
        in_crop = np.asarray(raw[:, :2] / (input_width, input_height), np.float32)
        in_crop = refine_with_heatmap(in_crop, heatmap[0])
        pixels = rect_to_image(seen, in_crop)
        visibility = sigmoid(raw[:, 3])
        return Located(
            person_box(pixels, visibility, sigmoid(raw[:, 4]), image_size, box), pixels, visibility
        )
