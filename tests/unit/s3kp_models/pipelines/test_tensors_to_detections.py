"""Decoding raw SSD tensors (TensorsToDetectionsCalculator maths) on hand-made inputs."""

from __future__ import annotations

import numpy as np
from s3kp_models.pipelines.tensors_to_detections import decode_detections, sigmoid


def test_a_box_is_an_offset_from_its_anchor_in_model_input_pixels() -> None:
    """GIVEN one anchor at (0.5, 0.25) of a 128 px input and raw values in pixels
    WHEN decoding THEN centre = anchor + offset / 128, size = raw / 128, keypoints likewise."""
    anchors = np.array([[0.5, 0.25]], np.float32)
    raw = np.array([[12.8, -6.4, 32.0, 64.0, 0.0, 0.0, 25.6, 12.8]], np.float32)
    found = decode_detections(raw, np.array([[3.0]], np.float32), anchors, input_size=(128, 128),
                              num_keypoints=2, min_score=0.5)  # fmt: skip
    np.testing.assert_allclose(found.boxes[0], [0.6 - 0.125, 0.2 - 0.25, 0.6 + 0.125, 0.2 + 0.25], atol=1e-6)
    np.testing.assert_allclose(found.keypoints[0], [[0.5, 0.25], [0.7, 0.35]], atol=1e-6)
    np.testing.assert_allclose(found.scores, [1 / (1 + np.exp(-3.0))], rtol=1e-6)


def test_scores_below_the_threshold_are_dropped_and_the_rest_keep_their_order() -> None:
    anchors = np.zeros((3, 2), np.float32)
    raw = np.zeros((3, 4), np.float32)
    logits = np.array([2.0, -2.0, 0.5], np.float32)  # 0.88, 0.12, 0.62
    found = decode_detections(raw, logits, anchors, input_size=(128, 128), num_keypoints=0, min_score=0.5)
    np.testing.assert_allclose(found.scores, sigmoid(np.array([2.0, 0.5], np.float32)))


def test_no_detection_gives_empty_arrays_of_the_right_shape() -> None:
    found = decode_detections(np.zeros((4, 16), np.float32), np.full(4, -10.0, np.float32),
                              np.zeros((4, 2), np.float32), input_size=(128, 128), num_keypoints=6,
                              min_score=0.5)  # fmt: skip
    assert len(found) == 0
    assert found.keypoints.shape == (0, 6, 2)


def test_huge_logits_are_clipped_not_overflowing() -> None:
    values = sigmoid(np.array([-1e6, 0.0, 1e6], np.float32))
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0])
    assert np.all(np.isfinite(values))
