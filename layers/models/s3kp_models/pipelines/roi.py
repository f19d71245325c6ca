"""Rotated regions of interest in image pixels: the maths of MediaPipe's rect calculators.

- `rect_from_box_and_keypoints`: DetectionsToRectsCalculator (box centre and size, rotation from 2 keypoints);
- `rect_from_alignment_points`: AlignmentPointsRectsCalculator (centre on one keypoint, size from two);
- `transform_rect`: RectTransformationCalculator (shift in the rect's own frame, square_long, scale);
- `letterbox`: ImageToTensorCalculator's keep_aspect_ratio padding of a rect to the tensor's shape;
- `rect_to_image` / `image_to_rect`: between a rect's 0..1 coordinates and image pixels.

MediaPipe does this in normalised coordinates, multiplying by the image size where angles matter; in
pixels the same formulas are simpler and give identical results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Rect:
    """A rectangle rotated by `rotation` radians (clockwise on screen, y down) around its centre."""

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: float = 0.0


def normalize_radians(angle: float) -> float:
    """The same angle in [-pi, pi)."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def rotation_between(start: NDArray[np.float32], end: NDArray[np.float32], target_degrees: float) -> float:
    """The rotation that makes the vector start->end point at `target_degrees` (90 = straight up)."""
    angle = math.atan2(-(float(end[1]) - float(start[1])), float(end[0]) - float(start[0]))
    return normalize_radians(math.radians(target_degrees) - angle)


def rect_from_box_and_keypoints(
    box: NDArray[np.float32], keypoints: NDArray[np.float32], start: int, end: int, target_degrees: float
) -> Rect:
    xmin, ymin, xmax, ymax = (float(v) for v in box)
    rotation = rotation_between(keypoints[start], keypoints[end], target_degrees)
    return Rect((xmin + xmax) / 2, (ymin + ymax) / 2, xmax - xmin, ymax - ymin, rotation)


def rect_from_alignment_points(
    keypoints: NDArray[np.float32], start: int, end: int, target_degrees: float
) -> Rect:
    centre, edge = keypoints[start], keypoints[end]
    size = 2.0 * float(np.hypot(*(edge - centre)))
    rotation = rotation_between(centre, edge, target_degrees)
    return Rect(float(centre[0]), float(centre[1]), size, size, rotation)


def transform_rect(
    rect: Rect, *, scale: float = 1.0, shift_x: float = 0.0, shift_y: float = 0.0, square_long: bool = False
) -> Rect:
    """Shift (in units of the rect's size, along its own axes), then square on the long side, then scale."""
    cos, sin = math.cos(rect.rotation), math.sin(rect.rotation)
    dx, dy = rect.width * shift_x, rect.height * shift_y
    x_center = rect.x_center + dx * cos - dy * sin
    y_center = rect.y_center + dx * sin + dy * cos
    width, height = rect.width, rect.height
    if square_long:
        width = height = max(width, height)
    return Rect(x_center, y_center, width * scale, height * scale, rect.rotation)


def letterbox(rect: Rect, tensor_width: int, tensor_height: int) -> Rect:
    """Grow the rect along one axis to the tensor's aspect ratio (the model sees padding, not stretching)."""
    tensor_aspect = tensor_height / tensor_width
    if tensor_aspect > rect.height / rect.width:
        return replace(rect, height=rect.width * tensor_aspect)
    return replace(rect, width=rect.height / tensor_aspect)


def rect_to_image(rect: Rect, points: NDArray[np.float32]) -> NDArray[np.float32]:
    """Points (..., 2) in the rect's 0..1 frame (0,0 = its top-left corner) to image pixels."""
    cos, sin = math.cos(rect.rotation), math.sin(rect.rotation)
    local_x = (points[..., 0] - 0.5) * rect.width
    local_y = (points[..., 1] - 0.5) * rect.height
    image_x = rect.x_center + local_x * cos - local_y * sin
    image_y = rect.y_center + local_x * sin + local_y * cos
    return np.stack([image_x, image_y], axis=-1).astype(np.float32)


def image_to_rect(rect: Rect, points: NDArray[np.float32]) -> NDArray[np.float32]:
    """The inverse of `rect_to_image`."""
    cos, sin = math.cos(rect.rotation), math.sin(rect.rotation)
    dx = points[..., 0] - rect.x_center
    dy = points[..., 1] - rect.y_center
    local_x = dx * cos + dy * sin
    local_y = -dx * sin + dy * cos
    return np.stack([local_x / rect.width + 0.5, local_y / rect.height + 0.5], axis=-1).astype(np.float32)


def unrotated_iou(a: Rect, b: Rect) -> float:
    """IoU of two rects taken as axis-aligned boxes (rotation ignored), as MediaPipe's association does."""
    left, right = (
        max(a.x_center - a.width / 2, b.x_center - b.width / 2),
        min(a.x_center + a.width / 2, b.x_center + b.width / 2),
    )
    top, bottom = (
        max(a.y_center - a.height / 2, b.y_center - b.height / 2),
        min(a.y_center + a.height / 2, b.y_center + b.height / 2),
    )
    intersection = max(0.0, right - left) * max(0.0, bottom - top)
    union = a.width * a.height + b.width * b.height - intersection
    return intersection / union if union > 0 else 0.0


def associate(rects: list[Rect], *, min_similarity: float, graph_count: int | None = None) -> list[int]:
    """AssociationNormRectCalculator: indices of the rects kept, in its order.

    Rects are taken in turn; each one removes every already kept rect it overlaps by more than
    `min_similarity` and joins the list, so of two rects on one hand the later one stays. That is the rule
    for the first `graph_count` rects (default: all), the ones MediaPipe's graph sees. A rect after them
    (from a detection under the graph's threshold) never displaces one: it joins only if it overlaps no
    kept rect, so the graph's hands stay what they are however many weaker ones a request admits.
    """
    graph_count = len(rects) if graph_count is None else graph_count
    kept: list[int] = []
    for index, rect in enumerate(rects):
        if index < graph_count:
            kept = [k for k in kept if unrotated_iou(rects[k], rect) <= min_similarity]
        elif any(unrotated_iou(rects[k], rect) > min_similarity for k in kept):
            continue
        kept.append(index)
    return kept
