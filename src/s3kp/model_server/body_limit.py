"""The 20 MB request-body limit, answered with 413 before the body is read when the length is declared."""

from __future__ import annotations

import json

from s3kp_models.request_errors import PayloadTooLarge
from s3kp_models.request_errors import too_large_message as _too_large_message
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send


class BodySizeLimit:
    """Pure ASGI middleware: refuse a declared Content-Length over the limit on every route."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.max_bytes:
                payload = json.dumps({"message": _too_large_message(self.max_bytes)}).encode()
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(payload)).encode()),
                                        (b"connection", b"close")]})  # fmt: skip
                await send({"type": "http.response.body", "body": payload})
                return
        await self.app(scope, receive, send)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, counting as it streams: a chunked upload has no Content-Length to check up front."""
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise PayloadTooLarge(_too_large_message(max_bytes))
        chunks.append(chunk)
    return b"".join(chunks)


async def receive_body(receive: Receive, max_bytes: int) -> bytes:
    """`read_body` straight from the ASGI messages (the v0 fast path has no `Request`)."""
    chunks: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        received += len(chunk)
        if received > max_bytes:
            raise PayloadTooLarge(_too_large_message(max_bytes))
        chunks.append(chunk)
        if not message.get("more_body", False):
            # One chunk (the usual case: uvicorn hands over what it buffered) is returned as it is.
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
