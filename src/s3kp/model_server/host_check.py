"""`HostGuard` (s3kp.local.host_guard) in front of the inference server: a request from a page elsewhere
(foreign `Host` by DNS rebinding, or a foreign `Origin`) is answered 403 before any route runs.

Not Starlette's TrustedHostMiddleware: the allowed names are the offline stack's one rule (loopback names
including 127.0.0.0/8 and `.localhost`, IP literals with --allow-remote), which its host patterns cannot
say, and it does not look at `Origin`.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from s3kp.local.host_guard import REFUSED_STATUS, HostGuard


class HostCheck:
    """Pure ASGI middleware (outermost, so nothing else reads a refused request)."""

    def __init__(self, app: ASGIApp, *, guard: HostGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            refusal = self.guard.refusal(_text(headers.get(b"host")), _text(headers.get(b"origin")))
            if refusal is not None:
                payload = json.dumps({"message": refusal}).encode()
                await send({"type": "http.response.start", "status": REFUSED_STATUS,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(payload)).encode())]})  # fmt: skip
                await send({"type": "http.response.body", "body": payload})
                return
        await self.app(scope, receive, send)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")
