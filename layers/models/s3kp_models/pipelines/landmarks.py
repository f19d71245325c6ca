"""The second stage of the two-stage models: crop a rotated region, run the landmark model, project back."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from s3kp_models.pipelines.base import RGBImage
from s3kp_models.pipelines.image_to_tensor import Border, sample_rect
from s3kp_models.pipelines.interpreter_pool import InterpreterPool
from s3kp_models.pipelines.roi import Rect, letterbox
from s3kp_models.pipelines.tensors_to_detections import sigmoid


def crop_and_run(
    pool: InterpreterPool, image: RGBImage, rect: Rect
) -> tuple[Rect, list[NDArray[np.float32]]]:
    """The letterboxed rect the model actually saw, and the model's outputs for it (0..1 input range)."""
    width, height = pool.input_size
    seen = letterbox(rect, width, height)
    tensor = sample_rect(image, seen, width, height, value_range=(0.0, 1.0), border=Border.REPLICATE)
    return seen, pool.run(tensor)


def refine_with_heatmap(
    points: NDArray[np.float32],
    heatmap: NDArray[np.float32],
    *,
    kernel_size: int = 7,
    min_confidence: float = 0.5,
) -> NDArray[np.float32]:
    """RefineLandmarksFromHeatmapCalculator: each point moves to the weighted mean of its heatmap window.

    points: (K, 2) in 0..1 of the crop; heatmap: (H, W, >=K) raw logits. Points whose window is not
    confident enough, or that fall outside the heatmap, stay where the regression put them.
    """
    rows, cols = heatmap.shape[:2]
    offset = (kernel_size - 1) // 2
    refined = points.copy()
    for index, (x, y) in enumerate(points):
        col, row = int(x * cols), int(y * rows)  # C++ float->int truncates toward zero
        if not (0 <= col < cols and 0 <= row < rows):
            continue
        top, left = max(0, row - offset), max(0, col - offset)
        window = sigmoid(
            heatmap[top : min(rows, row + offset + 1), left : min(cols, col + offset + 1), index]
        )
        total = float(window.sum())
        if window.max() >= min_confidence and total > 0:
            window_rows, window_cols = np.indices(window.shape)
            refined[index, 0] = float(((window_cols + left) * window).sum()) / cols / total
            refined[index, 1] = float(((window_rows + top) * window).sum()) / rows / total
    return refined
