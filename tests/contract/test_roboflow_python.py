"""roboflow-python 1.7.3, pinned and unmodified, against the local server (`local=` url, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest
from roboflow.models.keypoint_detection import KeypointDetectionModel

from s3kp import samples
from tests.conftest import MODEL_SERVER_API_KEY


@pytest.fixture(scope="module")
def astronaut_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "astronaut.jpg"
    path.write_bytes(samples.sample_jpeg("astronaut"))
    return path


def model(url: str, api_key: str = MODEL_SERVER_API_KEY) -> KeypointDetectionModel:
    # "workspace/project/version": the client drops the workspace; `local` needs its trailing slash.
    return KeypointDetectionModel(api_key, "ws/faces/1", local=f"{url}/")


def test_predict_finds_the_astronaut_face_with_keypoints(model_server_url: str, astronaut_path: Path) -> None:
    result = model(model_server_url).predict(str(astronaut_path)).json()
    [face] = result["predictions"]
    assert face["class"] == "face"
    assert face["confidence"] > 0.5
    assert len(face["keypoints"]) == 6
    assert {"x", "y", "confidence", "class_id", "class", "class_name"} <= set(face["keypoints"][0])


def test_confidence_on_the_0_to_100_scale_is_understood(model_server_url: str, astronaut_path: Path) -> None:
    """It sends `confidence=99`: read as 99 %, which the astronaut's face does not reach."""
    result = model(model_server_url).predict(str(astronaut_path), confidence=99).json()
    assert result["predictions"] == []


def test_wrong_key_raises_with_the_servers_message(model_server_url: str, astronaut_path: Path) -> None:
    with pytest.raises(Exception, match="Unauthorized api_key") as raised:  # the client raises bare Exception
        model(model_server_url, api_key="wrong-key").predict(str(astronaut_path))
    assert "wrong-key" not in str(raised.value)
