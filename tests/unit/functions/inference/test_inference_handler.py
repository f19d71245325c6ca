"""The InferenceFunction's handler on Function URL events (events/function-url-inference.json's shape),
with a real model (`faces/1`, the smallest) loaded from the verified cache."""

from __future__ import annotations

import base64
import importlib
import io
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from s3kp import samples
from s3kp.local.lambda_runtime import LambdaContext
from s3kp.paths import model_dir

EVENT = json.loads((Path(__file__).parents[4] / "events" / "function-url-inference.json").read_text())
FACE = samples.sample_jpeg("astronaut")


@pytest.fixture(scope="module")
def handler() -> ModuleType:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MODEL_ID", "faces/1")
        env.setenv("MODEL_DIR", str(model_dir()))
        env.setenv("POWERTOOLS_SERVICE_NAME", "s3kp-inference")
        for module in ("inference_handler", "inference_dependencies"):
            sys.modules.pop(module, None)
        return importlib.import_module("inference_handler")


def event(
    path: str = "/faces/1", query: str = "confidence=0.4", body: bytes = FACE, **changes: Any
) -> dict[str, Any]:
    """The recorded event with this request's path, query string and base64 body (as the ingest sends)."""
    http = {**EVENT["requestContext"]["http"], "path": path}
    return {
        **EVENT,
        "rawPath": path,
        "rawQueryString": query,
        "requestContext": {**EVENT["requestContext"], "http": http},
        "body": base64.b64encode(body).decode(),
        **changes,
    }


def invoke(handler: ModuleType, request: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = handler.lambda_handler(request, LambdaContext(function_name="s3kp-inference"))
    return response


def test_a_face_gets_the_roboflow_answer(handler: ModuleType) -> None:
    response = invoke(handler, event())
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/json"
    assert response["isBase64Encoded"] is False
    body = json.loads(response["body"])
    assert body["image"] == {"width": 512, "height": 512}
    (face,) = body["predictions"]
    assert face["class"] == "face"
    assert [k["class_name"] for k in face["keypoints"]][:2] == ["right_eye", "left_eye"]


def test_a_binary_body_arrives_base64_encoded_and_is_read_as_the_image(handler: ModuleType) -> None:
    """A Function URL passes a binary content type's body as base64 (isBase64Encoded)."""
    raw = event(body=FACE, headers={**EVENT["headers"], "content-type": "image/jpeg"}, isBase64Encoded=True)
    assert json.loads(invoke(handler, raw)["body"])["predictions"]


def test_format_image_answers_a_base64_jpeg(handler: ModuleType) -> None:
    response = invoke(handler, event(query="format=image"))
    assert (response["statusCode"], response["headers"]["content-type"]) == (200, "image/jpeg")
    assert response["isBase64Encoded"] is True
    assert base64.b64decode(response["body"])[:3] == b"\xff\xd8\xff"


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        pytest.param(event(body=b"not an image"), 400, id="undecodable: 400"),
        pytest.param(event(path="/pose/1"), 404, id="a model this function does not serve: 404"),
        pytest.param(event(body=b"x" * (6 * 1024 * 1024)), 413, id="over the 6 MB limit: 413"),
        pytest.param(event(query="confidence=much"), 422, id="a query value the route refuses: 422"),
        pytest.param({"rawPath": "/faces/1"}, 400, id="not a Function URL event: 400"),
    ],
)
def test_bad_requests_get_the_local_servers_status(
    handler: ModuleType, request_: dict[str, Any], status: int
) -> None:
    response = invoke(handler, request_)
    assert response["statusCode"] == status
    assert response["headers"]["content-type"] == "application/json"


def test_the_log_has_the_request_but_never_the_image_or_the_query(handler: ModuleType) -> None:
    written = io.StringIO()
    previous = handler.logger.registered_handler.setStream(written)  # Powertools writes JSON lines here
    try:
        invoke(handler, event(query="confidence=0.4&api_key=sekrit-key-123"))
    finally:
        handler.logger.registered_handler.setStream(previous)
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    (answered,) = [line for line in lines if line["message"] == "answered"]
    assert {k: answered[k] for k in ("model_id", "path", "status", "detections")} == {
        "model_id": "faces/1", "path": "/faces/1", "status": 200, "detections": 1,
    }  # fmt: skip
    assert answered["bytes_received"] == len(base64.b64encode(FACE))  # the body: the base64 text
    text = json.dumps(lines)
    assert "sekrit-key-123" not in text
    assert base64.b64encode(FACE).decode()[:40] not in text
