"""The local HTTP API bridge over real HTTP, with a stub in place of the API function.

Specification: it answers like API Gateway's HTTP API in front of a Lambda proxy integration — route
matching against the template's routes, v2 events, the handler's response written back verbatim, and
gateway errors for unknown routes and failed invocations.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from s3kp.local.http_api import HttpApiBridge
from s3kp.local.lambda_runtime import LambdaContext
from s3kp.local.workers import HandlerError
from tests.conftest import free_port

ROUTES = ["GET /results", "GET /results/{result_id}", "GET /results/{result_id}/annotated"]


class RecordingFunction:
    """Answers with the event it received; raises when the path asks it to."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        self.events.append(event)
        if event["rawPath"].endswith("/explode"):
            raise HandlerError("RuntimeError: boom")
        if event["rawPath"].endswith("/annotated"):
            return {"statusCode": 302, "headers": {"Location": "http://example.invalid/a.jpg"}}
        body = json.dumps({"path": event["rawPath"], "query": event.get("queryStringParameters")})
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "cookies": ["a=1", "b=2"],
            "body": base64.b64encode(body.encode()).decode(),
            "isBase64Encoded": True,
        }


@pytest.fixture
def function() -> RecordingFunction:
    return RecordingFunction()


@pytest.fixture
def api(function: RecordingFunction) -> Iterator[str]:
    bridge = HttpApiBridge("127.0.0.1", free_port(), function, routes=[*ROUTES, "GET /results/{id}/explode"])
    bridge.start()
    yield f"http://127.0.0.1:{bridge.port}"
    bridge.stop()


def test_a_request_becomes_a_v2_event_on_the_matching_route(api: str, function: RecordingFunction) -> None:
    response = requests.get(f"{api}/results/abc%20def?limit=5&status=failed", timeout=5)

    assert response.status_code == 200
    assert response.json() == {"path": "/results/abc def", "query": {"limit": "5", "status": "failed"}}
    (event,) = function.events
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /results/{result_id}"
    assert event["pathParameters"] == {"result_id": "abc def"}
    assert event["rawQueryString"] == "limit=5&status=failed"


def test_the_handlers_status_headers_and_cookies_are_written_back(api: str) -> None:
    redirect = requests.get(f"{api}/results/x/annotated", allow_redirects=False, timeout=5)
    assert redirect.status_code == 302
    assert redirect.headers["Location"] == "http://example.invalid/a.jpg"

    listing = requests.get(f"{api}/results", timeout=5)
    assert listing.cookies.get("a") == "1"
    assert listing.cookies.get("b") == "2"


def test_an_unknown_route_is_answered_by_the_gateway_without_invoking(
    api: str, function: RecordingFunction
) -> None:
    response = requests.get(f"{api}/nowhere", timeout=5)
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
    assert function.events == []


def test_a_failed_invocation_is_a_500_that_hides_the_error(api: str) -> None:
    response = requests.get(f"{api}/results/x/explode", timeout=5)
    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}


def test_stop_frees_the_port(function: RecordingFunction) -> None:
    port = free_port()
    bridge = HttpApiBridge("127.0.0.1", port, function, routes=ROUTES)
    bridge.start()
    bridge.stop()
    again = HttpApiBridge("127.0.0.1", port, function, routes=ROUTES)  # binds, or raises if still held
    again.stop()
