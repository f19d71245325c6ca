"""Non-maximum suppression the way MediaPipe's NonMaxSuppressionCalculator does it for these models, and
the plain suppression a client's `overlap` asks for.

`WEIGHTED` (the faces, pose and palm graphs): the best remaining candidate seeds a cluster and takes every
remaining candidate overlapping it by more than the graph's `min_suppression_threshold`; the cluster is
the score-weighted mean of its members (boxes and keypoints) and keeps the seed's score. That averaging is
why MediaPipe's boxes are steadier than plain NMS; we do the same to land where it lands.

The one departure, so that a threshold below the graph's never moves an answer: a cluster seeded at or
above the graph's score threshold averages only its members at or above it (MediaPipe never decodes the
others); the weaker members it takes in are suppressed without weight. See docs/model-server.md.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from s3kp_models.pipelines.tensors_to_detections import Detections


def iou(box: NDArray[np.float32], boxes: NDArray[np.float32]) -> NDArray[np.float32]:
    """Intersection over union of one (4,) box with (N, 4) boxes, all as xmin, ymin, xmax, ymax."""
    top_left = np.maximum(box[:2], boxes[:, :2])
    bottom_right = np.minimum(box[2:], boxes[:, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0.0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = area + areas - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def weighted_nms(
    detections: Detections, *, iou_threshold: float, graph_threshold: float = 0.0, min_seed: float = 0.0
) -> Detections:
    """MediaPipe's weighted NMS over every decoded candidate; clusters best first.

    graph_threshold: the graph's own score threshold; a cluster seeded at or above it is blended from its
    members at or above it only, which makes it exactly MediaPipe's detection whatever weaker candidates
    were decoded too. A cluster seeded below it (it then has no stronger member) is blended from all of its
    members. min_seed: stop at the first seed scoring under it (the clusters before are unaffected).
    """
    order = np.argsort(-detections.scores, kind="stable")
    remaining = order
    boxes: list[NDArray[np.float32]] = []
    keypoints: list[NDArray[np.float32]] = []
    scores: list[float] = []
    while remaining.size:
        best = remaining[0]
        seed_score = float(detections.scores[best])
        if seed_score < min_seed:
            break
        overlapping = iou(detections.boxes[best], detections.boxes[remaining]) > iou_threshold
        overlapping[0] = True  # the best box always belongs to its own cluster
        cluster = remaining[overlapping]
        if seed_score >= graph_threshold:
            cluster = cluster[detections.scores[cluster] >= graph_threshold]
        weights = detections.scores[cluster][:, None]
        total = float(weights.sum())
        boxes.append((detections.boxes[cluster] * weights).sum(axis=0) / total)
        keypoints.append((detections.keypoints[cluster] * weights[:, :, None]).sum(axis=0) / total)
        scores.append(seed_score)
        remaining = remaining[~overlapping]
    if not scores:
        return Detections.empty(detections.keypoints.shape[1])
    return Detections(
        np.stack(boxes).astype(np.float32),
        np.stack(keypoints).astype(np.float32),
        np.asarray(scores, np.float32),
    )


def plain_nms(boxes: NDArray[np.float32], scores: NDArray[np.float32], *, iou_threshold: float) -> list[int]:
    """Indices kept by greedy NMS, best first: a box overlapping a kept, better one by more than
    `iou_threshold` is dropped. Nothing is averaged, so what is kept is unchanged."""
    kept: list[int] = []
    for index in np.argsort(-scores, kind="stable"):
        if kept and bool((iou(boxes[index], boxes[kept]) > iou_threshold).any()):
            continue
        kept.append(int(index))
    return kept
