"""MediaPipe's keypoints through the official clients, at their default thresholds, over HTTP.

Neither client asks at MediaPipe's own threshold (0.5): roboflow-python sends `confidence=40`, inference-sdk
sends none (the server's default, 0.4). The answers must still be MediaPipe's (same tolerances as
tests/integration/test_reference_keypoints.py: pose median <= 2 px and >= 85 % of the visible landmarks
within 5 px; faces within 3 px per 512 px).

What each client sends decides the reference: inference-sdk sends a file's bytes as they are (a PNG
sample: the fixture's pixels); roboflow-python re-encodes every image as JPEG quality 90, which alone
moves pose landmarks by ~7 px, so it is compared with MediaPipe run on that JPEG (`client_jpeg`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from roboflow.models.keypoint_detection import KeypointDetectionModel

from s3kp.samples import SAMPLE_IMAGES
from tests.conftest import FIXTURES, MODEL_SERVER_API_KEY
from tests.contract.inference_sdk_remote import InferenceSdk

REFERENCE = json.loads((FIXTURES / "mediapipe_reference.json").read_text())
GRAPH_THRESHOLD = REFERENCE["settings"]["min_detection_confidence"]
POSE_MEDIAN_PX, POSE_VISIBLE_PX, POSE_VISIBLE_SHARE = 2.0, 5.0, 0.85
FACE_PIXELS_PER_512 = 3.0
CASES = [
    pytest.param(model_id, image, id=f"{model_id}-{image}")
    for model_id in ("pose/1", "faces/1", "faces/2")
    for image in ("astronaut", "grace_hopper")
]


@pytest.fixture(scope="module")
def png_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("png")
    paths = {}
    for name in ("astronaut", "grace_hopper"):
        paths[name] = directory / f"{name}.png"
        SAMPLE_IMAGES[name]().convert("RGB").save(paths[name])
    return paths


def assert_matches(model_id: str, predictions: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    ours = [p for p in predictions if p["confidence"] >= GRAPH_THRESHOLD]  # weaker ones have no reference
    assert len(ours) == len(theirs) >= 1
    for reference in theirs:
        expected = np.array(reference["keypoints"])

        def error(prediction: dict[str, Any], expected: np.ndarray = expected) -> np.ndarray:
            keypoints = sorted(prediction["keypoints"], key=lambda k: k["class_id"])
            return np.linalg.norm(np.array([[k["x"], k["y"]] for k in keypoints]) - expected, axis=1)

        errors = min((error(p) for p in ours), key=lambda e: float(e.mean()))
        if model_id == "pose/1":
            visible = np.array(reference["visibility"]) >= 0.5
            assert np.median(errors) <= POSE_MEDIAN_PX, errors.round(1)
            assert np.mean(errors[visible] <= POSE_VISIBLE_PX) >= POSE_VISIBLE_SHARE, errors.round(1)
        else:
            assert errors.max() <= FACE_PIXELS_PER_512, errors.round(2)  # the samples are 512 px wide


@pytest.mark.parametrize(("model_id", "image"), CASES)
def test_roboflow_python_with_its_defaults_gets_mediapipes_keypoints(
    model_server_url: str, png_paths: dict[str, Path], model_id: str, image: str
) -> None:
    model = KeypointDetectionModel(MODEL_SERVER_API_KEY, f"ws/{model_id}", local=f"{model_server_url}/")
    assert model.confidence == 40  # the default this test is about
    result = model.predict(str(png_paths[image])).json()
    assert_matches(model_id, result["predictions"], REFERENCE["client_jpeg"][model_id][image])


@pytest.mark.parametrize("api", ["v1", "v0"])
@pytest.mark.parametrize(("model_id", "image"), CASES)
def test_inference_sdk_with_its_defaults_gets_mediapipes_keypoints(
    inference_sdk: InferenceSdk,
    model_server_url: str,
    png_paths: dict[str, Path],
    model_id: str,
    image: str,
    api: str,
) -> None:
    sdk = inference_sdk.client(model_server_url, MODEL_SERVER_API_KEY)
    sdk.configure(api_key_transport="legacy")  # today's default, stated to keep it quiet
    if api == "v0":
        sdk.select_api_v0()
    result = sdk.infer(str(png_paths[image]), model_id=model_id)
    assert_matches(model_id, result["predictions"], REFERENCE["models"][model_id][image])
