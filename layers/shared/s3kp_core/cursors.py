"""Opaque, signed pagination cursors.

A cursor is `base64url(compact JSON)` + `.` + `base64url(HMAC-SHA256)`. The JSON holds the format
version, the listing position (the last `list_sk` a page returned, or where a bounded read stopped)
and the fingerprint of the filters the listing was made with. The signature means a client cannot
forge a position, and the fingerprint means a cursor only continues the listing it came from: used
with other filters it is refused rather than silently reading another listing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re

import msgspec

CURSOR_VERSION = 1
# Far above any real cursor (~150 chars): refuse big inputs before decoding them.
MAX_CURSOR_LENGTH = 512
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class CursorError(ValueError):
    """The cursor is malformed, tampered with, from another listing or from another version."""


class CursorCodec(msgspec.Struct, frozen=True):
    """Encodes and verifies cursors with one HMAC key (from Secrets Manager or the environment)."""

    key: bytes

    def __post_init__(self) -> None:
        if len(self.key) < 16:
            raise ValueError("the cursor signing key must be at least 16 bytes")

    def __repr__(self) -> str:
        # The key is a secret: a repr reaches logs and tracebacks (the API's reader holds this codec).
        return "CursorCodec(key=***)"

    def encode(self, position: str, fingerprint: str) -> str:
        payload = json.dumps(
            {"v": CURSOR_VERSION, "p": position, "f": fingerprint}, separators=(",", ":")
        ).encode()
        return f"{_b64encode(payload)}.{_b64encode(self._sign(payload))}"

    def decode(self, cursor: str, fingerprint: str) -> str:
        """The position in `cursor`, once its signature is checked and its filters match `fingerprint`."""
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise CursorError("cursor is too long")
        encoded_payload, dot, encoded_signature = cursor.partition(".")
        if not dot:
            raise CursorError("cursor is malformed")
        try:
            payload = _b64decode(encoded_payload)
            signature = _b64decode(encoded_signature)
        except (binascii.Error, ValueError) as error:
            raise CursorError("cursor is malformed") from error
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise CursorError("cursor signature is invalid (tampered with or from another deployment)")
        try:
            content = json.loads(payload)
        except ValueError as error:  # only reachable with a valid signature over garbage: a bug, still a 400
            raise CursorError("cursor is malformed") from error
        if not isinstance(content, dict) or content.get("v") != CURSOR_VERSION:
            raise CursorError("cursor is from an unsupported version: start the listing again")
        position = content.get("p")
        if not isinstance(position, str) or not position:
            raise CursorError("cursor is malformed")
        if content.get("f") != fingerprint:
            raise CursorError("cursor belongs to a listing with other filters: repeat the original filters")
        return position

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self.key, payload, hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    # The decoder would silently skip foreign characters: refuse them so one cursor has one spelling.
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
