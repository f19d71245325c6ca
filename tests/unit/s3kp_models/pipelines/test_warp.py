"""The numpy warp follows cv::warpAffine's fixed-point rules (INTER_LINEAR | WARP_INVERSE_MAP).

Each expectation is worked out by hand from OpenCV's arithmetic: source points on a 1/32 px grid
(rounded to the nearest step), weights in 1/32 along each axis, the sum rounded half up to 8 bits. The
whole-pipeline check against OpenCV 4.12's own answers is tests/integration/test_warp_baseline.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from s3kp_models.pipelines.warp import Border, warp_affine


def shift(dx: float, dy: float = 0.0) -> np.ndarray:
    """Output pixel (c, r) samples the source at (c + dx, r + dy)."""
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])


def row(*values: int) -> np.ndarray:
    """A one-row, one-channel image."""
    return np.array([values], np.uint8)[..., None]


def test_the_identity_returns_the_image_unchanged() -> None:
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(warp_affine(image, shift(0), (7, 5), Border.ZERO), image)


def test_a_whole_pixel_shift_moves_pixels_and_reads_black_or_the_edge_past_the_border() -> None:
    image = row(10, 20, 30)
    assert warp_affine(image, shift(1), (3, 1), Border.ZERO)[0, :, 0].tolist() == [20, 30, 0]
    assert warp_affine(image, shift(1), (3, 1), Border.REPLICATE)[0, :, 0].tolist() == [20, 30, 30]
    assert warp_affine(image, shift(-1), (3, 1), Border.REPLICATE)[0, :, 0].tolist() == [10, 10, 20]


@pytest.mark.parametrize(("left", "right", "expected"), [(0, 1, 1), (1, 2, 2), (2, 3, 3), (100, 201, 151)])
def test_halfway_between_two_pixels_rounds_half_up(left: int, right: int, expected: int) -> None:
    """(left x 16 + right x 16) / 32: 0.5 -> 1, 1.5 -> 2, 2.5 -> 3 (never to even), 150.5 -> 151."""
    assert warp_affine(row(left, right), shift(0.5), (1, 1), Border.ZERO)[0, 0, 0] == expected


@pytest.mark.parametrize(
    ("dx", "expected"),
    [
        (0.015, 0),  # 15.36/1024 px: nearer 0 than 1/32 (32/1024), read exactly at pixel 0
        (0.016, 8),  # 16.38/1024 px: rounds up to 1/32 -> 255 / 32 = 7.97 -> 8
        (1 / 32, 8),
        (0.5, 128),  # 127.5 rounds up
        (31.4 / 32, 247),  # to 31/32: 255 x 31 / 32 = 247.03
        (31.6 / 32, 255),  # to 32/32: the next pixel
    ],
)
def test_source_points_snap_to_the_nearest_thirty_second_of_a_pixel(dx: float, expected: int) -> None:
    assert warp_affine(row(0, 255), shift(dx), (1, 1), Border.REPLICATE)[0, 0, 0] == expected


def test_half_a_pixel_outside_blends_with_black_or_with_the_edge() -> None:
    image = row(200, 200)
    assert warp_affine(image, shift(-0.5), (1, 1), Border.ZERO)[0, 0, 0] == 100
    assert warp_affine(image, shift(-0.5), (1, 1), Border.REPLICATE)[0, 0, 0] == 200
    assert warp_affine(image, shift(1.5), (1, 1), Border.ZERO)[0, 0, 0] == 100


def test_both_axes_weigh_the_four_neighbours() -> None:
    """At (0.25, 0.5) of [[0, 64], [128, 255]]: 0.375 x 0 + 0.125 x 64 + 0.375 x 128 + 0.125 x 255."""
    image = np.array([[0, 64], [128, 255]], np.uint8)[..., None]
    value = 0.375 * 0 + 0.125 * 64 + 0.375 * 128 + 0.125 * 255  # 87.875
    assert warp_affine(image, shift(0.25, 0.5), (1, 1), Border.ZERO)[0, 0, 0] == round(value)


def test_far_outside_reads_black_or_the_nearest_corner() -> None:
    image = np.array([[1, 2], [3, 4]], np.uint8)[..., None]
    assert warp_affine(image, shift(-1e6, 1e6), (1, 1), Border.ZERO)[0, 0, 0] == 0
    assert warp_affine(image, shift(-1e6, 1e6), (1, 1), Border.REPLICATE)[0, 0, 0] == 3


def test_a_rotation_reads_each_channel_from_the_same_place() -> None:
    """A quarter turn: output pixel (column c, row r) reads source (column r, row 2 - c), all channels."""
    image = np.arange(27, dtype=np.uint8).reshape(3, 3, 3)
    quarter = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 2.0]])
    turned = warp_affine(image, quarter, (3, 3), Border.ZERO)
    expected = np.array([[image[2 - c, r] for c in range(3)] for r in range(3)])
    np.testing.assert_array_equal(turned, expected)
