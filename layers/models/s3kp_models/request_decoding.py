"""Untrusted request bodies -> image bytes -> an upright RGB image, or a clear 400/413: never a crash.

What arrives: a base64 string under any content type (with or without a `data:` prefix, line breaks or
URL-encoding), raw bytes (multipart part, `image/*` bodies, fetched URLs). Turning the file into pixels is
`s3kp_core.imaging`'s job, the same code the ingest function runs (EXIF orientation, first frame, alpha
on white, 16-bit scaled by its bit depth, limits checked from the header before any pixel is decoded);
this module only maps its refusals to HTTP errors.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from s3kp_core import errors, imaging
from s3kp_core.errors import PermanentError
from s3kp_core.imaging import DecodedImage

from s3kp_models.request_errors import InvalidImage, PayloadTooLarge

MAX_BODY_BYTES = 20 * 1024 * 1024  # the hosted API's documented upload limit
MAX_IMAGE_PIXELS = imaging.DEFAULT_MAX_IMAGE_PIXELS  # the ingest function's default: one place for the limits

_DATA_URL_PREFIX = re.compile(rb"^data:[^,]{0,200}?;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(rb"\s+")
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_RAW_IMAGE_CONTENT_TYPES = ("image/", "application/octet-stream")
MISSING_CONTENT_TYPE = "Content-Type header is required (or pass image=<url>)"


@dataclass(frozen=True)
class ImageLimits:
    max_body_bytes: int = MAX_BODY_BYTES
    max_pixels: int = MAX_IMAGE_PIXELS
    max_decoded_bytes: int = imaging.DEFAULT_MAX_DECODED_BYTES
    reduce_to_side: int = 1024  # for JSON answers, see `decode_image`; image formats decode at full size


def is_raw_image_content_type(content_type: str) -> bool:
    """`image/jpeg` or `application/octet-stream` bodies are the file itself, not base64 (an extension)."""
    return content_type.strip().lower().startswith(_RAW_IMAGE_CONTENT_TYPES)


def decode_base64_body(body: bytes) -> bytes:
    """The image file inside a base64 body, tolerating what real clients and shells add around it."""
    try:
        # What the official clients send: strict, padded standard base64 and nothing else. One C call,
        # ~6x faster than the tolerant path below, which copies the body several times.
        strict = binascii.a2b_base64(body, strict_mode=True)
    except binascii.Error:
        strict = b""
    if strict:
        return strict
    text = body.strip()
    if len(text) >= 2 and text[:1] == text[-1:] == b'"':
        text = text[1:-1]  # sent as a JSON string
    text = _DATA_URL_PREFIX.sub(b"", text, count=1)
    if b"%" in text:  # '%' is not in the base64 alphabet: the client URL-encoded the string
        text = unquote_to_bytes(text)
    text = _WHITESPACE.sub(b"", text).translate(_URLSAFE_TO_STANDARD).rstrip(b"=")
    if not text:
        raise InvalidImage("the request body is empty")
    if len(text) % 4 == 1:
        raise InvalidImage("the body is not valid base64 (truncated?)")
    try:
        return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error as error:
        raise InvalidImage(f"the body is not valid base64 ({error})") from None


def decode_image(data: bytes, limits: ImageLimits, *, reduce_to_side: int | None = None) -> DecodedImage:
    """Decode an image file to upright RGB with the ingest function's own rules (`s3kp_core.imaging`),
    answering what it refuses as 413 (too large) or 400 (anything else).

    `reduce_to_side`: let a large image decode at a reduced scale (a JPEG at 1/2, 1/4 or 1/8 through
    libjpeg's DCT scaling, several times faster than a full decode) while its long side stays at least
    this many pixels. The models look at a few hundred pixels, so a 12-megapixel photo loses nothing.
    """
    if len(data) > limits.max_body_bytes:
        raise PayloadTooLarge(f"the image is {len(data)} bytes; the limit is {limits.max_body_bytes}")
    try:
        return imaging.decode(
            data,
            max_pixels=limits.max_pixels,
            max_decoded_bytes=limits.max_decoded_bytes,
            draft_to=reduce_to_side,
            min_side=1,  # the hosted API answers a tiny image (with no predictions); so do we
        )
    except PermanentError as error:
        if error.code == errors.IMAGE_TOO_LARGE:
            raise PayloadTooLarge(error.message) from None
        raise InvalidImage(error.message) from None


def image_in_body(content_type: str, body: bytes) -> Callable[[], bytes]:
    """A raw image body as it is; anything else is base64, decoded later in the worker."""
    if is_raw_image_content_type(content_type):
        return lambda: body
    return lambda: decode_base64_body(body)
