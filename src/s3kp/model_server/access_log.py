"""uvicorn's access log line, written once the response has been sent, by a thread of its own.

uvicorn logs a request's line when the app starts its response, before the status line is written to the
socket: the formatting, our key redaction and the write to the log stream sat in every round trip. This
pure ASGI middleware logs the same line after the response's last body message was handed to the
transport, and the line is then only queued: a listener thread formats and writes it through the
handlers uvicorn configured for its access log (its formatter, stream and our key redaction). Written on
the loop even after the answer, the line still cost ~0.12 ms of round trip (the client is often woken on
the core the loop is busy on); queued, it costs what no access log costs (docs/model-server.md#overhead).
`take_over_uvicorn_access_log` moves uvicorn's handlers behind the queue, which leaves uvicorn's own
access log with no handler, so uvicorn logs nothing itself (uvicorn 0.54 logs a request only when
`uvicorn.access` has a handler) and each request is logged once.
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
from http import HTTPStatus
from typing import Any, cast

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

LOGGER = logging.getLogger("s3kp.model_server.access")
UVICORN_ACCESS_LOGGER = "uvicorn.access"


class _QueueRecordAsIs(logging.handlers.QueueHandler):
    """Queues the record itself: uvicorn's AccessFormatter needs its `args` (the stock `prepare` merges
    them into the message). An access record's arguments are strings and an int, safe in another thread."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def take_over_uvicorn_access_log() -> logging.handlers.QueueListener:
    """Put the handlers (and level) uvicorn's `Config` gave `uvicorn.access` behind `LOGGER`'s queue and
    start the thread that writes to them; `stop()` the listener at shutdown (it writes what is queued)."""
    uvicorn_access = logging.getLogger(UVICORN_ACCESS_LOGGER)
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(lines, *uvicorn_access.handlers, respect_handler_level=True)
    LOGGER.handlers = [_QueueRecordAsIs(lines)]
    LOGGER.setLevel(uvicorn_access.level)
    LOGGER.propagate = False
    uvicorn_access.handlers = []
    uvicorn_access.propagate = False
    listener.start()
    return listener


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

        async def send_then_log(message: Message) -> None:
            nonlocal status
            await send(message)
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                self._log(scope, status)

        try:
            await self.app(scope, receive, send_then_log)
        except Exception:
            # uvicorn answers 500 itself when the app fails before starting its response: log that answer
            # too, so every request has its line. (A cancelled request, whose client left, gets none.)
            if status == 0:
                self._log(scope, HTTPStatus.INTERNAL_SERVER_ERROR)
            raise

    def _log(self, scope: Scope, status: int) -> None:
        http_scope = cast(Any, scope)  # uvicorn's helpers are typed with its own (private) scope types
        self.logger.info(
            '%s - "%s %s HTTP/%s" %d',
            get_client_addr(http_scope),
            scope["method"],
            get_path_with_query_string(http_scope),
            scope["http_version"],
            status,
        )
