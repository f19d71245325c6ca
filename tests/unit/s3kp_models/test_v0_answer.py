"""The v0 route without a web framework (the InferenceFunction's) answers as the local server does.

Each request goes to both: `V0Service.answer` and the local server's FastAPI app (on the same fake model
and limits). Bad input gets the same status and the same body; a good one the same predictions.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from s3kp_models.request_decoding import ImageLimits
from s3kp_models.v0_answer import NO_MULTIPART, NO_URL_FETCH, V0Request, V0Service

from s3kp import samples
from tests.unit.model_server.fake_pipeline import FakePipeline, client_for

JPEG = samples.encode(samples.astronaut().resize((64, 48)))
B64 = base64.b64encode(JPEG)
FORM = "application/x-www-form-urlencoded"
LIMITS = ImageLimits(max_body_bytes=64 * 1024)


def both(path: str, body: bytes, content_type: str | None = FORM, method: str = "POST") -> tuple[Any, Any]:
    """(our answer, the local server's response) to the same request."""
    service = V0Service({"fake/1": FakePipeline()}, LIMITS, served="GET /models lists the served models")
    target, _, query = path.partition("?")
    ours = service.answer(V0Request(method, target, query.encode(), content_type, body))
    client, _ = client_for(image_limits=LIMITS)
    headers = {"Content-Type": content_type} if content_type else {}
    # The server wants an API key (any, here); the function is behind IAM and takes none.
    keyed = f"{target}?{'&'.join(filter(None, ['api_key=k', query]))}"
    theirs = client.request(method, keyed, content=body, headers=headers)
    return ours, theirs


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    """The answer without what differs on every request (time and ids)."""
    kept = {k: v for k, v in body.items() if k not in ("time", "inference_id")}
    kept["predictions"] = [{k: v for k, v in p.items() if k != "detection_id"} for p in body["predictions"]]
    return kept


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        pytest.param("/fake/9", B64, FORM, id="unknown model: 404"),
        pytest.param("/fake/1", b"%%% not base64 %%%", FORM, id="not base64: 400"),
        pytest.param("/fake/1", base64.b64encode(b"not an image"), FORM, id="not an image: 400"),
        pytest.param("/fake/1", b"", FORM, id="empty body: 400"),
        pytest.param("/fake/1", B64, None, id="no content type: 400"),
        pytest.param("/fake/1", b"A" * (LIMITS.max_body_bytes + 4), FORM, id="over the limit: 413"),
        pytest.param(
            "/fake/1", base64.b64encode(samples.decompression_bomb_png()), FORM, id="pixel bomb: 413"
        ),
        pytest.param("/fake/1?confidence=abc&max_detections=0", B64, FORM, id="bad query values: 422"),
        pytest.param("/fake/1?format=png", B64, FORM, id="unknown format: 422"),
    ],
)
def test_bad_input_is_answered_as_the_local_server_answers_it(
    path: str, body: bytes, content_type: str | None
) -> None:
    ours, theirs = both(path, body, content_type)
    assert (ours.status, json.loads(ours.body)) == (theirs.status_code, theirs.json())
    assert ours.content_type == "application/json"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "confidence=0.85",
        "confidence=40&overlap=0.5&classes=dog",
        "max_detections=1&keypoint_confidence=0.6",
    ],
)
def test_predictions_are_the_local_servers(query: str) -> None:
    ours, theirs = both(f"/fake/1?{query}", B64)
    assert ours.status == theirs.status_code == 200
    assert comparable(json.loads(ours.body)) == comparable(theirs.json())
    assert ours.detections == len(theirs.json()["predictions"])
    assert ours.headers["server-timing"].startswith("decode;dur=")


def test_a_raw_image_body_and_the_image_formats_work_as_on_the_server() -> None:
    raw, theirs = both("/fake/1", JPEG, "image/jpeg")
    assert comparable(json.loads(raw.body)) == comparable(theirs.json())
    drawn, _ = both("/fake/1?format=image", B64)
    assert (drawn.status, drawn.content_type, drawn.body[:3]) == (200, "image/jpeg", b"\xff\xd8\xff")
    both_ways, _ = both("/fake/1?format=image_and_json", B64)
    assert base64.b64decode(json.loads(both_ways.body)["visualization"])[:3] == b"\xff\xd8\xff"


@pytest.mark.parametrize(
    ("path", "content_type", "message"),
    [
        ("/fake/1?image=https://example.com/cat.jpg", FORM, NO_URL_FETCH),
        ("/fake/1", "multipart/form-data; boundary=x", NO_MULTIPART),
    ],
)
def test_what_only_the_local_server_offers_is_refused_with_400(
    path: str, content_type: str, message: str
) -> None:
    """No URL fetcher inside the account (server-side request forgery), no multipart parser."""
    service = V0Service({"fake/1": FakePipeline()}, LIMITS)
    target, _, query = path.partition("?")
    answer = service.answer(V0Request("POST", target, query.encode(), content_type, B64))
    assert (answer.status, json.loads(answer.body)) == (400, {"message": message})


@pytest.mark.parametrize(
    ("method", "path", "status"), [("POST", "/", 404), ("POST", "/a/b/c", 404), ("DELETE", "/fake/1", 405)]
)
def test_other_routes_and_methods_are_not_found_or_not_allowed(method: str, path: str, status: int) -> None:
    answer = V0Service({"fake/1": FakePipeline()}, LIMITS).answer(V0Request(method, path, b"", FORM, B64))
    assert answer.status == status


def test_a_404_names_the_model_this_endpoint_serves() -> None:
    answer = V0Service({"pose/1": FakePipeline()}, LIMITS).answer(
        V0Request("POST", "/faces/2", b"", FORM, B64)
    )
    assert json.loads(answer.body) == {"message": "Model 'faces/2' not found (this endpoint serves pose/1)"}
