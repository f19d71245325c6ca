"""SSD anchors, as MediaPipe's SsdAnchorsCalculator generates them.

Every MediaPipe detector here uses `fixed_anchor_size: true`, so an anchor is only a centre (its width and
height are 1); the number of anchors per cell comes from the aspect ratios plus the interpolated scale,
and consecutive layers with the same stride share one feature map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class SsdAnchorOptions:
    input_width: int
    input_height: int
    strides: tuple[int, ...]
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0  # 0 disables the extra anchor per cell
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5


def _anchors_per_cell(options: SsdAnchorOptions, first_layer: int, end_layer: int) -> int:
    per_layer = len(options.aspect_ratios) + (1 if options.interpolated_scale_aspect_ratio > 0 else 0)
    return per_layer * (end_layer - first_layer)


def generate_anchors(options: SsdAnchorOptions) -> NDArray[np.float32]:
    """Anchor centres, shape (N, 2) as (x, y) in 0..1 of the model input, in the model's output order."""
    centres: list[NDArray[np.float64]] = []
    strides = options.strides
    layer = 0
    while layer < len(strides):
        end = layer
        while end < len(strides) and strides[end] == strides[layer]:
            end += 1
        rows = math.ceil(options.input_height / strides[layer])
        cols = math.ceil(options.input_width / strides[layer])
        ys, xs = np.meshgrid(
            (np.arange(rows) + options.anchor_offset_y) / rows,
            (np.arange(cols) + options.anchor_offset_x) / cols,
            indexing="ij",
        )
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)  # row-major cells, as MediaPipe loops y then x
        centres.append(np.repeat(grid, _anchors_per_cell(options, layer, end), axis=0))
        layer = end
    return np.concatenate(centres).astype(np.float32)
