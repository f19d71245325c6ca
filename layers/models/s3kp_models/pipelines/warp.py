"""cv::warpAffine's bilinear resampling of 8-bit images (INTER_LINEAR | WARP_INVERSE_MAP), in numpy.

The landmark models are sensitive enough that the resampling's own rounding moves weak keypoints (a
Pillow resampling was off by several pixels; OpenCV 5.0's float warp moves weak pose landmarks by up
to 25 px against 4.12's): what lands our keypoints within a pixel of MediaPipe's is OpenCV's arithmetic,
which is fixed-point (imgwarp.cpp, `WarpAffineInvoker` and `remapBilinear`):

- each destination pixel's source point is computed in units of 1/1024 px (`AB_BITS` = 10) with
  round-half-even products, offset by half a table step, then truncated to 1/32 px (`INTER_BITS` = 5);
- the integer part picks the 2x2 neighbourhood, the 1/32 fractions the weights, which are
  (32 - fy or fy) x (32 - fx or fx) x 32 (`INTER_REMAP_COEF_BITS` = 15: their sum is exactly 2^15);
- the weighted sum is rounded half up back to 8 bits.

Reproduced here with integers only, so the answer is OpenCV 4.12's bit for bit on any CPU
(tests/unit/s3kp_models/pipelines/test_warp.py checks the rules on hand-computed cases; the recorded
answers of tests/fixtures/cv2_warp_baseline.json check the whole pipelines), and no OpenCV (82 MB) ships
in the Lambda package.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
from numpy.typing import NDArray

AB_BITS = 10  # fixed-point bits of a source coordinate while it is computed
INTER_BITS = 5  # fixed-point bits kept: source points land on a 1/32 px grid
INTER_TAB_SIZE = 1 << INTER_BITS
_ROUND_DELTA = (1 << AB_BITS) // INTER_TAB_SIZE // 2  # half a 1/32 step, in 1/1024 units


class Border(Enum):
    """What is read outside the image: black (BORDER_CONSTANT with 0) or the nearest edge pixel."""

    ZERO = "zero"
    REPLICATE = "replicate"


def warp_affine(
    image: NDArray[np.uint8], matrix: NDArray[np.float64], size: tuple[int, int], border: Border
) -> NDArray[np.uint8]:
    """The image sampled at `matrix` @ (column, row, 1) for each pixel of a (height, width, C) output.

    image: (H, W, C) uint8; matrix: 2x3, output pixel -> source point (OpenCV's WARP_INVERSE_MAP);
    size: (width, height) of the output.
    """
    width, height = size
    source_height, source_width, channels = image.shape
    x, y = _source_points(np.asarray(matrix, np.float64), width, height)
    left, top = x >> INTER_BITS, y >> INTER_BITS
    fx, fy = x & (INTER_TAB_SIZE - 1), y & (INTER_TAB_SIZE - 1)
    # The four neighbours' weights (in 1/32) along each axis; outside the image, BORDER_ZERO reads black:
    # a weight of 0 on whichever pixel the clamped index below reads.
    left_weight, right_weight = INTER_TAB_SIZE - fx, fx
    top_weight, bottom_weight = INTER_TAB_SIZE - fy, fy
    if border is Border.ZERO:
        left_weight = left_weight * _inside(left, source_width)
        right_weight = right_weight * _inside(left + 1, source_width)
        top_weight = top_weight * _inside(top, source_height)
        bottom_weight = bottom_weight * _inside(top + 1, source_height)
    # Indices into the flat image, clamped: for BORDER_REPLICATE that is the nearest edge pixel.
    row_stride = source_width * channels
    left_index = _clamp(left, source_width) * channels
    right_index = _clamp(left + 1, source_width) * channels
    top_index = _clamp(top, source_height) * row_stride
    bottom_index = _clamp(top + 1, source_height) * row_stride
    flat = np.ascontiguousarray(image).reshape(-1)
    output = np.empty((height * width, channels), np.uint8)
    # One channel at a time: 1-D gathers and same-shape integer arithmetic are numpy's fast paths.
    for channel in range(channels):

        def read(row: NDArray[np.int32], column: NDArray[np.int32]) -> NDArray[np.int32]:
            return flat.take(row + column + channel).astype(np.int32)  # noqa: B023 - used at once

        upper = read(top_index, left_index) * left_weight + read(top_index, right_index) * right_weight
        lower = read(bottom_index, left_index) * left_weight + read(bottom_index, right_index) * right_weight
        # The weights are (32 - fy | fy) x (32 - fx | fx) x 32 in 1/2^15: rounded half up back to 8 bits.
        output[:, channel] = (upper * top_weight + lower * bottom_weight + _ROUND_HALF) >> _WEIGHT_BITS
    return output.reshape(height, width, channels)


_WEIGHT_BITS = 2 * INTER_BITS  # the weights above without OpenCV's extra x32: (sum x 32 + 2^14) >> 15
_ROUND_HALF = 1 << (_WEIGHT_BITS - 1)
_COORDINATE_LIMIT = 1 << 30  # in 1/32 px: far outside any image, and safe in int32


def _source_points(matrix: NDArray[np.float64], width: int, height: int) -> tuple[NDArray[np.int32], ...]:
    """Each output pixel's source point in 1/32 px, flattened row by row, as OpenCV computes it."""
    scale = float(1 << AB_BITS)
    columns, rows = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    points = []
    for axis in (0, 1):
        # A per-column and a per-row term, each rounded half to even on its own (OpenCV's adelta/bdelta
        # and X0/Y0), the row term offset by half a 1/32 step; their sum truncated to 1/32 px.
        per_column = np.rint(matrix[axis, 0] * columns * scale).astype(np.int64)
        per_row = np.rint((matrix[axis, 1] * rows + matrix[axis, 2]) * scale).astype(np.int64) + _ROUND_DELTA
        point = (per_row[:, None] + per_column[None, :]) >> (AB_BITS - INTER_BITS)
        points.append(np.clip(point, -_COORDINATE_LIMIT, _COORDINATE_LIMIT).astype(np.int32).reshape(-1))
    return points[0], points[1]


def _inside(index: NDArray[np.int32], size: int) -> NDArray[np.bool_]:
    return (index >= 0) & (index < size)


def _clamp(index: NDArray[np.int32], size: int) -> NDArray[np.int32]:
    clamped: NDArray[np.int32] = np.minimum(np.maximum(index, 0), size - 1)
    return clamped
