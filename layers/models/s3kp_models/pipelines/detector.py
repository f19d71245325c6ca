"""The first stage every pipeline shares: an SSD-style MediaPipe detector over the whole image.

The graph's own thresholds (`min_score_thresh`, `min_suppression_threshold`) always shape the detections;
a request's `confidence` only says how far down the list to go (see docs/model-server.md, "Thresholds").
"""

from __future__ import annotations

from dataclasses import dataclass

from s3kp_models.pipelines.anchors import SsdAnchorOptions, generate_anchors
from s3kp_models.pipelines.base import RGBImage
from s3kp_models.pipelines.image_to_tensor import Border, full_image_rect, sample_rect
from s3kp_models.pipelines.interpreter_pool import InterpreterPool
from s3kp_models.pipelines.nms import plain_nms, weighted_nms
from s3kp_models.pipelines.roi import letterbox, rect_to_image
from s3kp_models.pipelines.tensors_to_detections import Detections, decode_detections


@dataclass(frozen=True)
class DetectorSpec:
    """One graph's options: ImageToTensor range, SsdAnchors, TensorsToDetections keypoint count."""

    anchors: SsdAnchorOptions
    num_keypoints: int
    value_range: tuple[float, float]  # -1..1 for BlazeFace and the pose detector, 0..1 for palms
    # The graph's TensorsToDetectionsCalculator.min_score_thresh (the legacy API's default
    # min_detection_confidence) and NonMaxSuppressionCalculator.min_suppression_threshold: 0.5 and 0.3 in
    # every graph here.
    min_score: float = 0.5
    min_suppression: float = 0.3


# Candidates are decoded down to this score when a request asks below the graph's threshold, whatever it
# asks: the lowest confidence the server accepts (params.MIN_THRESHOLD). A fixed floor, so that a weaker
# detection a low threshold admits is the same detection at every threshold that admits it.
CANDIDATE_FLOOR = 0.01


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

    def detect(self, image: RGBImage, *, down_to: float) -> Detections:
        """Every detection scoring at least min(`down_to`, the graph's threshold), best first, in image
        pixels: the graph's own detections exactly as MediaPipe computes them, then (when `down_to` is
        lower) the weaker ones, each blended from weaker candidates only."""
        width, height = self.pool.input_size
        rect = letterbox(full_image_rect(image), width, height)
        tensor = sample_rect(
            image, rect, width, height, value_range=self.spec.value_range, border=Border.ZERO
        )
        outputs = self.pool.run(tensor)
        raw_scores = next(o for o in outputs if o.shape[-1] == 1)[0]
        raw_boxes = next(o for o in outputs if o.shape[-1] != 1)[0]
        graph_threshold = self.spec.min_score
        decoded = decode_detections(
            raw_boxes,
            raw_scores,
            self.anchors,
            input_size=(width, height),
            num_keypoints=self.spec.num_keypoints,
            min_score=graph_threshold if down_to >= graph_threshold else CANDIDATE_FLOOR,
        )
        kept = weighted_nms(
            decoded,
            iou_threshold=self.spec.min_suppression,
            graph_threshold=graph_threshold,
            min_seed=min(down_to, graph_threshold),
        )
        if not len(kept):
            return kept
        corners = rect_to_image(rect, kept.boxes.reshape(-1, 2, 2)).reshape(-1, 4)  # no rotation: stays a box
        return Detections(corners, rect_to_image(rect, kept.keypoints), kept.scores)


def choose(found: Detections, *, confidence: float, iou_threshold: float) -> list[int]:
    """The request's choice among detections, best first: those scoring at least `confidence`, less any
    whose box overlaps a better chosen one by more than `iou_threshold` (the client's `overlap`). It drops
    detections and never changes one."""
    eligible = [int(i) for i in (found.scores >= confidence).nonzero()[0]]
    if not eligible:
        return []
    kept = plain_nms(found.boxes[eligible], found.scores[eligible], iou_threshold=iou_threshold)
    return [eligible[k] for k in kept]
