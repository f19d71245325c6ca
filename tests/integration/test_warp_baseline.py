"""Our pipelines against their own answers of before the warp moved from OpenCV to numpy (issue 20).

tests/fixtures/cv2_warp_baseline.json holds what the pipelines answered with cv2.warpAffine
(opencv-python-headless 4.12.0.88, the build the MediaPipe reference suite passes on) on the sample
images, recorded once before the change (its "about" says how). The MediaPipe reference tests
(test_reference_keypoints.py) hold us to MediaPipe within pixels; this holds the new warp to the old one
much tighter: the same detections, and each one's keypoints within 0.5 px (median) of where they were.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from s3kp_models.pipelines.base import Detection, KeypointPipeline
from s3kp_models.pipelines.detector import SsdDetector
from s3kp_models.pipelines.hands import HandPipeline
from s3kp_models.pipelines.registry import load_pipelines

from s3kp.paths import model_dir
from s3kp.samples import SAMPLE_IMAGES

FIXTURES = Path(__file__).parents[1] / "fixtures"
BASELINE = json.loads((FIXTURES / "cv2_warp_baseline.json").read_text())
REFERENCE = json.loads((FIXTURES / "mediapipe_reference.json").read_text())
REQUEST = BASELINE["request"]
MEDIAN_PX = 0.5
# A detection's score is the detector's: the full image letterboxed into 128-224 px, where an
# interpolation difference of a grey level moves a logit very little.
SCORE_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def pipelines() -> dict[str, KeypointPipeline]:
    return load_pipelines(model_dir())


def rgb(name: str) -> np.ndarray:
    return np.asarray(SAMPLE_IMAGES[name]().convert("RGB"))


def points(detection: Detection) -> np.ndarray:
    return np.array([[k.x, k.y] for k in detection.keypoints])


def assert_same_answers(ours: list[Detection], recorded: list[dict[str, Any]]) -> None:
    """The same detections in the same order, each one's keypoints within MEDIAN_PX (median) of before."""
    assert [d.confidence for d in ours] == pytest.approx(
        [r["confidence"] for r in recorded], abs=SCORE_TOLERANCE
    )
    for detection, before in zip(ours, recorded, strict=True):
        errors = np.linalg.norm(points(detection) - np.array(before["keypoints"]), axis=1)
        assert np.median(errors) <= MEDIAN_PX, errors.round(2)


def test_the_baseline_was_recorded_with_the_opencv_the_reference_suite_passes_on() -> None:
    assert BASELINE["versions"]["opencv"] == "4.12.0"
    assert set(BASELINE["models"]["pose/1"]) == set(SAMPLE_IMAGES)


@pytest.mark.parametrize("model_id", ["pose/1", "faces/1", "faces/2", "hands/1"])
@pytest.mark.parametrize("image", list(SAMPLE_IMAGES))
def test_keypoints_stay_where_the_opencv_warp_put_them(
    pipelines: dict[str, KeypointPipeline], model_id: str, image: str
) -> None:
    ours = pipelines[model_id].predict(rgb(image), **REQUEST)
    assert_same_answers(ours, BASELINE["models"][model_id][image])


def test_pose_on_each_half_and_each_person_alone_stays_where_it_was(
    pipelines: dict[str, KeypointPipeline],
) -> None:
    composite = rgb("people_side_by_side")
    crops = REFERENCE["settings"]["person_crops"]["people_side_by_side"]
    for (left, top, right, bottom), half, alone in zip(
        crops, BASELINE["pose_composite_halves"], BASELINE["pose_composite_alone"], strict=True
    ):
        part = np.ascontiguousarray(composite[top:bottom, left:right])
        assert_same_answers(pipelines["pose/1"].predict(part, **REQUEST), half)
        canvas = np.zeros_like(composite)
        canvas[top:bottom, left:right] = composite[top:bottom, left:right]
        assert_same_answers(pipelines["pose/1"].predict(canvas, **REQUEST), alone)


@pytest.mark.parametrize("image", list(BASELINE["low_threshold_hands"]))
def test_hand_landmarks_on_palm_like_patches_stay_where_they_were(
    pipelines: dict[str, KeypointPipeline], image: str
) -> None:
    """The hand landmark model's crops (rotated, shifted, edge-replicated) go through the warp too."""
    hands = pipelines["hands/1"]
    assert isinstance(hands, HandPipeline)
    thresholds = REFERENCE["settings"]["low_threshold_hands"]
    lowered = dataclasses.replace(hands.detector.spec, min_score=thresholds["min_detection_confidence"])
    permissive = HandPipeline(
        hands.info,
        SsdDetector(lowered, hands.detector.pool),
        hands.landmarks,
        min_presence=thresholds["min_tracking_confidence"],
    )
    ours = permissive.predict(rgb(image), **{**REQUEST, "confidence": thresholds["min_detection_confidence"]})
    assert_same_answers(ours, BASELINE["low_threshold_hands"][image])
