"""`HostGuard` (s3kp.local.host_guard) in front of the inference server: a request from a page elsewhere
(foreign `Host` by DNS rebinding, or a foreign `Origin`) is answered 403 before any route runs.

Not Starlette's TrustedHostMiddleware: the allowed names are the offline stack's one rule (loopback names
including 127.0.0.0/8 and `.localhost`, IP literals with --allow-remote), which its host patterns cannot
say, and it does not look at `Origin`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from s3kp.local.host_guard import REFUSED_STATUS, HostGuard


class HostCheck:
    """Pure ASGI middleware (outermost, so nothing else reads a refused request)."""

    def __init__(self, app: ASGIApp, *, guard: HostGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            refusal = self.guard.refusal_of_all(_values(headers, b"host"), _values(headers, b"origin"))
            if refusal is not None:
                payload = json.dumps({"message": refusal}).encode()
                await send({"type": "http.response.start", "status": REFUSED_STATUS,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(payload)).encode())]})  # fmt: skip
                await send({"type": "http.response.body", "body": payload})
                return
        await self.app(scope, receive, send)


def _values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """Every value of header `name` (ASGI names are lower case): a repeated one is judged by all of them."""
    return [value.decode("latin-1") for key, value in headers if key == name]
