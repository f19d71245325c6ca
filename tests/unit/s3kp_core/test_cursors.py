"""Specification of the pagination cursor: opaque, signed, bound to the listing's filters."""

from __future__ import annotations

import base64
import json

import pytest
from s3kp_core.cursors import MAX_CURSOR_LENGTH, CursorCodec, CursorError

KEY = b"k" * 32
POSITION = "2026-01-02T03:04:05.678Z#0123456789abcdef0123456789abcdef"
FINGERPRINT = "f" * 16


def _payload(cursor: str) -> dict:
    encoded = cursor.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))


def _forge(payload: dict, signature_of: str) -> str:
    """A cursor carrying `payload` with the signature of another cursor."""
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{encoded}.{signature_of.split('.')[1]}"


def test_round_trip_returns_the_position() -> None:
    codec = CursorCodec(KEY)
    assert codec.decode(codec.encode(POSITION, FINGERPRINT), FINGERPRINT) == POSITION


def test_cursor_is_url_safe_and_compact() -> None:
    cursor = CursorCodec(KEY).encode(POSITION, FINGERPRINT)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert len(cursor) < MAX_CURSOR_LENGTH / 2
    assert _payload(cursor) == {"v": 1, "p": POSITION, "f": FINGERPRINT}


def test_a_cursor_from_other_filters_is_refused() -> None:
    codec = CursorCodec(KEY)
    with pytest.raises(CursorError, match="other filters"):
        codec.decode(codec.encode(POSITION, FINGERPRINT), "0" * 16)


def test_an_edited_position_is_refused() -> None:
    """GIVEN a valid cursor WHEN its position is changed (keeping the signature) THEN it is refused."""
    codec = CursorCodec(KEY)
    cursor = codec.encode(POSITION, FINGERPRINT)
    forged = _forge({"v": 1, "p": "9999-12-31T00:00:00.000Z#ffff", "f": FINGERPRINT}, signature_of=cursor)
    with pytest.raises(CursorError, match="signature"):
        codec.decode(forged, FINGERPRINT)


def test_a_cursor_signed_with_another_key_is_refused() -> None:
    cursor = CursorCodec(b"x" * 32).encode(POSITION, FINGERPRINT)
    with pytest.raises(CursorError, match="signature"):
        CursorCodec(KEY).decode(cursor, FINGERPRINT)


def test_a_cursor_of_another_version_is_refused() -> None:
    codec = CursorCodec(KEY)
    payload = json.dumps({"v": 99, "p": POSITION, "f": FINGERPRINT}, separators=(",", ":")).encode()
    encoded = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    signature = base64.urlsafe_b64encode(codec._sign(payload)).rstrip(b"=").decode()
    with pytest.raises(CursorError, match="version"):
        codec.decode(f"{encoded}.{signature}", FINGERPRINT)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "no-dot",
        ".",
        "abc.",
        ".abc",
        "a b.c",
        "%%%.%%%",
        "é.é",
        "abc!.def",
        "x" * (MAX_CURSOR_LENGTH + 1),
    ],
)
def test_malformed_cursors_are_refused_with_a_cursor_error(cursor: str) -> None:
    with pytest.raises(CursorError):
        CursorCodec(KEY).decode(cursor, FINGERPRINT)


def test_a_character_inserted_into_a_valid_cursor_makes_it_invalid() -> None:
    """The base64 decoder would skip foreign characters: the codec must not accept two spellings."""
    codec = CursorCodec(KEY)
    cursor = codec.encode(POSITION, FINGERPRINT)
    with pytest.raises(CursorError):
        codec.decode(cursor[:5] + "!" + cursor[5:], FINGERPRINT)


def test_a_short_key_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        CursorCodec(b"short")


def test_the_signing_key_never_appears_in_a_repr() -> None:
    codec = CursorCodec(b"a-secret-signing-key-0123")
    assert "secret" not in repr(codec)
    assert "secret" not in repr([codec])
