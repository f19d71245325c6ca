"""uvicorn's access log line, written once the response has been sent instead of before its first byte.

uvicorn logs a request's line when the app starts its response, before the status line is written to the
socket: the formatting, our key redaction and the write to the log stream (~0.1 ms, measured at 640 px
with faces/1, docs/model-server.md#overhead) sat in every round trip. This pure ASGI middleware writes
the same line after the response's last body message was handed to the transport (the client already has
its answer while the line is written), through the handlers uvicorn configured for its access log (its
formatter, stream and our key redaction): `take_over_uvicorn_access_log` moves them to this module's
logger, which leaves uvicorn's own access log with no handler, so uvicorn logs nothing itself
(uvicorn 0.54 logs a request only when `uvicorn.access` has a handler) and each request is logged once.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

LOGGER = logging.getLogger("s3kp.model_server.access")
UVICORN_ACCESS_LOGGER = "uvicorn.access"


def take_over_uvicorn_access_log() -> None:
    """Move the handlers (and level) uvicorn's `Config` gave `uvicorn.access` to `LOGGER`."""
    uvicorn_access = logging.getLogger(UVICORN_ACCESS_LOGGER)
    LOGGER.handlers = list(uvicorn_access.handlers)
    LOGGER.setLevel(uvicorn_access.level)
    LOGGER.propagate = False
    uvicorn_access.handlers = []
    uvicorn_access.propagate = False


class AccessLog:
    """`client - "METHOD /path?query HTTP/1.1" status`, uvicorn's arguments in uvicorn's order (its
    AccessFormatter unpacks them), logged when the response is complete."""

    def __init__(self, app: ASGIApp, *, logger: logging.Logger = LOGGER) -> None:
        self.app = app
        self.logger = logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        status = 0
        http_scope = cast(Any, scope)  # uvicorn's helpers are typed with its own (private) scope types

        async def send_then_log(message: Message) -> None:
            nonlocal status
            await send(message)
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                self.logger.info(
                    '%s - "%s %s HTTP/%s" %d',
                    get_client_addr(http_scope),
                    scope["method"],
                    get_path_with_query_string(http_scope),
                    scope["http_version"],
                    status,
                )

        await self.app(scope, receive, send_then_log)
