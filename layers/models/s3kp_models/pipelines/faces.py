"""`faces/1` and `faces/2`: BlazeFace short range (128 px) and full range (192 px), six keypoints each.

Options from MediaPipe's face_detection_short_range.pbtxt / face_detection_full_range.pbtxt.
"""

from __future__ import annotations

from s3kp_core.skeletons import FACE_6

from s3kp_models.pipelines.anchors import SsdAnchorOptions
from s3kp_models.pipelines.base import RGBImage
from s3kp_models.pipelines.detector import DetectorSpec
from s3kp_models.pipelines.detector_pipeline import DetectorPipeline, Located
from s3kp_models.pipelines.tensors_to_detections import Detections

SHORT_RANGE = DetectorSpec(
    SsdAnchorOptions(input_width=128, input_height=128, strides=(8, 16, 16, 16)),
    num_keypoints=6,
    value_range=(-1.0, 1.0),
)
FULL_RANGE = DetectorSpec(
    SsdAnchorOptions(input_width=192, input_height=192, strides=(4,), interpolated_scale_aspect_ratio=0.0),
    num_keypoints=6,
    value_range=(-1.0, 1.0),
)


class FacePipeline(DetectorPipeline):
    """Every face the detector finds; keypoint confidence is the detection score (BlazeFace has no other)."""

    class_name = "face"
    keypoint_names = FACE_6.keypoint_names

    def locate(self, image: RGBImage, found: Detections, index: int) -> Located:
        xmin, ymin, xmax, ymax = (float(v) for v in found.boxes[index])
        points = found.keypoints[index]
        box = ((xmin + xmax) / 2, (ymin + ymax) / 2, xmax - xmin, ymax - ymin)
        return Located(box, points, [float(found.scores[index])] * len(points))
