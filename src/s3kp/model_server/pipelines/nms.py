"""Non-maximum suppression the way MediaPipe's NonMaxSuppressionCalculator does it for these models.

`WEIGHTED` (the faces, pose and palm graphs): each kept detection is the score-weighted mean of itself
and every box overlapping it above the threshold (boxes and keypoints), keeping the best score. That
averaging is why MediaPipe's boxes are steadier than plain NMS; we do the same to land where it lands.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from s3kp.model_server.pipelines.decoding import Detections


def iou(box: NDArray[np.float32], boxes: NDArray[np.float32]) -> NDArray[np.float32]:
    """Intersection over union of one (4,) box with (N, 4) boxes, all as xmin, ymin, xmax, ymax."""
    top_left = np.maximum(box[:2], boxes[:, :2])
    bottom_right = np.minimum(box[2:], boxes[:, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0.0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def weighted_nms(detections: Detections, *, iou_threshold: float, max_detections: int) -> Detections:
    """At most `max_detections` detections, best first, each merged with the ones it suppresses."""
    order = np.argsort(-detections.scores, kind="stable")
    remaining = order
    boxes: list[NDArray[np.float32]] = []
    keypoints: list[NDArray[np.float32]] = []
    scores: list[float] = []
    while remaining.size and len(scores) < max_detections:
        best = remaining[0]
        overlapping = iou(detections.boxes[best], detections.boxes[remaining]) > iou_threshold
        overlapping[0] = True  # the best box always belongs to its own cluster
        cluster = remaining[overlapping]
        weights = detections.scores[cluster][:, None]
        total = float(weights.sum())
        boxes.append((detections.boxes[cluster] * weights).sum(axis=0) / total)
        keypoints.append((detections.keypoints[cluster] * weights[:, :, None]).sum(axis=0) / total)
        scores.append(float(detections.scores[best]))
        remaining = remaining[~overlapping]
    if not scores:
        return Detections.empty(detections.keypoints.shape[1])
    return Detections(
        np.stack(boxes).astype(np.float32),
        np.stack(keypoints).astype(np.float32),
        np.asarray(scores, np.float32),
    )
