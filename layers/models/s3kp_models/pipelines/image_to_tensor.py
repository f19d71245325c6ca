"""Cutting a (rotated, letterboxed) region out of an image into a model's input tensor.

Reproduces MediaPipe's ImageToTensorCalculator (its OpenCV converter): the rect's corners map onto the
tensor's outer corners, so tensor pixel j samples the rect at j / size (pixel centres at integers), with
cv::warpAffine's bilinear interpolation (no anti-aliasing) into 8 bits, then scaled to the float range.
`Border.ZERO` reads black outside the image, `Border.REPLICATE` the nearest edge pixel.

The interpolation is OpenCV's fixed-point arithmetic reproduced in numpy (`warp`): its rounding is what
lands keypoints within a pixel of MediaPipe's, and no OpenCV ships in the Lambda package.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from s3kp_models.pipelines.base import RGBImage
from s3kp_models.pipelines.roi import Rect
from s3kp_models.pipelines.warp import Border, warp_affine

__all__ = ["Border", "full_image_rect", "sample_rect", "sampling_matrix"]


def full_image_rect(image: RGBImage) -> Rect:
    height, width = image.shape[:2]
    return Rect(width / 2.0, height / 2.0, float(width), float(height))


def sampling_matrix(rect: Rect, tensor_width: int, tensor_height: int) -> NDArray[np.float64]:
    """2x3 affine map from tensor pixel (column, row) to the image point it samples (centres at integers)."""
    cos, sin = math.cos(rect.rotation), math.sin(rect.rotation)
    step_x, step_y = rect.width / tensor_width, rect.height / tensor_height
    linear = np.array([[cos * step_x, -sin * step_y], [sin * step_x, cos * step_y]])
    corner = np.array([rect.x_center, rect.y_center]) - linear @ np.array([tensor_width, tensor_height]) / 2
    return np.column_stack([linear, corner])


def sample_rect(
    image: RGBImage,
    rect: Rect,
    tensor_width: int,
    tensor_height: int,
    *,
    value_range: tuple[float, float],
    border: Border,
) -> NDArray[np.float32]:
    """A (1, tensor_height, tensor_width, 3) float32 tensor of the image in `rect` (already letterboxed)."""
    crop = warp_affine(
        image, sampling_matrix(rect, tensor_width, tensor_height), (tensor_width, tensor_height), border
    )
    low, high = value_range
    return (crop.astype(np.float32) * ((high - low) / 255.0) + low)[None]
