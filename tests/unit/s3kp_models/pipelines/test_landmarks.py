"""Refining pose landmarks with the heatmap (RefineLandmarksFromHeatmapCalculator)."""

from __future__ import annotations

import numpy as np
from s3kp_models.pipelines.landmarks import refine_with_heatmap

SURE, UNSURE = 12.0, -30.0  # logits: sigmoid ~1 and ~0


def heatmap_with_peak(row: int, col: int, size: int = 16) -> np.ndarray:
    heatmap = np.full((size, size, 1), UNSURE, np.float32)
    heatmap[row, col, 0] = SURE
    return heatmap


def test_a_point_moves_to_the_confident_peak_in_its_window() -> None:
    """GIVEN a point at cell (5, 5) of a 16-cell heatmap and a sharp peak at cell (7, 6)
    THEN the point moves to that cell's corner coordinate (col / 16, row / 16), as MediaPipe computes it."""
    refined = refine_with_heatmap(np.array([[5.2 / 16, 5.4 / 16]], np.float32), heatmap_with_peak(7, 6))
    np.testing.assert_allclose(refined[0], [6 / 16, 7 / 16], atol=2e-3)


def test_a_peak_outside_the_7_cell_window_is_ignored() -> None:
    point = np.array([[2 / 16, 2 / 16]], np.float32)
    refined = refine_with_heatmap(point, heatmap_with_peak(12, 12))
    np.testing.assert_array_equal(refined, point)  # nothing confident nearby: unchanged


def test_points_outside_the_heatmap_stay_where_they_are() -> None:
    points = np.array([[1.2, 0.5], [0.5, -0.2]], np.float32)
    np.testing.assert_array_equal(refine_with_heatmap(points, np.full((16, 16, 2), SURE, np.float32)), points)
