"""The HTTP side the local bridges share (the HTTP API and the Function URL): read the body within the
front door's limit, apply the Host/Origin guard (`loopback_server.GuardedHandler`), hand the request to the
bridge, write its answer back.

`http.server` rather than an ASGI server: the bridges only translate a request into a Lambda event and
back, a thread per connection is plenty on loopback, and the standard library starts in milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from s3kp.local.loopback_server import GuardedHandler

Response = tuple[int, list[tuple[str, str]], bytes]
# (method, target, headers, body, source ip) -> (status, headers, body)
Handle = Callable[[str, str, list[tuple[str, str]], bytes, str], Response]

log = logging.getLogger(__name__)


def bridge_request_handler(
    handle: Handle,
    *,
    server_version: str,
    max_body_bytes: int,
    too_large: Response,
    refused: Callable[[str], Response],
) -> type[GuardedHandler]:
    """A request handler class that answers every method through `handle`; a body over `max_body_bytes` gets
    `too_large` (the answer of the AWS front door being imitated) without being read, and a request the
    guard refuses gets `refused(reason)` (its 403 in the bridge's shape)."""

    class RequestHandler(GuardedHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > max_body_bytes:
                self._send(*too_large, close=True)
                return
            body = self.rfile.read(length) if length else b""
            if self.guard_refuses():
                return
            self._send(
                *handle(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
            )

        def _send(
            self, status: int, headers: list[tuple[str, str]], payload: bytes, close: bool = False
        ) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def send_refusal(self, message: str) -> None:
            self._send(*refused(message))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _forward

        def log_message(self, format: str, *args: Any) -> None:
            # The request line carries the query string: debug level only.
            log.debug("%s %s", self.address_string(), format % args)

    RequestHandler.server_version = server_version
    return RequestHandler
