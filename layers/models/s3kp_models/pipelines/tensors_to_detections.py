"""Turning an SSD detector's raw tensors into scored boxes and keypoints (TensorsToDetectionsCalculator).

The MediaPipe detectors emit, per anchor, (x_centre, y_centre, width, height, kp0_x, kp0_y, ...) in
model-input pixels relative to the anchor centre, and one raw logit. Options used by every graph here:
`reverse_output_order: true`, `sigmoid_score: true`, `score_clipping_thresh: 100`, scales = input size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SCORE_CLIPPING = 100.0


@dataclass(frozen=True)
class Detections:
    """Boxes (N, 4) as xmin, ymin, xmax, ymax; keypoints (N, K, 2) as x, y; scores (N,); one frame."""

    boxes: NDArray[np.float32]
    keypoints: NDArray[np.float32]
    scores: NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, indices: NDArray[np.intp] | list[int]) -> Detections:
        return Detections(self.boxes[indices], self.keypoints[indices], self.scores[indices])

    @staticmethod
    def empty(num_keypoints: int) -> Detections:
        return Detections(
            np.zeros((0, 4), np.float32), np.zeros((0, num_keypoints, 2), np.float32), np.zeros(0, np.float32)
        )


def sigmoid(values: NDArray[np.float32]) -> NDArray[np.float32]:
    """The logistic function, written with tanh so large logits cannot overflow."""
    result: NDArray[np.float32] = (0.5 * (1.0 + np.tanh(0.5 * np.asarray(values, np.float32)))).astype(
        np.float32
    )
    return result


def decode_detections(
    raw_boxes: NDArray[np.float32],
    raw_scores: NDArray[np.float32],
    anchors: NDArray[np.float32],
    *,
    input_size: tuple[int, int],
    num_keypoints: int,
    min_score: float,
) -> Detections:
    """Detections scoring at least `min_score`, in 0..1 coordinates of the (letterboxed) model input.

    raw_boxes: (N, 4 + 2K); raw_scores: (N,) or (N, 1) logits; anchors: (N, 2) centres; input_size: (w, h).
    """
    scores = sigmoid(np.clip(raw_scores.reshape(-1), -SCORE_CLIPPING, SCORE_CLIPPING))
    keep = np.flatnonzero(scores >= min_score)
    if keep.size == 0:
        return Detections.empty(num_keypoints)
    scale = np.asarray(input_size, np.float32)
    values = raw_boxes[keep, : 4 + 2 * num_keypoints].astype(np.float32)
    centres = anchors[keep]
    box_centre = values[:, 0:2] / scale + centres
    half_size = values[:, 2:4] / scale / 2.0
    keypoints = values[:, 4:].reshape(len(keep), num_keypoints, 2) / scale + centres[:, None, :]
    boxes = np.concatenate([box_centre - half_size, box_centre + half_size], axis=1)
    return Detections(boxes.astype(np.float32), keypoints.astype(np.float32), scores[keep])
