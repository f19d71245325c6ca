"""The first stage every pipeline shares: an SSD-style MediaPipe detector over the whole image."""

from __future__ import annotations

from dataclasses import dataclass

from s3kp.model_server.pipelines.anchors import SsdAnchorOptions, generate_anchors
from s3kp.model_server.pipelines.base import RGBImage
from s3kp.model_server.pipelines.decoding import Detections, decode_detections
from s3kp.model_server.pipelines.image_to_tensor import Border, full_image_rect, sample_rect
from s3kp.model_server.pipelines.interpreter_pool import InterpreterPool
from s3kp.model_server.pipelines.nms import weighted_nms
from s3kp.model_server.pipelines.roi import letterbox, rect_to_image


@dataclass(frozen=True)
class DetectorSpec:
    """One graph's options: ImageToTensor range, SsdAnchors, TensorsToDetections keypoint count."""

    anchors: SsdAnchorOptions
    num_keypoints: int
    value_range: tuple[float, float]  # -1..1 for BlazeFace and the pose detector, 0..1 for palms


class SsdDetector:
    def __init__(self, spec: DetectorSpec, pool: InterpreterPool) -> None:
        self.spec = spec
        self.pool = pool
        self.anchors = generate_anchors(spec.anchors)
        # The anchor count must match the model's output, or decoding would silently misalign.
        boxes_shape = next(shape for shape in pool.output_shapes if shape[-1] != 1)
        if boxes_shape[1] != len(self.anchors):
            raise ValueError(
                f"{pool.model_path.name}: {boxes_shape[1]} outputs but {len(self.anchors)} anchors"
            )

    def detect(
        self, image: RGBImage, *, min_score: float, iou_threshold: float, max_detections: int
    ) -> Detections:
        """Detections in image pixels, best first, after MediaPipe's weighted NMS."""
        width, height = self.pool.input_size
        rect = letterbox(full_image_rect(image), width, height)
        tensor = sample_rect(
            image, rect, width, height, value_range=self.spec.value_range, border=Border.ZERO
        )
        outputs = self.pool.run(tensor)
        raw_scores = next(o for o in outputs if o.shape[-1] == 1)[0]
        raw_boxes = next(o for o in outputs if o.shape[-1] != 1)[0]
        decoded = decode_detections(
            raw_boxes,
            raw_scores,
            self.anchors,
            input_size=(width, height),
            num_keypoints=self.spec.num_keypoints,
            min_score=min_score,
        )
        kept = weighted_nms(decoded, iou_threshold=iou_threshold, max_detections=max_detections)
        if not len(kept):
            return kept
        corners = rect_to_image(rect, kept.boxes.reshape(-1, 2, 2)).reshape(-1, 4)  # no rotation: stays a box
        return Detections(corners, rect_to_image(rect, kept.keypoints), kept.scores)
