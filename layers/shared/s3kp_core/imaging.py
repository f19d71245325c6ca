"""Turn an uploaded object's bytes into an upright RGB image and the JPEG sent for inference.

Choices (see docs/ingest-domain.md):
- Formats: JPEG (including MPO, what many phones write), PNG, GIF, WebP, BMP, TIFF. Others are refused as
  undecodable: Pillow's EPS/PDF-like plugins shell out or are rarely what a user meant to upload.
- Size limits are checked from the header, before any pixel is decoded: more than `max_pixels` is
  `image_too_large`; a side under `MIN_IMAGE_SIDE` (16 px) is `image_too_small` (the model server would
  accept a 1x1 image, but nothing can be detected in it, and the record should say so).
- Orientation: EXIF orientation is applied, so predictions and reported sizes refer to the upright
  picture a viewer shows; the encoded JPEG carries no EXIF, so nobody rotates it twice.
- Modes: everything becomes RGB. Transparency is composited on white (what a browser shows on a default
  page); 16-bit and 32-bit integer images are scaled by their bit depth (inferred as the smallest of 8..16
  bits that holds the brightest value) rather than clipped; float images are stretched to 0..255.
- JPEGs decode in draft mode (libjpeg's DCT scaling by 1/2, 1/4 or 1/8) when a smaller image will do.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Final, cast

from PIL import Image, ImageOps, UnidentifiedImageError

from s3kp_core import errors
from s3kp_core.errors import PermanentError

DEFAULT_MAX_IMAGE_PIXELS: Final = 64_000_000
"""A 61-megapixel camera still passes; a decompression bomb does not."""
MIN_IMAGE_SIDE: Final = 16
ALLOWED_FORMATS: Final = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")  # JPEG covers MPO
_ORIENTATION_TAG: Final = 0x0112
_TRANSPOSING_ORIENTATIONS: Final = frozenset({5, 6, 7, 8})  # width and height swap when displayed

# Pillow's process-wide guard, set on purpose rather than inherited: it warns above this many pixels and
# refuses twice as many in `Image.open`. `decode` checks its own, configurable limit from the header right
# after opening (and raises the guard to a larger configured limit); the global is only a backstop.
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class PreparedImage:
    """The JPEG sent to the endpoint, and the sizes needed to map its predictions back."""

    jpeg: bytes
    original_width: int  # after EXIF orientation
    original_height: int
    sent_width: int
    sent_height: int
    timings_ms: dict[str, float] = field(default_factory=dict)  # "decode", "resize", "encode"

    @property
    def scale_x(self) -> float:
        """Original pixels per sent pixel, horizontally."""
        return self.original_width / self.sent_width

    @property
    def scale_y(self) -> float:
        return self.original_height / self.sent_height


@dataclass(frozen=True)
class DecodedImage:
    """An upright RGB image, possibly decoded at a reduced scale, and the size of the full picture."""

    image: Image.Image
    original_width: int  # after EXIF orientation, at full scale
    original_height: int


def open_image(data: bytes, *, max_pixels: int, draft_to: int | None = None) -> Image.Image:
    """The first frame of `data` as an upright RGB image; see `decode` for the rules and errors."""
    return decode(data, max_pixels=max_pixels, draft_to=draft_to).image


def decode(data: bytes, *, max_pixels: int, draft_to: int | None = None) -> DecodedImage:
    """Validate and decode `data`: the first frame, EXIF-oriented, converted to RGB.

    `draft_to`: a JPEG may decode at 1/2, 1/4 or 1/8 scale as long as its longest side stays at least
    this; the reported original size is the full-scale one either way.
    Raises PermanentError: `object_empty`, `image_undecodable`, `image_too_large`, `image_too_small`.
    """
    if not data:
        raise PermanentError(errors.OBJECT_EMPTY, "the object is empty (0 bytes)")
    image = _open_header(data, max_pixels)
    orientation = _orientation(image)
    width, height = image.size
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    if draft_to is not None and image.format in ("JPEG", "MPO") and max(width, height) > draft_to:
        # The longest side is the same before and after a 90° turn, so the drafted target is the stored
        # size scaled by one factor, whatever the orientation.
        factor = draft_to / max(width, height)
        image.draft("RGB", (math.ceil(image.width * factor), math.ceil(image.height * factor)))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise PermanentError(errors.IMAGE_UNDECODABLE, f"the {image.format} image is corrupt: {exc}") from exc
    if draft_to is not None and image.width * image.height > REDUCE_ABOVE_PIXELS:
        image = _reduce_to(image, draft_to)
    upright = _apply_orientation(image, orientation)
    try:
        rgb = _to_rgb(upright)
    except ValueError as exc:  # a mode Pillow cannot convert
        raise PermanentError(errors.IMAGE_UNDECODABLE, f"unsupported {image.mode} image: {exc}") from exc
    return DecodedImage(rgb, original_width=width, original_height=height)


def prepare_for_inference(
    data: bytes,
    *,
    max_side: int = 1024,
    max_pixels: int,
    jpeg_quality: int = 90,
    decode_side: int | None = None,
) -> tuple[PreparedImage, Image.Image]:
    """Decode `data` and encode the JPEG for the endpoint, at most `max_side` px on its longest side.

    Returns the prepared JPEG with its sizes and timings, and the decoded upright RGB image for reuse
    (annotation). That image may be a JPEG draft smaller than the original: it keeps a longest side of
    at least `decode_side` (default `max_side`; pass the annotated copy's max side to draw on it).
    """
    started = time.perf_counter()
    decoded = decode(data, max_pixels=max_pixels, draft_to=max(max_side, decode_side or 0))
    decoded_at = time.perf_counter()
    resized = resize_to_fit(decoded.image, max_side)
    resized_at = time.perf_counter()
    jpeg = encode_jpeg(resized, quality=jpeg_quality)
    encoded_at = time.perf_counter()
    prepared = PreparedImage(
        jpeg=jpeg,
        original_width=decoded.original_width,
        original_height=decoded.original_height,
        sent_width=resized.width,
        sent_height=resized.height,
        timings_ms={
            "decode": elapsed_ms(started, decoded_at),
            "resize": elapsed_ms(decoded_at, resized_at),
            "encode": elapsed_ms(resized_at, encoded_at),
        },
    )
    return prepared, decoded.image


def elapsed_ms(start: float, end: float) -> float:
    """Milliseconds between two `time.perf_counter()` readings, to the microsecond (as in `timings_ms`)."""
    return round((end - start) * 1000, 3)


def fit_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """`size` scaled to a longest side of `max_side`, keeping the aspect ratio; never larger."""
    width, height = size
    if max(width, height) <= max_side:
        return width, height
    factor = max_side / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))


def resize_to_fit(image: Image.Image, max_side: int | None) -> Image.Image:
    """`image` downscaled so its longest side is at most `max_side` (the same image if it fits)."""
    if max_side is None:
        return image
    target = fit_size(image.size, max_side)
    if target == image.size:
        return image
    # reducing_gap: a cheap box reduce() to about 3x the target first, then LANCZOS: fast and sharp.
    return image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode_jpeg(image: Image.Image, *, max_side: int | None = None, quality: int = 90) -> bytes:
    """`image` as a baseline JPEG without EXIF, downscaled to `max_side` first if given."""
    image = resize_to_fit(image, max_side)
    if image.mode != "RGB":
        image = _to_rgb(image)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _open_header(data: bytes, max_pixels: int) -> Image.Image:
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels  # the configured limit is the one that applies
    try:
        with warnings.catch_warnings():
            # Our own limit is checked just below; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise PermanentError(errors.IMAGE_TOO_LARGE, f"refused before decoding: {exc}") from exc
    except UnidentifiedImageError as exc:
        supported = ", ".join(ALLOWED_FORMATS)
        raise PermanentError(
            errors.IMAGE_UNDECODABLE, f"the object is not an image in a supported format ({supported})"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PermanentError(errors.IMAGE_UNDECODABLE, f"the image header is corrupt: {exc}") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise PermanentError(
            errors.IMAGE_TOO_LARGE,
            f"{width}x{height} px is {width * height:,} pixels, over the limit of {max_pixels:,}",
        )
    if min(width, height) < MIN_IMAGE_SIDE:
        raise PermanentError(
            errors.IMAGE_TOO_SMALL, f"{width}x{height} px: both sides must be at least {MIN_IMAGE_SIDE} px"
        )
    return image


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a corrupt EXIF block must not cost the picture: treat it as upright
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    if orientation == 1:
        return image  # exif_transpose would copy the pixels for nothing
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # same rule as _orientation: a corrupt EXIF block leaves the picture as stored
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa"):
        # Onto white, pasting through the alpha band: the same pixels as alpha_composite, with a third of
        # its peak memory (which is what limits a large transparent PNG in a 1 GB function).
        rgba = image if mode == "RGBA" else image.convert("RGBA")
        flattened = Image.new("RGB", rgba.size, (255, 255, 255))
        flattened.paste(rgba, (0, 0), rgba)
        return flattened
    if mode.startswith("I"):
        return _scale_to_8_bits(image.convert("I") if mode != "I" else image).convert("RGB")
    if mode == "F":
        return _stretch_to_8_bits(image).convert("RGB")
    return image.convert("RGB")  # 1, L, P, CMYK, YCbCr, LAB, HSV


# Above this many pixels a decoded image is reduced before any per-pixel work (memory, not speed: a
# 24 MP RGBA image is ~100 MB and every full-size copy costs as much again). Smaller ones keep full size.
REDUCE_ABOVE_PIXELS = 24_000_000
# Modes Image.reduce() handles; others (1, P, I;16…) are rare and go through at full size.
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "I", "F"})


def _reduce_to(image: Image.Image, target_side: int) -> Image.Image:
    """The draft of formats that have none: an integer box reduction keeping the longest side at least
    `target_side`, done before orientation and colour conversion so a huge PNG or TIFF costs the memory
    of its decoded pixels only once. A JPEG draft usually lands within 2x of the target already."""
    factor = max(image.size) // target_side
    if factor < 2 or image.mode not in _REDUCIBLE_MODES:
        return image
    return image.reduce(factor)


def _scale_to_8_bits(image: Image.Image) -> Image.Image:
    low, high = cast(tuple[int, int], image.getextrema())  # one band: (min, max)
    if low < 0 or high > 0xFFFF:
        return _stretch_to_8_bits(image)
    bits = min(16, max(8, int(high).bit_length()))
    divisor = ((1 << bits) - 1) / 255
    return image.point(lambda value: value / divisor).convert("L")


def _stretch_to_8_bits(image: Image.Image) -> Image.Image:
    low, high = cast(tuple[float, float], image.getextrema())
    if low >= 0 and high <= 1 and image.mode == "F":  # the usual float convention
        low, high = 0.0, 1.0
    span = (high - low) or 1
    return image.point(lambda value: (value - low) * 255 / span).convert("L")
