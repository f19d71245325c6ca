"""The v0 fast path: plain POSTs skip FastAPI's routing, and answer exactly as FastAPI's route would."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from s3kp_models.v0_query import QueryInvalid, V0Query, read_plain_query, read_query

from s3kp import samples
from s3kp.model_server import app as app_module
from s3kp.model_server.context import ServerContext
from tests.unit.model_server.fake_pipeline import FakePipeline, client_for

JPEG = samples.encode(samples.astronaut().resize((64, 48)))
B64 = base64.b64encode(JPEG).decode()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def fastapi_route_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the requests that reached FastAPI's `infer_v0` (only it reads the key from a `Request`)."""
    calls: list[str] = []
    original = app_module.supplied_key

    def spy(*args: Any, **kwargs: Any) -> str | None:
        calls.append("infer_v0")
        return original(*args, **kwargs)

    monkeypatch.setattr(app_module, "supplied_key", spy)
    return calls


def test_a_plain_post_is_answered_before_fastapi_routing(fastapi_route_calls: list[str]) -> None:
    client, pipeline = client_for()
    response = client.post(
        "/fake/1?api_key=k&confidence=40&overlap=0.5&format=json", content=B64, headers=FORM
    )
    assert response.status_code == 200
    assert response.json()["predictions"]
    assert pipeline.last_call["confidence"] == 0.4
    assert fastapi_route_calls == []


@pytest.mark.parametrize(
    ("method", "query", "kwargs"),
    [
        ("GET", "api_key=k", {"content": B64, "headers": FORM}),  # GET: FastAPI's route
        ("POST", "api_key=k&labels=True", {"content": B64, "headers": FORM}),  # not a plain spelling
        ("POST", "api_key=k&confidence=1e1", {"content": B64, "headers": FORM}),
        ("POST", "api_key=k", {"files": {"file": ("a.jpg", JPEG, "image/jpeg")}}),  # multipart
    ],
)
def test_everything_else_goes_on_to_fastapi(
    fastapi_route_calls: list[str], method: str, query: str, kwargs: dict[str, Any]
) -> None:
    client, _ = client_for()
    response = client.request(method, f"/fake/1?{query}", **kwargs)
    assert response.status_code == 200
    assert fastapi_route_calls == ["infer_v0"]


def test_an_invalid_parameter_still_gets_fastapis_422(fastapi_route_calls: list[str]) -> None:
    client, _ = client_for()
    response = client.post("/fake/1?api_key=k&max_detections=0", content=B64, headers=FORM)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "max_detections"]


@pytest.mark.parametrize(
    ("query", "status"),
    [("", 400), ("api_key=wrong", 401)],
)
def test_key_errors_on_the_fast_path_are_the_routes_own(
    fastapi_route_calls: list[str], query: str, status: int
) -> None:
    client, pipeline = client_for(api_key="k")
    response = client.post(f"/fake/1?{query}", content=B64, headers=FORM)
    assert response.status_code == status
    assert set(response.json()) == {"message"}
    assert pipeline.calls == []
    assert fastapi_route_calls == []


def test_a_missing_content_type_on_the_fast_path_is_400() -> None:
    client, _ = client_for()
    response = client.post("/fake/1?api_key=k", content=B64.encode(), headers={"Content-Type": ""})
    assert response.status_code == 400
    assert "Content-Type" in response.json()["message"]


def test_a_path_a_fixed_route_owns_is_never_taken_for_a_model() -> None:
    """Served as `model/add`, a model would still lose its POST to inference-sdk's route, as in FastAPI;
    `model/registry` is GET only there, so its POST is the v0 route's."""
    models = {name: FakePipeline() for name in ("fake/1", "model/add", "model/registry")}
    app = app_module.create_app(models)
    assert app_module._v0_model_paths(app) == {"/fake/1": "fake/1", "/model/registry": "model/registry"}


# Values a client might send: the plain forms the fast path reads, and spellings it leaves to FastAPI.
_NUMBERS = ["0", "0.4", "40", "100", "250", "1.5", "007", "1e1", " 1", "-1", "", "nan", "inf", "0x10", "1_0",
            "+5", "-0", "\u0661"]  # fmt: skip
_INTEGERS = ["1", "5", "300", "10000", "10001", "0", "05", "-3", "2.0", "", "1e2", " 7", "2.5", "+3", "2."]
_BOOLEANS = ["true", "false", "1", "0", "True", "FALSE", "yes", "off", "on", "2", "", " true", "T"]
_FORMATS = ["json", "image", "image_and_json", "JSON", "png", ""]
_QUERIES = st.fixed_dictionaries(
    {},
    optional={
        "confidence": st.sampled_from(_NUMBERS),
        "overlap": st.sampled_from(_NUMBERS),
        "keypoint_confidence": st.sampled_from(_NUMBERS),
        "max_detections": st.sampled_from(_INTEGERS),
        "stroke": st.sampled_from([*_INTEGERS, "50", "51"]),
        "labels": st.sampled_from(_BOOLEANS),
        "format": st.sampled_from(_FORMATS),
        "classes": st.sampled_from(["cat", "cat, dog", "", ",,", "bird"]),
        "unknown": st.sampled_from(["x"]),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=_QUERIES)
def test_post_answers_exactly_as_fastapis_route(
    query: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN any query WHEN posted (fast path if plain) and sent as GET (always FastAPI's route) THEN the
    same parameters reach the model and the same answer comes back."""
    seen: list[Any] = []
    original = ServerContext.infer

    async def recording(self: ServerContext, pipeline: Any, image: Any, params: Any) -> Any:
        seen.append(params)
        return await original(self, pipeline, image, params)

    monkeypatch.setattr(ServerContext, "infer", recording)
    client, _ = client_for()
    url = f"/fake/1?{urlencode({'api_key': 'k', **query})}"
    fast = client.post(url, content=B64, headers=FORM)
    reference = client.request("GET", url, content=B64, headers=FORM)
    assert fast.status_code == reference.status_code
    assert fast.headers["content-type"] == reference.headers["content-type"]
    if reference.status_code != 200:
        assert fast.json() == reference.json()
        return
    assert seen[0] == seen[1]
    if "json" in reference.headers["content-type"]:
        assert _comparable(fast.json()) == _comparable(reference.json())
    if read_plain_query(url.split("?", 1)[1].encode()) is None:
        return
    assert read_plain_query(url.split("?", 1)[1].encode()) == V0Query(seen[0], "k", None)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=_QUERIES)
def test_the_full_query_reader_reads_what_fastapis_route_reads(
    query: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN any query THEN `read_query` (the InferenceFunction's reader) refuses it exactly when FastAPI's
    route answers 422, with the same places named, and otherwise reads the parameters the route reads."""
    seen: list[Any] = []
    original = ServerContext.infer

    async def recording(self: ServerContext, pipeline: Any, image: Any, params: Any) -> Any:
        seen.append(params)
        return await original(self, pipeline, image, params)

    monkeypatch.setattr(ServerContext, "infer", recording)
    client, _ = client_for()
    query_string = urlencode({"api_key": "k", **query})
    reference = client.request("GET", f"/fake/1?{query_string}", content=B64, headers=FORM)
    if reference.status_code == 422:
        with pytest.raises(QueryInvalid) as refused:
            read_query(query_string.encode())
        named = sorted(d["loc"] for d in refused.value.detail)
        assert named == sorted(d["loc"] for d in reference.json()["detail"])
        return
    assert reference.status_code == 200, reference.text
    assert read_query(query_string.encode()) == V0Query(seen[0], "k", None)


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    """The answer without what differs on every request (time, ids, the drawing's JPEG bytes)."""
    kept = {k: v for k, v in body.items() if k not in ("time", "inference_id", "visualization")}
    kept["predictions"] = [
        {k: v for k, v in p.items() if k != "detection_id"} for p in body.get("predictions", [])
    ]
    return kept
