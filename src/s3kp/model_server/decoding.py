"""Untrusted bytes -> an upright RGB image, or a clear 400/413: never a crash.

What arrives: a base64 string under any content type (with or without a `data:` prefix, line breaks or
URL-encoding), raw bytes (multipart part, `image/*` bodies, fetched URLs). What leaves: an RGB `PIL.Image`
with EXIF orientation applied, the first frame of an animation, alpha flattened on white, 16-bit scaled to
8-bit. Sizes are checked from the header before any pixel is decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import numpy as np
from PIL import Image, ImageOps

from s3kp.model_server.errors import InvalidImage, PayloadTooLarge

MAX_BODY_BYTES = 20 * 1024 * 1024  # the hosted API's documented upload limit
MAX_IMAGE_PIXELS = 64_000_000  # 8000 x 8000: above any phone photo, far below a bomb

_DATA_URL_PREFIX = re.compile(rb"^data:[^,]{0,200}?;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(rb"\s+")
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_RAW_IMAGE_CONTENT_TYPES = ("image/", "application/octet-stream")
_ORIENTATION = 0x0112
_SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations that turn the picture by 90 degrees


@dataclass(frozen=True)
class ImageLimits:
    max_body_bytes: int = MAX_BODY_BYTES
    max_pixels: int = MAX_IMAGE_PIXELS
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


@dataclass(frozen=True)
class DecodedImage:
    """Upright RGB pixels, possibly decoded at a reduced scale, and the full upright size they stand for."""

    pixels: Image.Image
    width: int  # the original's upright size: the coordinates responses are in
    height: int

    @property
    def scale(self) -> tuple[float, float]:
        """Multipliers from `pixels` coordinates to original coordinates (1.0 unless reduced)."""
        return self.width / self.pixels.width, self.height / self.pixels.height


def decode_image(data: bytes, limits: ImageLimits, *, reduce_to_side: int | None = None) -> DecodedImage:
    """Decode an image file to upright RGB, refusing empty, unreadable and oversized images.

    `reduce_to_side`: let a large JPEG decode at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, several
    times faster than a full decode) while its shorter-scaled long side stays at least this many pixels.
    The models look at a few hundred pixels, so a 12-megapixel photo loses nothing they can see.
    """
    if not data:
        raise InvalidImage("the image is empty (0 bytes)")
    if len(data) > limits.max_body_bytes:
        raise PayloadTooLarge(f"the image is {len(data)} bytes; the limit is {limits.max_body_bytes}")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        raise PayloadTooLarge(f"the image has too many pixels ({error})") from None
    except Exception as error:  # Pillow raises many types for garbage; all mean "not an image"
        raise InvalidImage(f"not an image Pillow can read ({type(error).__name__})") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage(f"the image has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise PayloadTooLarge(
            f"the image is {width}x{height} = {width * height / 1e6:.0f} megapixels; "
            f"the limit is {limits.max_pixels / 1e6:.0f} megapixels"
        )
    try:
        if reduce_to_side and image.format == "JPEG" and max(width, height) >= 2 * reduce_to_side:
            ratio = reduce_to_side / max(width, height)
            image.draft("RGB", (max(1, round(width * ratio)), max(1, round(height * ratio))))
        sideways = image.getexif().get(_ORIENTATION, 1) in _SWAPS_AXES
        image.load()  # the first frame only
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of an upright image
        upright_width, upright_height = (height, width) if sideways else (width, height)
        return DecodedImage(_to_rgb(image), upright_width, upright_height)
    except Exception as error:
        raise InvalidImage(
            f"the image data is damaged or truncated ({type(error).__name__}: {error})"
        ) from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I") or image.mode == "F":
        image = _high_depth_to_grey(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # Pillow's advice: convert palette transparency through RGBA
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def _high_depth_to_grey(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit int / float) greyscale to 8-bit by its range: Pillow's own convert clips at 255."""
    pixels = np.asarray(image, dtype=np.float64)
    top = float(pixels.max(initial=0.0))
    if top > 255:
        pixels = pixels / 257  # a 16-bit range (values that fit 8 bits are kept as they are)
    elif image.mode == "F" and top <= 1:
        pixels = pixels * 255  # floats in 0..1
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
