"""The access log line: uvicorn's line and arguments, written once the response has been sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send
from uvicorn.logging import AccessFormatter

from s3kp.model_server import access_log
from s3kp.model_server.access_log import AccessLog

SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/faces/1",
    "query_string": b"api_key=k&confidence=40",
    "http_version": "1.1",
    "client": ("127.0.0.1", 50123),
}


class Recorder(logging.Handler):
    def __init__(self, events: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.events = events
        self.setFormatter(
            AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
        )

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(("log", self.format(record)))


def serve(
    app: Any,
    scope: dict[str, Any],
    logger: logging.Logger | None = None,
    events: list[tuple[str, Any]] | None = None,
) -> list[tuple[str, Any]]:
    events = [] if events is None else events
    if logger is None:
        logger = logging.getLogger(f"test.access.{id(events)}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(Recorder(events))

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        events.append(("send", message.get("status", message.get("more_body", False))))

    asyncio.run(AccessLog(app, logger=logger)(scope, receive, send))
    return events


def respond(status: int, *chunks: bytes) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        for index, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1})

    return app


def test_the_line_is_uvicorns_and_comes_after_the_last_byte() -> None:
    assert serve(respond(200, b"{}"), SCOPE) == [
        ("send", 200),
        ("send", False),
        ("log", '127.0.0.1:50123 - "POST /faces/1?api_key=k&confidence=40 HTTP/1.1" 200 OK'),
    ]


def test_a_streamed_response_is_logged_once_at_its_end() -> None:
    events = serve(respond(413, b"a", b"b", b"c"), SCOPE | {"query_string": b""})
    assert events == [
        ("send", 413),
        ("send", True),
        ("send", True),
        ("send", False),
        ("log", '127.0.0.1:50123 - "POST /faces/1 HTTP/1.1" 413 Request Entity Too Large'),
    ]


def test_an_app_that_fails_before_answering_is_logged_with_the_500_uvicorn_sends() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    events: list[tuple[str, Any]] = []
    with pytest.raises(RuntimeError, match="boom"):
        serve(app, SCOPE | {"query_string": b""}, events=events)
    assert events == [("log", '127.0.0.1:50123 - "POST /faces/1 HTTP/1.1" 500 Internal Server Error')]


def test_a_request_cancelled_before_its_answer_gets_no_line() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise asyncio.CancelledError

    events: list[tuple[str, Any]] = []
    with pytest.raises(asyncio.CancelledError):
        serve(app, SCOPE, events=events)
    assert events == []


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
def test_other_scopes_pass_through_unlogged(scope_type: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "done"})

    assert serve(app, {"type": scope_type}) == [("send", False)]


@pytest.fixture
def loggers_restored() -> Iterator[None]:
    """`uvicorn.access` and our access logger as they were before the test."""
    loggers = (logging.getLogger("uvicorn.access"), access_log.LOGGER)
    saved = [(list(logger.handlers), logger.propagate, logger.level) for logger in loggers]
    yield
    for logger, (handlers, propagate, level) in zip(loggers, saved, strict=True):
        logger.handlers, logger.propagate = handlers, propagate
        logger.setLevel(level)


@pytest.mark.usefixtures("loggers_restored")
def test_taken_over_lines_are_queued_for_uvicorns_handlers_and_uvicorn_logs_none() -> None:
    """uvicorn logs a request itself only while `uvicorn.access` has a handler; ours reach its handlers
    (formatter, redaction filters) through the queue, arguments intact, all written by `stop()`."""
    events: list[tuple[str, Any]] = []
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers = [Recorder(events)]
    uvicorn_access.setLevel(logging.INFO)  # as uvicorn's Config sets it
    writer = access_log.take_over_uvicorn_access_log()
    try:
        assert not uvicorn_access.hasHandlers()
        assert access_log.LOGGER.isEnabledFor(logging.INFO)
        serve(respond(401, b"{}"), SCOPE, logger=access_log.LOGGER, events=events)
    finally:
        writer.stop()
    assert events == [
        ("send", 401),
        ("send", False),
        ("log", '127.0.0.1:50123 - "POST /faces/1?api_key=k&confidence=40 HTTP/1.1" 401 Unauthorized'),
    ]
