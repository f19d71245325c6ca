"""Predictions moved from one image's pixels to another's: a pure function."""

from __future__ import annotations

from collections.abc import Sequence

from msgspec.structs import replace

from s3kp_core.results import Prediction


def rescale(predictions: Sequence[Prediction], scale_x: float, scale_y: float) -> tuple[Prediction, ...]:
    """Predictions in another image's pixels: x and width times `scale_x`, y and height times `scale_y`.

    With scale = original size / sent size per axis, a prediction on the sent (downscaled) image maps
    onto the original; the box edges and keypoints keep their relative positions exactly.
    """
    return tuple(
        replace(
            p,
            x=p.x * scale_x,
            y=p.y * scale_y,
            width=p.width * scale_x,
            height=p.height * scale_y,
            keypoints=tuple(replace(kp, x=kp.x * scale_x, y=kp.y * scale_y) for kp in p.keypoints),
        )
        for p in predictions
    )
