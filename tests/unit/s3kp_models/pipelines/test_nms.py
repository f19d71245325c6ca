"""MediaPipe's weighted non-maximum suppression on synthetic boxes."""

from __future__ import annotations

import numpy as np
from s3kp_models.params import MIN_THRESHOLD
from s3kp_models.pipelines.detector import CANDIDATE_FLOOR, choose
from s3kp_models.pipelines.nms import iou, plain_nms, weighted_nms
from s3kp_models.pipelines.tensors_to_detections import Detections


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
    )  # fmt: skip
    np.testing.assert_allclose(found.scores, [0.9, 0.6])
    np.testing.assert_allclose(found.boxes[0], [0.25, 0.25, 10.25, 10.25], rtol=1e-6)
    np.testing.assert_allclose(found.keypoints[0, 0], [5.0, 5.0], rtol=1e-6)
    np.testing.assert_allclose(found.boxes[1], [50, 50, 60, 60])


def test_boxes_overlapping_below_the_threshold_both_survive() -> None:
    found = weighted_nms(detections([[0, 0, 2, 2], [1, 0, 3, 2]], [0.9, 0.8]), iou_threshold=0.4)
    assert len(found) == 2  # IoU 1/3 < 0.4


def test_weaker_candidates_never_move_a_cluster_the_graph_reports() -> None:
    """GIVEN a 0.9 box, a 0.6 box on it, and 0.45 and 0.2 boxes on it too (decoded because a request asked
    below the graph's 0.5) THEN the cluster is the 0.9/0.6 blend alone, exactly as when only the graph's
    candidates were decoded, and the weaker boxes are swallowed, not reported."""
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [-2, -2, 8, 8], [2, 0, 12, 10]]
    points = [[4, 4], [8, 8], [0, 0], [9, 9]]
    everything = weighted_nms(
        detections(boxes, [0.9, 0.6, 0.45, 0.2], points), iou_threshold=0.3, graph_threshold=0.5
    )
    graph_only = weighted_nms(detections(boxes[:2], [0.9, 0.6], points[:2]), iou_threshold=0.3)
    np.testing.assert_array_equal(everything.boxes, graph_only.boxes)
    np.testing.assert_array_equal(everything.keypoints, graph_only.keypoints)
    np.testing.assert_allclose(everything.scores, [0.9])


def test_a_cluster_seeded_under_the_graphs_threshold_blends_its_own_members() -> None:
    """GIVEN one 0.4 box with a 0.1 box on it and nothing the graph reports THEN one 0.4 cluster, the 4:1
    blend of the two, and the same one whatever seed cut-off stops the loop after it."""
    found = detections(
        [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], [0.4, 0.1, 0.05], [[0, 0], [5, 5], [0, 0]]
    )
    blended = weighted_nms(found, iou_threshold=0.3, graph_threshold=0.5, min_seed=0.3)
    np.testing.assert_allclose(blended.scores, [0.4])
    np.testing.assert_allclose(blended.keypoints[0, 0], [1.0, 1.0], rtol=1e-6)
    everything = weighted_nms(found, iou_threshold=0.3, graph_threshold=0.5)
    np.testing.assert_allclose(everything.scores, [0.4, 0.05])
    np.testing.assert_array_equal(everything.keypoints[:1], blended.keypoints)


def test_plain_nms_drops_and_never_averages() -> None:
    boxes = np.asarray([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.asarray([0.6, 0.9, 0.7], np.float32)
    assert plain_nms(boxes, scores, iou_threshold=0.3) == [1, 2]
    assert plain_nms(boxes, scores, iou_threshold=1.0) == [1, 2, 0]


def test_choose_filters_by_confidence_then_suppresses_best_first() -> None:
    found = detections(
        [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [80, 80, 90, 90]], [0.9, 0.6, 0.45, 0.2]
    )
    assert choose(found, confidence=0.4, iou_threshold=0.3) == [0, 2]
    assert choose(found, confidence=0.4, iou_threshold=0.9) == [0, 1, 2]
    assert choose(found, confidence=0.95, iou_threshold=0.3) == []


def test_candidates_are_decoded_down_to_the_lowest_confidence_the_server_accepts() -> None:
    assert CANDIDATE_FLOOR == MIN_THRESHOLD


def test_nothing_in_nothing_out() -> None:
    assert len(weighted_nms(Detections.empty(2), iou_threshold=0.3)) == 0
