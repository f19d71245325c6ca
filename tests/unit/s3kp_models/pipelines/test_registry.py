"""The registry the HTTP server loads: ids, metadata from the shared skeletons, thread-safe predict."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from s3kp_core.skeletons import FACE_6, HAND_21, POSE_33
from s3kp_models import model_files
from s3kp_models.model_files import ModelFilesMissing
from s3kp_models.pipelines.base import KeypointPipeline
from s3kp_models.pipelines.registry import MODEL_IDS, load_pipelines

from s3kp.paths import model_dir
from s3kp.samples import astronaut


@pytest.fixture(scope="module")
def pipelines() -> dict[str, KeypointPipeline]:
    return load_pipelines(model_dir())


def test_every_model_id_is_served_with_its_shared_skeleton(pipelines: dict[str, KeypointPipeline]) -> None:
    assert tuple(pipelines) == MODEL_IDS
    expected = {"faces/1": ("face", FACE_6), "faces/2": ("face", FACE_6), "pose/1": ("person", POSE_33),
                "hands/1": ("hand", HAND_21)}  # fmt: skip
    for model_id, (class_name, skeleton) in expected.items():
        info = pipelines[model_id].info
        assert info.model_id == model_id
        assert info.class_names == (class_name,)
        assert info.keypoint_names == skeleton.keypoint_names
        assert info.skeleton == skeleton.edges


def test_input_sizes_are_the_detectors(pipelines: dict[str, KeypointPipeline]) -> None:
    sizes = {model_id: (p.info.input_width, p.info.input_height) for model_id, p in pipelines.items()}
    assert sizes == {
        "faces/1": (128, 128),
        "faces/2": (192, 192),
        "pose/1": (224, 224),
        "hands/1": (192, 192),
    }


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_a_blank_image_has_no_detections(pipelines: dict[str, KeypointPipeline], model_id: str) -> None:
    blank = np.full((240, 320, 3), 127, np.uint8)
    assert pipelines[model_id].predict(blank, confidence=0.5, iou_threshold=0.3, max_detections=10) == []


def test_detections_carry_named_keypoints_in_slot_order(pipelines: dict[str, KeypointPipeline]) -> None:
    image = np.asarray(astronaut())
    (face,) = pipelines["faces/1"].predict(image, confidence=0.5, iou_threshold=0.3, max_detections=10)
    assert [k.class_id for k in face.keypoints] == list(range(6))
    assert [k.name for k in face.keypoints] == list(FACE_6.keypoint_names)
    assert face.class_name == "face"
    assert face.class_id == 0
    assert all(k.confidence == face.confidence for k in face.keypoints)


def test_the_confidence_threshold_and_max_detections_come_from_the_request(
    pipelines: dict[str, KeypointPipeline],
) -> None:
    image = np.asarray(astronaut())
    pose = pipelines["pose/1"]
    (person,) = pose.predict(image, confidence=0.5, iou_threshold=0.3, max_detections=10)
    above = pose.predict(
        image, confidence=min(0.99, person.confidence + 0.01), iou_threshold=0.3, max_detections=10
    )
    assert above == []
    assert pose.predict(image, confidence=0.5, iou_threshold=0.3, max_detections=0) == []


def test_concurrent_predictions_equal_sequential_ones(pipelines: dict[str, KeypointPipeline]) -> None:
    """GIVEN more concurrent callers than interpreters per model THEN each gets the sequential answer."""
    image = np.asarray(astronaut())
    args = {"confidence": 0.5, "iou_threshold": 0.3, "max_detections": 10}
    expected = {model_id: pipelines[model_id].predict(image, **args) for model_id in ("faces/1", "pose/1")}
    jobs = [model_id for model_id in expected for _ in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda model_id: pipelines[model_id].predict(image, **args), jobs))
    for model_id, result in zip(jobs, results, strict=True):
        assert result == expected[model_id]


def test_a_subset_loads_only_the_models_asked_for() -> None:
    """The InferenceFunction loads its configured model alone (a shorter cold start)."""
    loaded = load_pipelines(model_dir(), model_ids=["faces/2"], pool_size=1)
    assert list(loaded) == ["faces/2"]
    with pytest.raises(KeyError):
        load_pipelines(model_dir(), model_ids=["faces/9"])


def test_a_directory_without_the_files_names_the_remedy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache is filled by `make setup`; the models layer's copy by `make build`."""
    with pytest.raises(ModelFilesMissing, match="make setup"):
        load_pipelines(tmp_path, model_ids=["faces/1"])
    monkeypatch.setattr(model_files, "PACKAGED_MODEL_DIR", tmp_path)
    with pytest.raises(ModelFilesMissing, match="make build"):
        model_files.model_path("pose_detection.tflite", tmp_path)
