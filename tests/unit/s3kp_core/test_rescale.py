"""Predictions moved between images (`s3kp_core.rescale`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace
from s3kp_core.imaging import fit_size
from s3kp_core.rescale import rescale
from s3kp_core.results import Keypoint, Prediction

# --- rescale --------------------------------------------------------------------------------------------


def test_rescale_maps_a_prediction_on_the_sent_image_onto_the_original() -> None:
    sent = Prediction(
        x=512, y=341.5, width=1024, height=683, confidence=0.9, class_name="person", class_id=0,
        keypoints=(Keypoint(x=1024, y=683, confidence=0.8, class_id=0, name="nose"),),
    )  # fmt: skip

    (original,) = rescale([sent], 3000 / 1024, 2000 / 683)

    assert (original.x, original.y, original.width, original.height) == pytest.approx(
        (1500, 1000, 3000, 2000)
    )
    assert (original.keypoints[0].x, original.keypoints[0].y) == pytest.approx((3000, 2000))
    assert (original.class_name, original.confidence, original.keypoints[0].name) == ("person", 0.9, "nose")


sizes = st.tuples(st.integers(16, 12_000), st.integers(16, 12_000))
fractions = st.floats(0, 1)


@given(size=sizes, max_side=st.integers(64, 2048), box=st.tuples(fractions, fractions, fractions, fractions))
def test_rescale_inverts_the_downscale_exactly(
    size: tuple[int, int], max_side: int, box: tuple[float, float, float, float]
) -> None:
    """GIVEN a box and keypoint in original pixels, as they appear on the image actually sent
    THEN rescaling by original/sent per axis recovers them (to float precision)."""
    original_w, original_h = size
    sent_w, sent_h = fit_size(size, max_side)
    scale_x, scale_y = original_w / sent_w, original_h / sent_h
    fx, fy, fw, fh = box
    truth = Prediction(
        x=fx * original_w, y=fy * original_h, width=fw * original_w, height=fh * original_h,
        confidence=0.5, class_name="c", class_id=0,
        keypoints=(Keypoint(x=fw * original_w, y=fh * original_h, confidence=0.5, class_id=0, name="k"),),
    )  # fmt: skip
    on_sent = replace(
        truth,
        x=truth.x / scale_x, y=truth.y / scale_y,
        width=truth.width / scale_x, height=truth.height / scale_y,
        keypoints=(replace(truth.keypoints[0], x=truth.keypoints[0].x / scale_x,
                           y=truth.keypoints[0].y / scale_y),),
    )  # fmt: skip

    (back,) = rescale([on_sent], scale_x, scale_y)

    values = (back.x, back.y, back.width, back.height, back.keypoints[0].x, back.keypoints[0].y)
    expected = (truth.x, truth.y, truth.width, truth.height, truth.keypoints[0].x, truth.keypoints[0].y)
    assert values == pytest.approx(expected, rel=1e-12, abs=1e-9)
    # The sent image's far corner lands on the original's far corner.
    assert (sent_w * scale_x, sent_h * scale_y) == pytest.approx((original_w, original_h), rel=1e-12)
