"""Boxes of people and hands: around the landmarks one can see, with a margin, inside the image."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from s3kp_core.skeletons import POSE_33
from s3kp_models.pipelines.boxes import MARGIN, landmark_box, person_box

IMAGE = (400, 300)  # width, height
DETECTOR_BOX = np.array([10, 20, 30, 40], np.float32)


def corners(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x, y, width, height = box
    return x - width / 2, y - height / 2, x + width / 2, y + height / 2


def test_low_visibility_landmarks_do_not_stretch_the_box() -> None:
    """GIVEN three visible landmarks and two unseen ones far away (a neighbour's side, below the hips)
    WHEN the box is made THEN it spans the visible ones plus the margin only."""
    points = np.array([[100, 100], [200, 100], [150, 200], [390, 110], [150, 290]], np.float32)
    scores = [0.9, 0.95, 0.8, 0.2, 0.01]

    box = corners(landmark_box(points, scores, IMAGE, DETECTOR_BOX))

    pad_x, pad_y = MARGIN * 100, MARGIN * 100
    assert box == pytest.approx((100 - pad_x, 100 - pad_y, 200 + pad_x, 200 + pad_y))


def test_landmarks_outside_the_image_are_left_out_even_when_confident() -> None:
    points = np.array([[100, 100], [200, 100], [150, 200], [150, 420], [-60, 150]], np.float32)

    box = corners(landmark_box(points, [0.9] * 5, IMAGE, DETECTOR_BOX, margin=0.0))

    assert box == pytest.approx((100, 100, 200, 200))


def test_too_few_visible_landmarks_fall_back_to_the_detector_box() -> None:
    points = np.array([[100, 100], [200, 100], [150, 200]], np.float32)

    box = corners(landmark_box(points, [0.9, 0.1, 0.1], IMAGE, DETECTOR_BOX))

    assert box == pytest.approx(tuple(DETECTOR_BOX))


def test_the_margin_stops_at_the_image_border() -> None:
    points = np.array([[0, 0], [400, 0], [200, 300]], np.float32)

    box = corners(landmark_box(points, [1.0] * 3, IMAGE, DETECTOR_BOX))

    assert box == pytest.approx((0, 0, 400, 300))


def portrait() -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """A head-and-shoulders portrait: face and shoulders seen, everything from the hips down off-frame."""
    names = POSE_33.keypoint_names
    pixels = np.tile(np.array([[200, 400]], np.float32), (len(names), 1))  # unseen: below the frame
    scores = np.zeros(len(names), np.float32)
    seen = {
        "left_eye": (220, 100), "right_eye": (180, 100), "nose": (200, 120),
        "mouth_left": (215, 140), "mouth_right": (185, 140),
        "left_shoulder": (280, 220), "right_shoulder": (120, 220),
    }  # fmt: skip
    for name, point in seen.items():
        pixels[names.index(name)] = point
        scores[names.index(name)] = 0.99
    pixels[names.index("left_hip")] = (270, 500)
    pixels[names.index("right_hip")] = (130, 500)
    return pixels, scores


def test_a_persons_box_takes_in_the_crown_above_the_eyes() -> None:
    """GIVEN eyes 40 px above the mouth WHEN the box is made THEN its top is above the eyes by more than
    that distance (the crown), not at the eyes."""
    pixels, scores = portrait()

    _, top, _, _ = corners(person_box(pixels, scores, scores, IMAGE, DETECTOR_BOX))

    assert top < 100 - 40


def test_a_torso_cut_by_the_frame_reaches_the_frames_edge() -> None:
    """GIVEN shoulders in the picture and hips below it WHEN the box is made THEN it goes down to the
    bottom edge (the body continues there), not to the shoulders."""
    pixels, scores = portrait()

    left, _, right, bottom = corners(person_box(pixels, scores, scores, IMAGE, DETECTOR_BOX))

    assert bottom == pytest.approx(IMAGE[1])
    assert (left, right) == pytest.approx((120 - MARGIN * 160, 280 + MARGIN * 160))


def test_a_low_presence_landmark_is_left_out_of_a_persons_box() -> None:
    """Visibility alone is not enough: MediaPipe draws a landmark only when its presence is high too."""
    pixels, scores = portrait()
    elbow = POSE_33.keypoint_names.index("left_elbow")
    pixels[elbow] = (390, 250)
    visibility, presence = scores.copy(), scores.copy()
    visibility[elbow], presence[elbow] = 0.6, 0.05

    _, _, right, _ = corners(person_box(pixels, visibility, presence, IMAGE, DETECTOR_BOX))

    assert right < 390
