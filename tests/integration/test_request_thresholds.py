"""A request's `confidence`, `overlap` and `max_detections` choose among the answers; they never move one.

The real models on the samples. The reference for each image is the answer at the loosest request the
server takes (confidence 0.01, overlap 1: nothing suppressed by the client, max_detections 300): every
answer to any other request must be one of those, unchanged to the last bit, and a request that only
raises `confidence` must get exactly the ones scoring at least that.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from s3kp_models.pipelines.base import Detection, KeypointPipeline
from s3kp_models.pipelines.registry import load_pipelines

from s3kp.paths import model_dir
from s3kp.samples import SAMPLE_IMAGES

LOOSEST = {"confidence": 0.01, "iou_threshold": 1.0, "max_detections": 300}
CASES = [
    ("faces/1", "camera"),  # five faces at 0.1, one of them MediaPipe's
    ("faces/1", "people_side_by_side"),
    ("faces/2", "faces_2x2"),
    ("faces/2", "people_side_by_side"),
    ("pose/1", "astronaut"),
    ("pose/1", "grace_hopper"),
    ("pose/1", "people_side_by_side"),
    ("hands/1", "astronaut"),  # palm-like patches the landmark model then rejects or keeps
]


@pytest.fixture(scope="module")
def pipelines() -> dict[str, KeypointPipeline]:
    return load_pipelines(model_dir())


@pytest.fixture(scope="module")
def loosest(pipelines: dict[str, KeypointPipeline]) -> dict[tuple[str, str], list[Detection]]:
    return {(m, i): pipelines[m].predict(rgb(i), **LOOSEST) for m, i in CASES}


def rgb(name: str) -> np.ndarray:
    return np.asarray(SAMPLE_IMAGES[name]().convert("RGB"))


def predict(
    pipelines: dict[str, KeypointPipeline], model_id: str, image: str, **request: Any
) -> list[Detection]:
    return pipelines[model_id].predict(rgb(image), **{**LOOSEST, **request})


@pytest.mark.parametrize(("model_id", "image"), CASES)
@pytest.mark.parametrize("confidence", [0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.6, 0.8])
def test_confidence_only_filters(
    pipelines: dict[str, KeypointPipeline],
    loosest: dict[tuple[str, str], list[Detection]],
    model_id: str,
    image: str,
    confidence: float,
) -> None:
    """GIVEN the answers at the loosest request WHEN asking again with a higher confidence THEN the answer
    is exactly those scoring at least that, identical: weaker candidates neither moved nor hid them."""
    expected = [d for d in loosest[model_id, image] if d.confidence >= confidence]
    assert predict(pipelines, model_id, image, confidence=confidence) == expected


@pytest.mark.parametrize(("model_id", "image"), CASES)
@pytest.mark.parametrize("overlap", [0.0, 0.1, 0.3, 0.5])
@pytest.mark.parametrize("max_detections", [1, 2, 300])
def test_overlap_and_max_detections_only_drop(
    pipelines: dict[str, KeypointPipeline],
    loosest: dict[tuple[str, str], list[Detection]],
    model_id: str,
    image: str,
    overlap: float,
    max_detections: int,
) -> None:
    answers = predict(
        pipelines, model_id, image, confidence=0.1, iou_threshold=overlap, max_detections=max_detections
    )
    assert 0 < len(answers) <= max_detections or not loosest[model_id, image]
    assert all(answer in loosest[model_id, image] for answer in answers)
    assert answers == sorted(answers, key=lambda d: -d.confidence)
    best = [d for d in loosest[model_id, image] if d.confidence >= 0.1][:1]
    assert answers[:1] == best  # the best answer always survives the client's suppression


def test_the_samples_do_exercise_extra_detections(loosest: dict[tuple[str, str], list[Detection]]) -> None:
    """The cases above would prove little if no request admitted anything under MediaPipe's threshold."""
    weaker = {case: sum(d.confidence < 0.5 for d in found) for case, found in loosest.items()}
    assert weaker["faces/1", "camera"] >= 2
    assert sum(weaker.values()) >= 5
