"""Specification of the local API Gateway (HTTP API, payload 2.0) adapter used by the :3000 bridge."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from s3kp.local.apigw import http_api_event, http_response
from s3kp.local.lambda_runtime import LambdaContext


def test_event_has_the_payload_2_0_shape() -> None:
    event = http_api_event(
        "get", "/results", "limit=5", [("User-Agent", "curl/8")], b"", source_ip="10.0.0.9"
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/results"
    assert event["rawQueryString"] == "limit=5"
    assert event["queryStringParameters"] == {"limit": "5"}
    assert event["isBase64Encoded"] is False
    assert not {"body", "cookies", "pathParameters"} & set(event)
    context = event["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/results",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.0.0.9",
        "userAgent": "curl/8",
    }
    assert (context["routeKey"], context["stage"]) == ("$default", "$default")
    assert context["requestId"]
    assert abs(context["timeEpoch"] / 1000 - time.time()) < 5


def test_repeated_query_parameters_are_comma_joined_and_decoded() -> None:
    event = http_api_event("GET", "/x", "a=1&a=2&key=incoming%2Fcat%2B1%20%C3%A9.jpg&plus=a+b", {}, b"")
    assert event["queryStringParameters"] == {"a": "1,2", "key": "incoming/cat+1 é.jpg", "plus": "a b"}
    assert event["rawQueryString"] == "a=1&a=2&key=incoming%2Fcat%2B1%20%C3%A9.jpg&plus=a+b"


def test_headers_are_lower_cased_repeats_joined_and_cookies_moved_out() -> None:
    headers = [("X-Thing", "1"), ("x-thing", "2"), ("Cookie", "a=1; b=2"), ("Content-Type", "text/plain")]
    event = http_api_event("POST", "/x", "", headers, b"hi")
    assert event["headers"]["x-thing"] == "1,2"
    assert event["headers"]["content-type"] == "text/plain"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["a=1", "b=2"]


def test_the_path_arrives_percent_decoded_like_api_gateway_sends_it() -> None:
    event = http_api_event("GET", "/results/a%20b%C3%A9", "", {}, b"")
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/results/a bé"


def test_text_bodies_are_passed_as_text_and_binary_bodies_base64() -> None:
    text = http_api_event("POST", "/x", "", {"content-type": "application/json"}, b'{"a": 1}')
    assert (text["body"], text["isBase64Encoded"]) == ('{"a": 1}', False)
    binary = http_api_event("POST", "/x", "", {"content-type": "image/jpeg"}, b"\xff\xd8\xff")
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == b"\xff\xd8\xff"


def test_route_keys_with_parameters_fill_path_parameters() -> None:
    event = http_api_event(
        "GET", "/results/abc/annotated", "", {}, b"", route_key="GET /results/{id}/annotated"
    )
    assert event["pathParameters"] == {"id": "abc"}
    proxy = http_api_event("GET", "/a/b/c", "", {}, b"", route_key="ANY /{proxy+}")
    assert proxy["pathParameters"] == {"proxy": "a/b/c"}


def test_powertools_reads_the_event_as_api_gateway_would_deliver_it() -> None:
    event = APIGatewayProxyEventV2(
        http_api_event(
            "GET", "/r", "k=a%2Cb&k=c", [("Cookie", "s=1"), ("X-A", "v")], b"", source_ip="1.2.3.4"
        )
    )
    assert event.path == "/r"
    assert event.http_method == "GET"
    assert event.get_query_string_value("k") == "a,b,c"
    assert event.headers.get("X-A") == "v"
    assert event.cookies == ["s=1"]
    assert event.request_context.http.source_ip == "1.2.3.4"


def test_round_trip_through_a_powertools_resolver() -> None:
    """GIVEN a request WHEN it goes event -> resolver -> response THEN what the route saw and sent survive."""
    app = APIGatewayHttpResolver()

    @app.post("/echo/<name>")
    def echo(name: str) -> Response[Any]:
        seen = {
            "name": name,
            "q": app.current_event.query_string_parameters,
            "body": app.current_event.json_body,
            "cookies": app.current_event.cookies,
        }
        return Response(200, "application/json", json.dumps(seen), headers={"X-Seen": "yes"}, cookies=[])

    event = http_api_event(
        "POST",
        "/echo/n%C3%A9",
        "x=1",
        [("Content-Type", "application/json"), ("Cookie", "c=3")],
        b'{"v": [1]}',
    )
    status, headers, body = http_response(app.resolve(event, LambdaContext()))
    assert status == 200
    assert ("X-Seen", "yes") in headers
    assert json.loads(body) == {"name": "né", "q": {"x": "1"}, "body": {"v": [1]}, "cookies": ["c=3"]}


def test_response_cookies_become_set_cookie_lines() -> None:
    status, headers, body = http_response(
        {"statusCode": 302, "headers": {"Location": "https://x"}, "cookies": ["a=1; Path=/", "b=2"]}
    )
    assert status == 302
    assert headers == [("Location", "https://x"), ("set-cookie", "a=1; Path=/"), ("set-cookie", "b=2")]
    assert body == b""


def test_base64_response_bodies_are_decoded() -> None:
    result = {
        "statusCode": 200,
        "headers": {"content-type": "image/jpeg"},
        "body": "/9j/",
        "isBase64Encoded": True,
    }
    assert http_response(result)[2] == b"\xff\xd8\xff"


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], "text"])
def test_a_result_without_status_code_is_an_inferred_json_200(value: Any) -> None:
    status, headers, body = http_response(value)
    assert status == 200
    assert ("content-type", "application/json") in headers
    assert json.loads(body) == value
