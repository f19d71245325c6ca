"""`faces/1` and `faces/2`: BlazeFace short range (128 px) and full range (192 px), six keypoints each.

Options from MediaPipe's face_detection_short_range.pbtxt / face_detection_full_range.pbtxt.
"""

from __future__ import annotations

from s3kp_core.skeletons import FACE_6

from s3kp.model_server.pipelines.anchors import SsdAnchorOptions
from s3kp.model_server.pipelines.base import Detection, ModelInfo, RGBImage
from s3kp.model_server.pipelines.detector import DetectorSpec, SsdDetector, choose
from s3kp.model_server.pipelines.keypoints import keypoints_from

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


class FacePipeline:
    """Every face the detector finds; keypoint confidence is the detection score (BlazeFace has no other)."""

    def __init__(self, info: ModelInfo, detector: SsdDetector) -> None:
        self.info = info
        self.detector = detector

    def predict(
        self, image: RGBImage, *, confidence: float, iou_threshold: float, max_detections: int
    ) -> list[Detection]:
        found = self.detector.detect(image, down_to=confidence)
        results = []
        for index in choose(found, confidence=confidence, iou_threshold=iou_threshold)[:max_detections]:
            box, points, score = found.boxes[index], found.keypoints[index], found.scores[index]
            xmin, ymin, xmax, ymax = (float(v) for v in box)
            results.append(
                Detection(
                    x=(xmin + xmax) / 2,
                    y=(ymin + ymax) / 2,
                    width=xmax - xmin,
                    height=ymax - ymin,
                    confidence=float(score),
                    class_name="face",
                    class_id=0,
                    keypoints=keypoints_from(points, [float(score)] * len(points), FACE_6.keypoint_names),
                )
            )
        return results
