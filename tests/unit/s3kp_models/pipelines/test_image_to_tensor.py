"""Cropping a rotated, letterboxed rect into a model tensor, with MediaPipe's sampling conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from s3kp_models.pipelines.image_to_tensor import Border, full_image_rect, sample_rect
from s3kp_models.pipelines.roi import Rect, letterbox


@pytest.fixture
def gradient() -> np.ndarray:
    """8 x 8 RGB image: red = column * 10, green = row * 10, blue = 200."""
    rows, cols = np.indices((8, 8))
    return np.stack([cols * 10, rows * 10, np.full((8, 8), 200)], axis=-1).astype(np.uint8)


def test_the_full_image_rect_at_the_same_size_is_the_image(gradient: np.ndarray) -> None:
    tensor = sample_rect(
        gradient, full_image_rect(gradient), 8, 8, value_range=(0.0, 255.0), border=Border.ZERO
    )
    assert tensor.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(tensor[0], gradient)


def test_values_are_scaled_into_the_models_range(gradient: np.ndarray) -> None:
    tensor = sample_rect(
        gradient, full_image_rect(gradient), 8, 8, value_range=(-1.0, 1.0), border=Border.ZERO
    )
    assert tensor[0, 0, 0, 0] == pytest.approx(-1.0)  # 0 -> -1
    assert tensor[0, 0, 0, 2] == pytest.approx(200 / 255 * 2 - 1)


def test_downscaling_samples_tensor_pixel_j_at_rect_position_j_over_size(gradient: np.ndarray) -> None:
    """GIVEN an 8 px image squeezed into 4 px THEN tensor column j reads image column 2j (no anti-alias)."""
    tensor = sample_rect(
        gradient, full_image_rect(gradient), 4, 4, value_range=(0.0, 255.0), border=Border.ZERO
    )
    np.testing.assert_array_equal(tensor[0, 0, :, 0], [0, 20, 40, 60])


def test_a_half_turn_reads_the_image_upside_down(gradient: np.ndarray) -> None:
    rect = Rect(3.5, 3.5, 8.0, 8.0, math.pi)
    tensor = sample_rect(gradient, rect, 8, 8, value_range=(0.0, 255.0), border=Border.REPLICATE)
    # Rotating about the centre between pixels maps pixel (r, c) to (7 - r, 7 - c), up to a half-pixel shift.
    np.testing.assert_allclose(tensor[0, 0, 0, :2], [70, 70], atol=1)


def test_letterboxing_pads_with_black_or_with_the_edge(gradient: np.ndarray) -> None:
    """GIVEN a wide strip of the image letterboxed into a square tensor
    THEN rows outside the image are black with BORDER_ZERO and copies of the edge with BORDER_REPLICATE."""
    strip = gradient[:2]
    rect = letterbox(full_image_rect(strip), 8, 8)
    zero = sample_rect(strip, rect, 8, 8, value_range=(0.0, 255.0), border=Border.ZERO)[0]
    replicate = sample_rect(strip, rect, 8, 8, value_range=(0.0, 255.0), border=Border.REPLICATE)[0]
    assert np.all(zero[0] == 0)
    np.testing.assert_array_equal(replicate[0], strip[0])
    np.testing.assert_array_equal(zero[3], strip[0])  # the strip sits in the middle rows
