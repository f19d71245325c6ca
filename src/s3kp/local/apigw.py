"""What API Gateway (HTTP API, payload format 2.0) does around a Lambda handler, reproduced locally.

`http_api_event` turns a plain HTTP request into the event an HTTP API delivers, and `http_response`
turns the handler's return value back into status, headers and body, so the offline stack's HTTP
bridge on :3000 runs the very handler that runs in AWS.

Fidelity notes (what AWS does, and we copy):
- `rawPath` and `requestContext.http.path` arrive percent-DECODED; `rawQueryString` stays encoded.
- `queryStringParameters` are decoded, a repeated name's values joined by commas.
- Header names are lower-cased; repeated headers are joined by commas; `Cookie` headers move to
  `cookies` (one entry per `name=value`) and are not repeated in `headers`.
- Bodies of textual content types are passed as text, anything else base64 (`isBase64Encoded`).
- A handler returning something other than `{"statusCode": ...}` is answered 200 with that value as
  JSON (the payload 2.0 "inferred response").
See https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]]

API_ID = "local"
ACCOUNT_ID = "123456789012"
DOMAIN_NAME = "127.0.0.1"
_TEXT_TYPES = re.compile(r"^(text/|application/(.*\+)?(json|xml|javascript|x-www-form-urlencoded)\b)", re.I)


def http_api_event(
    method: str,
    path: str,
    query_string: str,
    headers: HeaderInput,
    body: bytes,
    *,
    source_ip: str = "127.0.0.1",
    route_key: str = "$default",
    stage: str = "$default",
) -> dict[str, Any]:
    """The HTTP API v2 event for one request.

    `path` is the request target's path as sent on the wire (percent-encoded), `query_string` the part
    after `?` (without it). `route_key` may be a route such as `GET /results/{id}` or `ANY /{proxy+}`:
    then `pathParameters` are filled from `path` as API Gateway would.
    """
    header_pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
    merged_headers, cookies = _merge_headers(header_pairs)
    decoded_path = unquote(path)
    now = time.time()
    request_id = uuid.uuid4().hex[:16]
    merged_headers.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{uuid.uuid4().hex[:24]}")
    if body:
        merged_headers.setdefault("content-length", str(len(body)))

    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": decoded_path,
        "rawQueryString": query_string,
        "headers": merged_headers,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": DOMAIN_NAME,
            "domainPrefix": DOMAIN_NAME.split(".", 1)[0],
            "http": {
                "method": method.upper(),
                "path": decoded_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged_headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": stage,
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    query_parameters = _query_parameters(query_string)
    if query_parameters:
        event["queryStringParameters"] = query_parameters
    path_parameters = _path_parameters(route_key, decoded_path, stage)
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        if _is_text(merged_headers.get("content-type", ""), body):
            event["body"] = body.decode("utf-8")
        else:
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


def http_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers (one tuple per header line, `Set-Cookie` repeated) and body of a handler's result."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # Payload 2.0 inferred response: any other JSON value is the body of a 200.
        return 200, [("content-type", "application/json")], json.dumps(result).encode()

    headers: list[tuple[str, str]] = [
        (name, str(value)) for name, value in (result.get("headers") or {}).items()
    ]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(value)) for value in values)
    headers.extend(("set-cookie", cookie) for cookie in result.get("cookies") or [])

    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw_body)
    else:
        body = str(raw_body).encode("utf-8")
    if not any(name.lower() == "content-type" for name, _ in headers) and body:
        headers.append(("content-type", "application/json"))
    return int(result["statusCode"]), headers, body


def _merge_headers(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in pairs:
        lower = name.lower()
        if lower == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        elif lower in merged:
            merged[lower] = f"{merged[lower]},{value}"
        else:
            merged[lower] = value
    return merged, cookies


def _query_parameters(query_string: str) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        parameters[name] = f"{parameters[name]},{value}" if name in parameters else value
    return parameters


def _path_parameters(route_key: str, path: str, stage: str) -> dict[str, str]:
    """Values of `{name}` / `{name+}` segments of the route's path template, matched against `path`."""
    if route_key == "$default":
        return {}
    template = route_key.split(" ", 1)[-1]
    if stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{") and part.endswith("+}"):
            pattern += f"(?P<{part[1:-2]}>.+)"
        elif part.startswith("{"):
            pattern += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            pattern += re.escape(part)
    match = re.fullmatch(pattern, path)
    return match.groupdict() if match else {}


def _is_text(content_type: str, body: bytes) -> bool:
    if not _TEXT_TYPES.match(content_type.strip()):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
