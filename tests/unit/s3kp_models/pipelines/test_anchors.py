"""SSD anchors: counts and positions as MediaPipe's SsdAnchorsCalculator produces them for each model."""

from __future__ import annotations

import numpy as np
import pytest
from s3kp_models.pipelines.anchors import SsdAnchorOptions, generate_anchors
from s3kp_models.pipelines.faces import FULL_RANGE, SHORT_RANGE
from s3kp_models.pipelines.hands import PALM_DETECTOR
from s3kp_models.pipelines.pose import POSE_DETECTOR


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(SHORT_RANGE.anchors, 896, id="blazeface-short-range"),
        pytest.param(FULL_RANGE.anchors, 2304, id="blazeface-full-range"),
        pytest.param(POSE_DETECTOR.anchors, 2254, id="pose-detector"),
        pytest.param(PALM_DETECTOR.anchors, 2016, id="palm-detector"),
    ],
)
def test_each_detector_gets_as_many_anchors_as_its_model_has_outputs(
    options: SsdAnchorOptions, expected: int
) -> None:
    assert generate_anchors(options).shape == (expected, 2)


def test_layers_sharing_a_stride_share_one_grid_with_two_anchors_per_layer_per_cell() -> None:
    """GIVEN strides 8, 16, 16, 16 on 128 px (BlazeFace short range)
    THEN the 16x16 grid has 2 anchors per cell and the 8x8 grid 3 x 2 = 6, all on cell centres."""
    anchors = generate_anchors(SHORT_RANGE.anchors)
    fine, coarse = anchors[:512], anchors[512:]
    np.testing.assert_allclose(fine[0], fine[1])  # two anchors on the first cell
    np.testing.assert_allclose(fine[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(fine[2], [1.5 / 16, 0.5 / 16])  # x moves first (row-major cells)
    assert len(coarse) == 8 * 8 * 6
    np.testing.assert_allclose(coarse[:6], np.tile([0.5 / 8, 0.5 / 8], (6, 1)))
    np.testing.assert_allclose(coarse[-1], [7.5 / 8, 7.5 / 8])


def test_without_the_interpolated_scale_there_is_one_anchor_per_cell() -> None:
    anchors = generate_anchors(SsdAnchorOptions(input_width=192, input_height=192, strides=(4,),
                                                interpolated_scale_aspect_ratio=0.0))  # fmt: skip
    assert len(anchors) == 48 * 48
    assert len(np.unique(anchors, axis=0)) == len(anchors)


def test_a_non_square_input_rounds_the_grid_up() -> None:
    anchors = generate_anchors(SsdAnchorOptions(input_width=20, input_height=10, strides=(8,)))
    # ceil(20 / 8) = 3 columns, ceil(10 / 8) = 2 rows, 2 anchors per cell
    assert len(anchors) == 3 * 2 * 2
    np.testing.assert_allclose(anchors[-1], [2.5 / 3, 1.5 / 2])
