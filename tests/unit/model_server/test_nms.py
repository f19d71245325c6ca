"""MediaPipe's weighted non-maximum suppression on synthetic boxes."""

from __future__ import annotations

import numpy as np
import pytest

from s3kp.model_server.pipelines.decoding import Detections
from s3kp.model_server.pipelines.nms import iou, weighted_nms


def detections(
    boxes: list[list[float]], scores: list[float], keypoints: list[list[float]] | None = None
) -> Detections:
    points = np.asarray(keypoints if keypoints is not None else [[0.0, 0.0]] * len(boxes), np.float32)
    return Detections(np.asarray(boxes, np.float32), points[:, None, :], np.asarray(scores, np.float32))


def test_iou_of_identical_disjoint_and_half_overlapping_boxes() -> None:
    box = np.array([0, 0, 2, 2], np.float32)
    others = np.array([[0, 0, 2, 2], [3, 3, 4, 4], [1, 0, 3, 2]], np.float32)
    np.testing.assert_allclose(iou(box, others), [1.0, 0.0, 2 / 6], rtol=1e-6)


def test_overlapping_boxes_merge_into_their_score_weighted_mean_keeping_the_best_score() -> None:
    """GIVEN two strongly overlapping boxes scored 0.9 and 0.3 and a separate one
    THEN two detections remain; the first is the 3:1 weighted mean of the pair, with score 0.9."""
    found = weighted_nms(
        detections([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], [0.9, 0.3, 0.6],
                   keypoints=[[4, 4], [8, 8], [55, 55]]),
        iou_threshold=0.3,
        max_detections=10,
    )  # fmt: skip
    np.testing.assert_allclose(found.scores, [0.9, 0.6])
    np.testing.assert_allclose(found.boxes[0], [0.25, 0.25, 10.25, 10.25], rtol=1e-6)
    np.testing.assert_allclose(found.keypoints[0, 0], [5.0, 5.0], rtol=1e-6)
    np.testing.assert_allclose(found.boxes[1], [50, 50, 60, 60])


def test_boxes_overlapping_below_the_threshold_both_survive() -> None:
    found = weighted_nms(
        detections([[0, 0, 2, 2], [1, 0, 3, 2]], [0.9, 0.8]), iou_threshold=0.4, max_detections=5
    )
    assert len(found) == 2  # IoU 1/3 < 0.4


@pytest.mark.parametrize("limit", [1, 2])
def test_max_detections_keeps_the_best_ones(limit: int) -> None:
    boxes = [[i * 10, 0, i * 10 + 5, 5] for i in range(4)]
    found = weighted_nms(detections(boxes, [0.5, 0.9, 0.7, 0.6]), iou_threshold=0.3, max_detections=limit)
    np.testing.assert_allclose(found.scores, [0.9, 0.7][:limit])


def test_nothing_in_nothing_out() -> None:
    assert len(weighted_nms(Detections.empty(2), iou_threshold=0.3, max_detections=5)) == 0
