"""Rotated regions of interest: MediaPipe's DetectionsToRects / AlignmentPointsRects / RectTransformation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from s3kp_models.pipelines.roi import (
    Rect,
    associate,
    image_to_rect,
    letterbox,
    normalize_radians,
    rect_from_alignment_points,
    rect_from_box_and_keypoints,
    rect_to_image,
    rotation_between,
    transform_rect,
    unrotated_iou,
)


@pytest.mark.parametrize(
    ("end", "expected_degrees"),
    [
        pytest.param((0.0, -1.0), 0.0, id="pointing-up-is-upright"),
        pytest.param((1.0, 0.0), 90.0, id="pointing-right-turns-clockwise"),
        pytest.param((-1.0, 0.0), -90.0, id="pointing-left-turns-anticlockwise"),
        pytest.param((0.0, 1.0), -180.0, id="pointing-down-is-upside-down"),
    ],
)
def test_rotation_brings_the_vector_to_90_degrees(end: tuple[float, float], expected_degrees: float) -> None:
    start = np.zeros(2, np.float32)
    angle = rotation_between(start, np.asarray(end, np.float32), target_degrees=90)
    assert math.degrees(angle) == pytest.approx(expected_degrees)


def test_normalize_radians_wraps_into_minus_pi_to_pi() -> None:
    assert normalize_radians(3 * math.pi / 2) == pytest.approx(-math.pi / 2)
    assert normalize_radians(-3 * math.pi / 2) == pytest.approx(math.pi / 2)
    assert normalize_radians(0.25) == pytest.approx(0.25)


def test_alignment_points_rect_is_centred_on_the_first_point_and_twice_the_distance_wide() -> None:
    """GIVEN a pose detection whose hip centre is at (100, 200) and whose size point is 50 px above it
    THEN the rect is a 100 x 100 square on the hip centre, upright."""
    points = np.array([[100, 200], [100, 150]], np.float32)
    rect = rect_from_alignment_points(points, 0, 1, target_degrees=90)
    assert rect == Rect(100.0, 200.0, 100.0, 100.0, pytest.approx(0.0))


def test_box_rect_takes_the_box_and_the_rotation_of_two_keypoints() -> None:
    box = np.array([10, 20, 50, 40], np.float32)
    keypoints = np.array([[30, 30], [0, 0], [40, 30]], np.float32)  # wrist -> finger base points right
    rect = rect_from_box_and_keypoints(box, keypoints, 0, 2, target_degrees=90)
    assert (rect.x_center, rect.y_center, rect.width, rect.height) == (30.0, 30.0, 40.0, 20.0)
    assert rect.rotation == pytest.approx(math.pi / 2)


def test_transform_shifts_along_the_rects_own_axes_then_squares_then_scales() -> None:
    """GIVEN a palm rect rotated 90 degrees (fingers point right on screen)
    WHEN shifting by -0.5 of its height THEN the centre moves right (towards the fingers), not up."""
    palm = Rect(100.0, 100.0, 40.0, 20.0, math.pi / 2)
    hand = transform_rect(palm, scale=2.0, shift_y=-0.5, square_long=True)
    assert hand.x_center == pytest.approx(110.0)
    assert hand.y_center == pytest.approx(100.0)
    assert (hand.width, hand.height) == (80.0, 80.0)
    assert hand.rotation == palm.rotation


def test_letterbox_grows_the_short_side_to_the_tensor_aspect() -> None:
    assert letterbox(Rect(0, 0, 200, 100), 128, 128) == Rect(0, 0, 200, 200)
    assert letterbox(Rect(0, 0, 100, 300), 128, 128) == Rect(0, 0, 300, 300)
    assert letterbox(Rect(0, 0, 100, 100), 256, 128) == Rect(0, 0, 200, 100)


def test_rect_corners_land_on_the_rotated_rectangle_and_back() -> None:
    rect = Rect(50.0, 40.0, 20.0, 10.0, math.pi / 2)
    corners = np.array([[0, 0], [1, 0], [0.5, 0.5]], np.float32)
    on_image = rect_to_image(rect, corners)
    # Rotated 90 degrees clockwise: the rect's top-left corner ends up top-right on screen.
    np.testing.assert_allclose(on_image, [[55, 30], [55, 50], [50, 40]], atol=1e-5)
    np.testing.assert_allclose(image_to_rect(rect, on_image), corners, atol=1e-6)


def test_overlapping_hand_rects_keep_the_later_one_and_disjoint_ones_all_stay() -> None:
    """GIVEN rects A, B (same place as A, shifted 1 px) and C (elsewhere), in score order
    THEN MediaPipe's association keeps C and B: B replaces A, and the order follows the input."""
    a = Rect(50.0, 50.0, 20.0, 20.0)
    b = Rect(51.0, 50.0, 20.0, 20.0, rotation=1.0)  # rotation is ignored by the overlap test
    c = Rect(150.0, 50.0, 20.0, 20.0)
    assert associate([a, c, b], min_similarity=0.5) == [1, 2]
    assert associate([a, c], min_similarity=0.5) == [0, 1]


def test_a_hand_rect_under_the_graphs_threshold_never_displaces_one() -> None:
    """GIVEN A and C from detections the graph reports and B (on A's hand) from a weaker one a low
    request admitted THEN A stays, B is dropped, and a weaker rect on its own (D) joins."""
    a = Rect(50.0, 50.0, 20.0, 20.0)
    b = Rect(51.0, 50.0, 20.0, 20.0)
    c = Rect(150.0, 50.0, 20.0, 20.0)
    d = Rect(250.0, 50.0, 20.0, 20.0)
    e = Rect(251.0, 50.0, 20.0, 20.0)  # weaker still, on D's hand: D came first and stays
    assert associate([a, c, b, d, e], min_similarity=0.5, graph_count=2) == [0, 1, 3]
    assert associate([a, c, b], min_similarity=0.5, graph_count=3) == [1, 2]  # all the graph's: MediaPipe


def test_unrotated_iou_of_half_overlapping_squares() -> None:
    assert unrotated_iou(Rect(0, 0, 2, 2), Rect(1, 0, 2, 2)) == pytest.approx(1 / 3)
    assert unrotated_iou(Rect(0, 0, 2, 2), Rect(5, 5, 2, 2)) == 0.0
