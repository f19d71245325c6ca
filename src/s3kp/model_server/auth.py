"""API keys: where a request carries one, and whether the server accepts it.

Like the hosted API, a key travels as `api_key=` (query), `Authorization: Bearer …` (newer clients) or
`"api_key"` in a v1 JSON body. Without a configured key any non-empty key is accepted.
"""

from __future__ import annotations

import hmac

from s3kp_models.request_errors import BadRequest, Unauthorized
from starlette.requests import Request

_BEARER = "bearer "


def supplied_key(request: Request, body_key: str | None = None) -> str | None:
    """The first non-empty key among the query string, the Authorization header and the JSON body."""
    return first_key(request.query_params.get("api_key"), request.headers.get("authorization", ""), body_key)


def first_key(query_key: str | None, authorization: str, body_key: str | None = None) -> str | None:
    """`supplied_key` from the parts themselves (the v0 fast path reads them from the ASGI scope)."""
    header_key = authorization[len(_BEARER) :].strip() if authorization.lower().startswith(_BEARER) else ""
    for key in (query_key, header_key, body_key):
        if key:
            return key
    return None


class KeyCheck:
    def __init__(self, required_key: str | None) -> None:
        self._required = required_key.encode() if required_key else None

    @property
    def enforced(self) -> bool:
        return self._required is not None

    def verify(self, key: str | None) -> None:
        """Missing key -> 400 (as upstream), wrong key -> 401. Never echoes the key."""
        if not key:
            raise BadRequest("Missing API key: pass ?api_key=… or an Authorization: Bearer header")
        if self._required is not None and not hmac.compare_digest(key.encode(), self._required):
            raise Unauthorized("Unauthorized api_key")
