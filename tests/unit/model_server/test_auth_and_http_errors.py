"""API keys and the upstream error shapes: `{"message"}` with the right status, the key never echoed."""

from __future__ import annotations

import base64

import pytest

from s3kp import samples
from tests.unit.model_server.fake_pipeline import FakePipeline, client_for

KEY = "s3cr3t-key-value"
BODY = base64.b64encode(samples.encode(samples.astronaut().resize((32, 32))))
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_required_key_in_the_query_is_accepted() -> None:
    client, _ = client_for(api_key=KEY)
    assert client.post(f"/fake/1?api_key={KEY}", content=BODY, headers=FORM).status_code == 200


def test_required_key_as_a_bearer_token_is_accepted() -> None:
    client, _ = client_for(api_key=KEY)
    response = client.post("/fake/1", content=BODY, headers=FORM | {"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200


def test_wrong_key_is_401_without_running_the_model() -> None:
    client, pipeline = client_for(api_key=KEY)
    response = client.post("/fake/1?api_key=wrong", content=BODY, headers=FORM)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized api_key"}
    assert pipeline.calls == []


@pytest.mark.parametrize("query", ["", "?api_key="])
def test_missing_key_is_400_as_upstream(query: str) -> None:
    client, _ = client_for()
    response = client.post(f"/fake/1{query}", content=BODY, headers=FORM)
    assert response.status_code == 400
    assert "API key" in response.json()["message"]


def test_without_a_configured_key_any_non_empty_key_is_accepted() -> None:
    client, _ = client_for(api_key=None)
    assert client.post("/fake/1?api_key=whatever", content=BODY, headers=FORM).status_code == 200


@pytest.mark.parametrize("path", ["/nope/1", "/fake/2"])
def test_unknown_model_is_404(path: str) -> None:
    client, _ = client_for()
    response = client.post(f"{path}?api_key=k", content=BODY, headers=FORM)
    assert response.status_code == 404
    assert path.lstrip("/") in response.json()["message"]


def test_an_exploding_model_is_a_generic_500() -> None:
    """GIVEN a model that raises WHEN a request arrives THEN 500 `Internal error.` and no details leak."""
    client, _ = client_for(FakePipeline(error=RuntimeError(f"boom with {KEY}")))
    response = client.post(f"/fake/1?api_key={KEY}", content=BODY, headers=FORM)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal error."}


def test_validation_errors_never_echo_the_request_body_or_key() -> None:
    """A v1 body missing `model_id` fails validation as a whole: pydantic's `input` would be the body."""
    client, _ = client_for()
    response = client.post("/infer/keypoints_detection", json={"api_key": KEY, "image": {"type": "base64"}})
    assert response.status_code == 422
    assert KEY not in response.text
    assert {tuple(e["loc"]) for e in response.json()["detail"]} >= {("body", "model_id")}


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("post", "/fake/1?api_key=wrong", {"content": BODY, "headers": FORM}),
        ("post", "/nope/1?api_key=wrong", {"content": BODY, "headers": FORM}),
        ("post", "/infer/keypoints_detection", {"json": {"api_key": "wrong", "model_id": "fake/1"}}),
        ("get", "/model/registry?api_key=wrong", {}),
    ],
)
def test_no_error_response_contains_the_supplied_key(
    method: str, path: str, kwargs: dict[str, object]
) -> None:
    client, _ = client_for(api_key=KEY)
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code >= 400
    assert "wrong" not in response.text
