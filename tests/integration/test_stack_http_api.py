"""The local HTTP API bridge over real HTTP, with a stub in place of the API function.

Specification: it answers like API Gateway's HTTP API in front of a Lambda proxy integration — route
matching against the template's routes, v2 events, the handler's response written back verbatim, and
gateway errors for unknown routes and failed invocations — but only to this machine: a foreign `Host`
(DNS rebinding) or a page elsewhere (`Origin`) is refused, and CORS is granted to this machine's pages
(the viewer's origin) only.
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from s3kp.local.host_guard import HostGuard
from s3kp.local.http_api import HttpApiBridge
from s3kp.local.lambda_runtime import LambdaContext
from s3kp.local.ports import port_is_free
from s3kp.local.template_functions import CorsConfiguration, http_api_cors, http_api_routes
from s3kp.local.workers import HandlerError
from tests.conftest import free_port

ROUTES = ["GET /results", "GET /results/{result_id}", "GET /results/{result_id}/annotated"]
VIEWER_ORIGIN = "http://127.0.0.1:8080"  # `s3kp view`'s default


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
            # API Gateway replaces a function's CORS headers with its configured ones.
            "headers": {
                "Content-Type": "application/json",
                "Access-Control-Allow-Origin": "https://fn.example",
            },
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


def test_stop_frees_the_port_for_the_next_bridge(function: RecordingFunction) -> None:
    """GIVEN a bridge that served a request WHEN it stops THEN nothing answers on its port any more, and a
    new bridge on the same port (the next `s3kp up`) serves."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/results"
    bridge = HttpApiBridge("127.0.0.1", port, function, routes=ROUTES)
    bridge.start()
    assert requests.get(url, timeout=5).status_code == 200
    bridge.stop()

    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
    assert port_is_free("127.0.0.1", port)
    again = HttpApiBridge("127.0.0.1", port, function, routes=ROUTES)
    again.start()
    try:
        assert requests.get(url, timeout=5).json() == {"path": "/results", "query": None}
    finally:
        again.stop()
    assert len(function.events) == 2


def test_a_method_the_route_lacks_is_a_405_naming_the_allowed_methods(
    api: str, function: RecordingFunction
) -> None:
    """GIVEN the route `GET /results/{result_id}` WHEN a client DELETEs or POSTs there THEN the gateway
    answers 405 with an `Allow` header, without invoking the function; an unknown path stays a 404."""
    for method in ("DELETE", "POST", "PUT"):
        response = requests.request(method, f"{api}/results/abc", timeout=5)
        assert response.status_code == 405, method
        assert response.headers["Allow"] == "GET"
        assert response.json() == {"message": "Method Not Allowed"}
    assert requests.delete(f"{api}/elsewhere", timeout=5).status_code == 404
    assert function.events == []


@pytest.fixture
def template_api(function: RecordingFunction) -> Iterator[str]:
    """The bridge with the routes and the CORS configuration of the real template.yaml."""
    bridge = HttpApiBridge("127.0.0.1", free_port(), function, routes=http_api_routes(), cors=http_api_cors())
    bridge.start()
    yield f"http://127.0.0.1:{bridge.port}"
    bridge.stop()


def test_a_browser_preflight_is_answered_as_the_templates_cors_configuration_says(
    template_api: str, function: RecordingFunction
) -> None:
    """GIVEN the template's CorsConfiguration (origins: the CorsAllowOrigin default `*`, methods GET and
    OPTIONS, its headers, max age 600) WHEN the viewer's page sends a preflight THEN the gateway answers
    it itself: 204 with those headers, the origin named rather than `*` (only this machine's pages pass
    the guard), and the function is not invoked."""
    template = template_functions_cors()
    response = requests.options(
        f"{template_api}/results/abc",
        headers={
            "Origin": VIEWER_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=5,
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["Access-Control-Allow-Origin"] == VIEWER_ORIGIN
    assert response.headers["Vary"] == "origin"
    assert response.headers["Access-Control-Allow-Methods"] == "GET,OPTIONS"
    assert response.headers["Access-Control-Allow-Headers"].split(",") == list(template.allow_headers)
    assert "authorization" in template.allow_headers
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert function.events == []

    # A plain OPTIONS (no preflight headers) is not a preflight: the route has no OPTIONS method.
    assert requests.options(f"{template_api}/results/abc", timeout=5).status_code == 405
    assert requests.delete(f"{template_api}/results/abc", timeout=5).headers["Allow"] == "GET, OPTIONS"


def test_a_cross_origin_request_gets_the_gateways_cors_headers_not_the_functions(
    template_api: str,
) -> None:
    response = requests.get(f"{template_api}/results", headers={"Origin": VIEWER_ORIGIN}, timeout=5)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == VIEWER_ORIGIN
    assert "Access-Control-Allow-Methods" not in response.headers  # preflight-only header


def test_a_preflight_from_an_origin_not_allowed_gets_no_cors_headers(function: RecordingFunction) -> None:
    """GIVEN a configuration naming one origin of this machine THEN another page of this machine passes
    the guard but gets no CORS headers."""
    cors = CorsConfiguration(allow_origins=("http://localhost:8080",), allow_methods=("GET", "OPTIONS"))
    bridge = HttpApiBridge("127.0.0.1", free_port(), function, routes=ROUTES, cors=cors)
    bridge.start()
    try:
        url = f"http://127.0.0.1:{bridge.port}/results"
        preflight = {"Access-Control-Request-Method": "GET"}
        allowed = requests.options(url, headers={"Origin": "http://localhost:8080", **preflight}, timeout=5)
        other = requests.options(url, headers={"Origin": "http://localhost:5173", **preflight}, timeout=5)
    finally:
        bridge.stop()
    assert allowed.status_code == other.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:8080"
    assert "Access-Control-Allow-Origin" not in other.headers
    assert function.events == []


# ------------------------------------------------------------------------ only this machine's pages
def _cors_headers(response: requests.Response) -> list[str]:
    return [name for name in response.headers if name.lower().startswith("access-control-")]


def test_a_rebinding_page_is_refused_before_the_function_runs(
    template_api: str, function: RecordingFunction
) -> None:
    """GIVEN the local API as the stack configures it WHEN a request names another Host (a page whose
    name now resolves to 127.0.0.1) THEN 403 without invoking the function; loopback names are served."""
    port = template_api.rsplit(":", 1)[1]
    for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.nip.io:{port}"):
        refused = requests.get(f"{template_api}/results", headers={"Host": host}, timeout=5)
        assert refused.status_code == 403, host
        assert "only this machine" in refused.json()["message"]
    assert function.events == []
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert requests.get(f"{template_api}/results", headers={"Host": host}, timeout=5).status_code == 200


def test_a_page_elsewhere_is_refused_and_granted_no_cors_even_in_preflight(
    template_api: str, function: RecordingFunction
) -> None:
    """GIVEN the template's CORS configuration (`*`) WHEN a page on another site sends a request or a
    preflight THEN both are refused with 403 and no Access-Control-* header, the function not invoked."""
    foreign = {"Origin": "https://attacker.example"}
    direct = requests.get(f"{template_api}/results", headers=foreign, timeout=5)
    assert direct.status_code == 403
    assert _cors_headers(direct) == []
    preflight = requests.options(
        f"{template_api}/results",
        headers={**foreign, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x"},
        timeout=5,
    )
    assert preflight.status_code == 403
    assert _cors_headers(preflight) == []
    assert function.events == []


def test_a_foreign_host_or_origin_beside_a_loopback_one_is_refused(
    api: str, function: RecordingFunction
) -> None:
    """GIVEN a request repeating `Host` or `Origin` (no browser does) THEN it is refused when any value is
    foreign, whichever comes first, and the function is not invoked."""
    port = int(api.rsplit(":", 1)[1])
    own, foreign = "http://127.0.0.1:8080", "https://attacker.example"
    for headers in (
        [("Host", f"127.0.0.1:{port}"), ("Host", "attacker.example")],
        [("Host", "attacker.example"), ("Host", f"127.0.0.1:{port}")],
        [("Host", f"127.0.0.1:{port}"), ("Origin", own), ("Origin", foreign)],
        [("Host", f"127.0.0.1:{port}"), ("Origin", foreign), ("Origin", own)],
    ):
        assert _raw_get(port, "/results", headers) == 403, headers
    assert function.events == []


def _raw_get(port: int, path: str, headers: list[tuple[str, str]]) -> int:
    """The status of a GET sent with exactly `headers` (requests would merge a repeated header)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.putrequest("GET", path, skip_host=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_with_allow_remote_clients_on_the_network_use_the_address(function: RecordingFunction) -> None:
    """GIVEN the guard of a stack bound off loopback with --allow-remote THEN a Host naming an address is
    served (how another machine reaches it), a rebinding name still is not."""
    guard = HostGuard.for_bind("0.0.0.0", allow_remote=True)
    bridge = HttpApiBridge("127.0.0.1", free_port(), function, routes=ROUTES, guard=guard)
    bridge.start()
    try:
        url = f"http://127.0.0.1:{bridge.port}/results"
        by_address = requests.get(url, headers={"Host": f"192.168.1.5:{bridge.port}"}, timeout=5)
        rebound = requests.get(url, headers={"Host": f"attacker.example:{bridge.port}"}, timeout=5)
    finally:
        bridge.stop()
    assert by_address.status_code == 200
    assert rebound.status_code == 403


def template_functions_cors() -> CorsConfiguration:
    cors = http_api_cors()
    assert cors is not None, "template.yaml's HTTP API declares a CorsConfiguration"
    return cors
