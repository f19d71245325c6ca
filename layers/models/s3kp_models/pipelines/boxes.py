"""The box of a person or a hand: around the landmarks one can see, not every landmark the model places.

The landmark models place all their landmarks, seen or not: hips below the frame, an elbow hidden behind
the body. A box around all of them (clipped to the image) reaches far outside the person, into a
neighbour. Users of Roboflow keypoint models expect a COCO-style box around the visible person, so:

- only landmarks inside the image whose score is at least MediaPipe's own drawing threshold count (its
  `drawing_utils` skips a landmark with visibility or presence under 0.5);
- the box grows by a small margin on each side (landmarks are joint centres, the body extends past them);
- with fewer than MIN_LANDMARKS such landmarks, the detector's own box stands in.

A person's box also takes in two points no landmark marks: the crown of the head (the topmost landmarks
are the eyes) and, when a hip is out of the picture below a seen shoulder, the point where that side of
the torso leaves the picture (a portrait's body goes down to the frame's edge).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from s3kp_core.skeletons import POSE_33

MIN_SCORE = 0.5  # MediaPipe drawing_utils' _VISIBILITY_THRESHOLD and _PRESENCE_THRESHOLD
MIN_LANDMARKS = 3  # fewer than this cannot outline a body part: use the detector's box
MARGIN = 0.1  # of the box's width (height) added left and right (top and bottom)

_POSE = POSE_33.keypoint_names.index
EYES, MOUTH = (_POSE("left_eye"), _POSE("right_eye")), (_POSE("mouth_left"), _POSE("mouth_right"))
TORSO_SIDES = ((_POSE("left_shoulder"), _POSE("left_hip")), (_POSE("right_shoulder"), _POSE("right_hip")))
CROWN_FROM_EYES = 1.6  # the crown is ~1.6 eye-to-mouth distances above the eyes (head proportions)

CentreBox = tuple[float, float, float, float]  # centre x, centre y, width, height: a Detection's box


def landmark_box(
    points: NDArray[np.float32],
    scores: Sequence[float] | NDArray[np.float32],
    image_size: tuple[int, int],
    fallback: NDArray[np.float32] | Sequence[float],
    *,
    min_score: float = MIN_SCORE,
    margin: float = MARGIN,
) -> CentreBox:
    """The box around the landmarks that are in the image and scored >= `min_score`, plus `margin`.

    points: (K, 2) image pixels; scores: (K,); image_size: (width, height); fallback: the detector's box
    as xmin, ymin, xmax, ymax, used when fewer than MIN_LANDMARKS landmarks qualify. Clipped to the image.
    """
    width, height = image_size
    inside = (points[:, 0] >= 0) & (points[:, 0] <= width) & (points[:, 1] >= 0) & (points[:, 1] <= height)
    seen = points[inside & (np.asarray(scores) >= min_score)]
    if len(seen) < MIN_LANDMARKS:
        xmin, ymin, xmax, ymax = (float(v) for v in fallback)
    else:
        (xmin, ymin), (xmax, ymax) = seen.min(axis=0).tolist(), seen.max(axis=0).tolist()
        pad_x, pad_y = margin * (xmax - xmin), margin * (ymax - ymin)
        xmin, ymin, xmax, ymax = xmin - pad_x, ymin - pad_y, xmax + pad_x, ymax + pad_y
    xmin, xmax = min(max(xmin, 0.0), width), min(max(xmax, 0.0), width)
    ymin, ymax = min(max(ymin, 0.0), height), min(max(ymax, 0.0), height)
    return (xmin + xmax) / 2, (ymin + ymax) / 2, xmax - xmin, ymax - ymin


def person_box(
    pixels: NDArray[np.float32],
    visibility: NDArray[np.float32],
    presence: NDArray[np.float32],
    image_size: tuple[int, int],
    fallback: NDArray[np.float32],
) -> CentreBox:
    """A BlazePose person's box: its landmarks MediaPipe would draw, the crown, the torso's exit points."""
    scores = np.minimum(visibility, presence)
    extra_points, extra_scores = [], []
    eyes, mouth = pixels[list(EYES)].mean(axis=0), pixels[list(MOUTH)].mean(axis=0)
    extra_points.append(np.clip(eyes + CROWN_FROM_EYES * (eyes - mouth), 0, image_size))
    extra_scores.append(float(scores[[*EYES, *MOUTH]].min()))
    for shoulder, hip in TORSO_SIDES:
        exit_point = _exit_point(pixels[shoulder], pixels[hip], image_size)
        if exit_point is not None:
            extra_points.append(exit_point)
            extra_scores.append(float(scores[shoulder]))
    return landmark_box(
        np.vstack([pixels, *extra_points]), np.append(scores, extra_scores), image_size, fallback
    )


def _exit_point(
    inside: NDArray[np.float32], outside: NDArray[np.float32], image_size: tuple[int, int]
) -> NDArray[np.float32] | None:
    """Where the segment from a point in the image to a point outside it crosses the border, else None."""
    size = np.asarray(image_size, np.float32)
    if not (np.all(inside >= 0) and np.all(inside <= size)) or (
        np.all(outside >= 0) and np.all(outside <= size)
    ):
        return None
    step = outside - inside
    with np.errstate(divide="ignore", invalid="ignore"):
        limits = np.where(outside < 0, -inside / step, np.where(outside > size, (size - inside) / step, 1.0))
    return np.asarray(inside + float(limits.min()) * step, np.float32)
