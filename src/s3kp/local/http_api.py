"""The local HTTP API: what API Gateway (HTTP API, payload 2.0) does in front of the API function.

Each request becomes an HTTP API v2 event (`apigw.http_api_event`), the API handler runs on it (in its
Lambda worker) and its result is written back (`apigw.http_response`). Like `sam local start-api` it is
unauthenticated — the deployed API uses IAM auth — so it binds to loopback unless told otherwise.

What the gateway answers itself, without invoking the function: 404 for a path no route has; 405 with an
`Allow` header for a method the path's routes lack (API Gateway would say 404 there: the local API is
more explicit); and, with the template's `CorsConfiguration`, a browser's preflight (`OPTIONS` with
`Origin` and `Access-Control-Request-Method`) is answered 204 with the configured CORS headers — only
when the origin is allowed — while the function's own `Access-Control-*` headers are replaced by the
configured ones, as API Gateway does.

Unlike API Gateway it answers only this machine (`host_guard`): a request with a foreign `Host` (DNS
rebinding) or from a page elsewhere (`Origin`) gets a 403 before anything else. So the template's CORS
origins are narrowed to this machine's pages (the viewer's): where the template allows `*`, the gateway
names the requesting origin instead, with `Vary: Origin`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import unquote

from s3kp.local import apigw
from s3kp.local.bridge_handler import bridge_request_handler
from s3kp.local.host_guard import REFUSED_STATUS, HostGuard
from s3kp.local.lambda_runtime import LambdaContext
from s3kp.local.loopback_server import GuardedHandler, LoopbackServer, guarded_http_server
from s3kp.local.template_functions import CorsConfiguration
from s3kp.local.workers import InvocationError

log = logging.getLogger(__name__)

# API Gateway's limits: a 10 MB payload, 30 s integration timeout (HTTP API).
MAX_BODY_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_SECONDS = 30.0

Invoke = Callable[[dict[str, Any], LambdaContext], Any]


class HttpApiBridge(LoopbackServer):
    """A threading HTTP server on `host:port` that forwards every request to `invoke`."""

    def __init__(
        self,
        host: str,
        port: int,
        invoke: Invoke,
        *,
        routes: list[str] | None = None,
        function_name: str = "s3kp-api",
        timeout_seconds: float = 30.0,
        cors: CorsConfiguration | None = None,
        guard: HostGuard | None = None,
    ) -> None:
        """`routes` are the API's route keys (`GET /results/{id}`); None sends everything as `$default`.
        `cors` is the API's CORS configuration (`template_functions.http_api_cors`), None for none.
        `guard` decides which `Host` and `Origin` are served (default: loopback names only)."""
        self._invoke = invoke
        self._cors = cors
        self._routes = [(route, _route_pattern(route)) for route in routes] if routes is not None else None
        self._function_name = function_name
        self._timeout_seconds = min(timeout_seconds, INTEGRATION_TIMEOUT_SECONDS)
        super().__init__(
            guarded_http_server(host, port, self._request_handler_class(), guard), thread_name="http-api"
        )

    def handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """One request the guard let through (`bridge_handler`), through the API function: status,
        headers and body to send back."""
        path, _, query = target.partition("?")
        origin = _header(headers, "origin")
        preflight = method == "OPTIONS" and _header(headers, "access-control-request-method") is not None
        if self._cors is not None and origin is not None and preflight:
            return 204, self._cors_headers(origin, preflight=True), b""
        route_key = self._route_key(method, unquote(path))
        if route_key is None:
            allowed = self._allowed_methods(unquote(path))
            if not allowed:
                return _gateway_error(404, "Not Found")  # API Gateway answers unknown routes itself
            status, error_headers, payload = _gateway_error(405, "Method Not Allowed")
            return status, [*error_headers, ("allow", ", ".join(allowed))], payload
        status, response_headers, payload = self._call(
            method, path, query, headers, body, source_ip, route_key
        )
        if self._cors is not None and origin is not None:
            response_headers = [
                (name, value)
                for name, value in response_headers
                if not name.lower().startswith("access-control-")
            ] + self._cors_headers(origin, preflight=False)
        return status, response_headers, payload

    def _call(
        self,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        route_key: str,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        event = apigw.http_api_event(
            method, path, query, headers, body, source_ip=source_ip, route_key=route_key
        )
        context = LambdaContext(function_name=self._function_name, timeout_seconds=self._timeout_seconds)
        try:
            result = self._invoke(event, context)
        except InvocationError as error:
            # API Gateway answers a failed integration with this exact body; the detail goes to our log.
            log.warning("%s %s: the API function failed: %s", method, path, error)
            return _gateway_error(500, "Internal Server Error")
        return apigw.http_response(result)

    def _allowed_methods(self, path: str) -> list[str]:
        """The methods the routes of `path` accept (OPTIONS too when the gateway answers preflights)."""
        if self._routes is None:
            return []
        methods = set()
        for route, pattern in self._routes:
            route_method = route.partition(" ")[0]  # never ANY here: that route would have matched
            if pattern.fullmatch(f"{route_method} {path}"):
                methods.add(route_method)
        if methods and self._cors is not None:
            methods.add("OPTIONS")
        return sorted(methods)

    def _cors_headers(self, origin: str, *, preflight: bool) -> list[tuple[str, str]]:
        """The CORS headers API Gateway adds for `origin` (one the guard let through): none when the
        configuration does not allow it; the origin itself, never `*` (see the module doc)."""
        cors = self._cors
        assert cors is not None
        if "*" not in cors.allow_origins and not _origin_allowed(origin, cors.allow_origins):
            return []
        headers = [("access-control-allow-origin", origin), ("vary", "origin")]
        if cors.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        if preflight:
            headers.append(("access-control-allow-methods", ",".join(cors.allow_methods)))
            if cors.allow_headers:
                headers.append(("access-control-allow-headers", ",".join(cors.allow_headers)))
            if cors.max_age is not None:
                headers.append(("access-control-max-age", str(cors.max_age)))
        elif cors.expose_headers:
            headers.append(("access-control-expose-headers", ",".join(cors.expose_headers)))
        return headers

    def _route_key(self, method: str, path: str) -> str | None:
        if self._routes is None:
            return "$default"
        for route, pattern in self._routes:
            if pattern.fullmatch(f"{method.upper()} {path}"):
                return route
        return None

    def _request_handler_class(self) -> type[GuardedHandler]:
        return bridge_request_handler(
            self.handle,
            server_version="s3kp-local-http-api",
            max_body_bytes=MAX_BODY_BYTES,
            too_large=_gateway_error(413, "Request Entity Too Large"),
            refused=partial(_gateway_error, REFUSED_STATUS),
        )


def _route_pattern(route_key: str) -> re.Pattern[str]:
    """`GET /results/{id}` -> a regex over "METHOD path"; `ANY` matches every method, `{x+}` a greedy tail."""
    method, _, template = route_key.partition(" ")
    pattern = "[A-Z]+" if method == "ANY" else re.escape(method)
    pattern += " "
    for part in re.split(r"(\{[^}]+\})", template):
        if part.endswith("+}"):
            pattern += ".+"
        elif part.startswith("{"):
            pattern += "[^/]+"
        else:
            pattern += re.escape(part)
    return re.compile(pattern)


def _origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    """API Gateway's origin matching: exact, or a `scheme://*` wildcard."""
    return any(origin == candidate or (candidate.endswith("://*") and origin.startswith(candidate[:-1]))
               for candidate in allowed)  # fmt: skip


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)


def _gateway_error(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("content-type", "application/json")], json.dumps({"message": message}).encode()
