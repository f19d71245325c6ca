"""Building a detection's keypoints (the domain's `results.Keypoint`) from arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from s3kp_core.results import Keypoint


def keypoints_from(
    points: NDArray[np.float32], confidences: Sequence[float] | NDArray[np.float32], names: Sequence[str]
) -> tuple[Keypoint, ...]:
    """One Keypoint per row of `points` (image pixels), named and numbered by its slot."""
    return tuple(
        Keypoint(x=float(x), y=float(y), confidence=float(c), class_id=slot, name=names[slot])
        for slot, ((x, y), c) in enumerate(zip(points, confidences, strict=True))
    )
