"""Cutting a (rotated, letterboxed) region out of an image into a model's input tensor.

Reproduces MediaPipe's ImageToTensorCalculator (its OpenCV converter): the rect's corners map onto the
tensor's outer corners, so tensor pixel j samples the rect at j / size (pixel centres at integers), with
cv::warpAffine's bilinear interpolation (no anti-aliasing) into 8 bits, then scaled to the float range.
`BORDER_ZERO` reads black outside the image, `BORDER_REPLICATE` the nearest edge pixel.

We call OpenCV too, rather than resampling another way: the landmark models are sensitive enough that
cv::warpAffine's own rounding is what lands keypoints within a pixel of MediaPipe's (a Pillow version
was off by several pixels). OpenCV releases the GIL while it works.
"""

from __future__ import annotations

import math
from enum import Enum

import cv2
import numpy as np
from numpy.typing import NDArray

from s3kp.model_server.pipelines.base import RGBImage
from s3kp.model_server.pipelines.roi import Rect


class Border(Enum):
    ZERO = cv2.BORDER_CONSTANT
    REPLICATE = cv2.BORDER_REPLICATE


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
    crop = cv2.warpAffine(
        np.ascontiguousarray(image),
        sampling_matrix(rect, tensor_width, tensor_height),
        (tensor_width, tensor_height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=border.value,
        borderValue=(0, 0, 0),
    )
    low, high = value_range
    return (crop.astype(np.float32) * ((high - low) / 255.0) + low)[None]
