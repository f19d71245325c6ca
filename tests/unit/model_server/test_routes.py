"""Response shapes: the Roboflow JSON, the image formats, inference-sdk's v1 routes, /models and /health."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from s3kp import samples
from s3kp.model_server.schemas import InferenceResponse
from tests.unit.model_server.fake_pipeline import INFO, client_for

JPEG = samples.encode(samples.astronaut().resize((64, 48)))
B64 = base64.b64encode(JPEG).decode()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_v0_json_has_the_roboflow_shape() -> None:
    client, _ = client_for()
    body = client.post("/fake/1?api_key=k&confidence=0.01", content=B64, headers=FORM).json()
    assert set(body) == {"time", "inference_id", "image", "predictions"}  # no visualization unless asked
    assert body["image"] == {"width": 64, "height": 48}
    first = body["predictions"][0]
    assert {k: first[k] for k in ("x", "y", "width", "height", "class", "class_id", "confidence")} == {
        "x": 20.0, "y": 10.0, "width": 8.0, "height": 6.0, "class": "cat", "class_id": 0, "confidence": 0.9,
    }  # fmt: skip
    assert first["keypoints"][1] == {
        "x": 22.0, "y": 10.0, "confidence": 0.2, "class_id": 1, "class": "tail", "class_name": "tail",
    }  # fmt: skip
    ids = [p["detection_id"] for p in body["predictions"]]
    assert len(set(ids)) == len(ids) == 3


def test_v0_and_v1_json_is_exactly_the_documented_schema() -> None:
    """The hot routes build plain dicts, not the pydantic models: the models must still describe them,
    field for field (a round trip through the schema changes nothing)."""
    client, _ = client_for()
    v0 = client.post("/fake/1?api_key=k&confidence=0.01&format=image_and_json", content=B64, headers=FORM)
    v1 = client.post(
        "/infer/keypoints_detection",
        json={"api_key": "k", "model_id": "fake/1", "image": {"type": "base64", "value": B64}},
    )
    for body in (v0.json(), v1.json()):
        assert body["predictions"]
        parsed = InferenceResponse.model_validate(body)
        assert parsed.model_dump(mode="json", by_alias=True, exclude_none=True) == body


def server_timing(header: str) -> dict[str, float]:
    metrics = (part.strip().split(";dur=") for part in header.split(","))
    return {name: float(duration) for name, duration in metrics}


def test_time_and_server_timing_split_the_work_on_the_image() -> None:
    """GIVEN an image WHEN inferred THEN `time` (seconds) is the header's total (milliseconds), which holds
    the image decoding and the model, each reported on its own."""
    client, _ = client_for()
    response = client.post("/fake/1?api_key=k", content=B64, headers=FORM)
    timing = server_timing(response.headers["Server-Timing"])
    assert set(timing) == {"decode", "model", "total"}
    assert timing["decode"] > 0
    assert timing["model"] > 0
    assert timing["total"] >= timing["decode"] + timing["model"] - 0.002  # each rounded to 0.001 ms
    assert response.json()["time"] * 1000 == pytest.approx(timing["total"], abs=0.02)


def test_get_with_an_image_url_is_routed_like_post() -> None:
    """The self-hosted server registers GET too; without a reachable URL it is a 400, not a 405."""
    client, _ = client_for()
    response = client.get("/fake/1?api_key=k&image=http://127.0.0.1:9/none.jpg")
    assert response.status_code == 400
    assert "127.0.0.1" in response.json()["message"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/a.jpg", "http://169.254.169.254/latest/meta-data/"])
def test_an_image_url_on_a_non_public_address_is_refused_by_default(url: str) -> None:
    client, pipeline = client_for()
    response = client.get("/fake/1", params={"api_key": "k", "image": url})
    assert response.status_code == 400
    assert "non-public address: refused" in response.json()["message"]
    assert pipeline.calls == []


def test_allow_private_image_urls_lets_the_fetch_go_to_loopback() -> None:
    """With the option the fetch is attempted: nothing listens on port 9, so it fails to connect instead."""
    client, _ = client_for(allow_private_image_urls=True)
    response = client.get("/fake/1?api_key=k&image=http://127.0.0.1:9/none.jpg")
    assert response.status_code == 400
    assert "failed (ConnectionError)" in response.json()["message"]


def test_format_image_returns_an_annotated_jpeg_of_the_original_size() -> None:
    client, _ = client_for()
    response = client.post("/fake/1?api_key=k&format=image&labels=true&stroke=2", content=B64, headers=FORM)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    drawn = Image.open(io.BytesIO(response.content))
    assert (drawn.format, drawn.size) == ("JPEG", (64, 48))


def test_image_and_json_adds_a_base64_jpeg_visualization() -> None:
    client, _ = client_for()
    body = client.post("/fake/1?api_key=k&format=image_and_json", content=B64, headers=FORM).json()
    assert body["predictions"]
    drawn = Image.open(io.BytesIO(base64.b64decode(body["visualization"])))
    assert (drawn.format, drawn.size) == ("JPEG", (64, 48))


def test_v1_registry_lists_models_with_task_type_and_input_size() -> None:
    client, _ = client_for()
    response = client.get("/model/registry?api_key=k")
    assert response.json() == {
        "models": [
            {"model_id": "fake/1", "task_type": "keypoint-detection", "batch_size": 8,
             "input_height": INFO.input_height, "input_width": INFO.input_width},
        ]
    }  # fmt: skip


def test_v1_model_add_accepts_a_served_model_and_refuses_others() -> None:
    client, _ = client_for()
    assert client.post("/model/add", json={"model_id": "fake/1", "api_key": "k"}).status_code == 200
    missing = client.post("/model/add", json={"model_id": "other/3", "api_key": "k"})
    assert missing.status_code == 404
    assert "other/3" in missing.json()["message"]


def test_v1_infer_takes_inference_field_names() -> None:
    client, pipeline = client_for()
    response = client.post(
        "/infer/keypoints_detection",
        json={
            "api_key": "k",
            "model_id": "fake/1",
            "image": {"type": "base64", "value": B64},
            "confidence": 0.6,
            "iou_threshold": 0.45,
            "class_filter": ["cat"],
            "keypoint_confidence": 0.5,
            "visualize_predictions": True,
            "disable_active_learning": True,  # an inference field we do not use: ignored
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert pipeline.last_call["confidence"] == 0.6
    assert pipeline.last_call["iou_threshold"] == 0.45
    assert [p["class"] for p in body["predictions"]] == ["cat"]
    assert [k["class"] for k in body["predictions"][0]["keypoints"]] == ["head"]
    assert body["visualization"]


def test_v1_batch_of_images_answers_a_list_in_order() -> None:
    client, _ = client_for()
    small = base64.b64encode(samples.encode(samples.astronaut().resize((20, 10)))).decode()
    response = client.post(
        "/infer/keypoints_detection",
        json={"api_key": "k", "model_id": "fake/1",
              "image": [{"type": "base64", "value": B64}, {"type": "base64", "value": small}]},
    )  # fmt: skip
    assert [r["image"] for r in response.json()] == [{"width": 64, "height": 48}, {"width": 20, "height": 10}]


def test_v1_bearer_header_replaces_the_body_key() -> None:
    """inference-sdk's header transport sends no `api_key` anywhere but the Authorization header."""
    client, _ = client_for(api_key="right")
    response = client.post(
        "/infer/keypoints_detection",
        json={"model_id": "fake/1", "image": {"type": "base64", "value": B64}},
        headers={"Authorization": "Bearer right"},
    )
    assert response.status_code == 200


def test_models_publishes_what_a_client_needs_to_draw() -> None:
    client, _ = client_for()
    assert client.get("/models").json() == {
        "models": [
            {"model_id": "fake/1", "task_type": "keypoint-detection", "description": INFO.description,
             "class_names": ["cat", "dog"], "keypoint_names": ["head", "tail"], "skeleton": [[0, 1]],
             "input_width": 64, "input_height": 48},
        ]
    }  # fmt: skip


def test_health_is_ok_and_lists_the_models() -> None:
    client, _ = client_for(threads=3)
    assert client.get("/health").json() == {"status": "ok", "models": ["fake/1"], "inference_threads": 3}


def test_openapi_schema_documents_every_route() -> None:
    client, _ = client_for()
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/health", "/models", "/model/registry", "/model/add", "/infer/keypoints_detection",
        "/{project}/{version}",
    }  # fmt: skip
    assert set(paths["/{project}/{version}"]) == {"get", "post"}
