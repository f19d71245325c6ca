"""Turn an uploaded object's bytes into an upright RGB image and the JPEG sent for inference.

The one place where bytes become pixels, for the ingest function and the local model server alike (the
server imports this module; its own decoding module only unwraps request bodies). Choices (see
docs/ingest-domain.md):
- Formats: JPEG (including MPO, what many phones write), PNG, GIF, WebP, BMP, TIFF. Others are refused as
  undecodable: Pillow's EPS/PDF-like plugins shell out or are rarely what a user meant to upload.
- Limits are checked from the header, before any pixel is decoded: more than `max_pixels`, or more
  decoded bytes than `max_decoded_bytes` (what the mode really needs: 2 bytes a pixel for 16-bit grey,
  4 for RGB(A) and CMYK, 1 for palette; plus libjpeg's whole-image coefficient buffers for a progressive
  JPEG), is `image_too_large`; a side under `min_side` (16 px) is `image_too_small` (the model server
  would accept a 1x1 image, but nothing can be detected in it, and the record should say so).
- Orientation: EXIF orientation is applied, so predictions and reported sizes refer to the upright
  picture a viewer shows; the encoded JPEG carries no EXIF, so nobody rotates it twice.
- Modes: everything becomes 8-bit RGB by the rules of `image_modes` (alpha on white, 16-bit scaled by
  its bit depth), reduced before any conversion, so no full-size converted copy ever exists.
- Size: a JPEG decodes in draft mode (libjpeg's DCT scaling by 1/2, 1/4 or 1/8) and other formats are
  box-reduced by an integer factor, as far as the caller's `draft_to` allows. The JPEG sent for
  inference is the decoded image reduced by an integer factor (a box filter: cheap and alias-free) when
  that keeps at least 3/4 of `max_side`, and resized with a bilinear filter only otherwise: the models
  look at 128-256 px inputs, and a sent side of 768-1024 px changes nothing they see.
"""

from __future__ import annotations

import io
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Final

from PIL import Image, UnidentifiedImageError

from s3kp_core import errors
from s3kp_core.errors import PermanentError
from s3kp_core.image_modes import bytes_per_pixel, to_rgb
from s3kp_core.memory import Reservation

DEFAULT_MAX_IMAGE_PIXELS: Final = 64_000_000
"""A 61-megapixel camera still passes; a decompression bomb does not."""
DEFAULT_MAX_DECODED_BYTES: Final = 384 * 1024 * 1024
"""Decoded pixels held at once. 100 MP at 4 bytes a pixel fits (400 MB); with the object itself (at
most 50 MiB), the runtime (~100 MiB) and the reduced copies, preparing peaks under 768 MiB: 25 % headroom
in a 1024 MB function. See docs/benchmarks.md for the measured peaks."""
MIN_IMAGE_SIDE: Final = 16
REDUCE_ABOVE_PIXELS: Final = 16_000_000
"""Above this, a non-JPEG image is box-reduced toward `draft_to` before conversion (its draft)."""
MIN_SENT_FRACTION: Final = 0.75
"""The sent long side may be a box reduction down to this fraction of `max_side` (see the module doc)."""
ALLOWED_FORMATS: Final = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")  # JPEG covers MPO
_ORIENTATION_TAG: Final = 0x0112
_TRANSPOSING_ORIENTATIONS: Final = frozenset({5, 6, 7, 8})  # width and height swap when displayed
_UPRIGHT: Final = {  # EXIF orientation -> the transpose that shows it upright (as ImageOps.exif_transpose)
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_JPEG_FORMATS: Final = ("JPEG", "MPO")
_COEFFICIENT_BYTES: Final = 2  # libjpeg's JCOEF: a progressive decode keeps every coefficient until the end

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

    @property
    def scale(self) -> tuple[float, float]:
        """Multipliers from `image` coordinates to original coordinates (1.0 unless reduced)."""
        return self.original_width / self.image.width, self.original_height / self.image.height


def open_image(data: bytes, *, max_pixels: int, draft_to: int | None = None) -> Image.Image:
    """The first frame of `data` as an upright RGB image; see `decode` for the rules and errors."""
    return decode(data, max_pixels=max_pixels, draft_to=draft_to).image


def decode(
    data: bytes,
    *,
    max_pixels: int,
    draft_to: int | None = None,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
    min_side: int = MIN_IMAGE_SIDE,
    reservation: Reservation | None = None,
) -> DecodedImage:
    """Validate and decode `data`: the first frame, EXIF-oriented, converted to RGB.

    `draft_to`: the image may be decoded or reduced to a smaller scale (JPEG: 1/2, 1/4 or 1/8; other
    formats above `REDUCE_ABOVE_PIXELS`: any integer factor) as long as its longest side stays at least
    this; the reported original size is the full-scale one either way.
    `reservation` (empty): before any pixel is decoded it acquires what decoding will hold at its peak
    (`decode_peak_bytes`), waiting for its turn in its memory budget; afterwards it shrinks to the
    returned image's bytes, which the caller releases when it drops the image.
    Raises PermanentError: `object_empty`, `image_undecodable`, `image_too_large`, `image_too_small`.
    """
    if not data:
        raise PermanentError(errors.OBJECT_EMPTY, "the object is empty (0 bytes)")
    source = io.BytesIO(data)
    image = _open_header(source, max_pixels, min_side)
    # A PNG's EXIF block may follow its pixels, and Pillow decodes them all to look for it: its
    # orientation is read once the pixels are loaded, after the limits and the reservation.
    orientation = _orientation(image) if _exif_precedes_pixels(image) else None
    width, height = image.size
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    if draft_to is not None and image.format in _JPEG_FORMATS and max(width, height) > draft_to:
        # The longest side is the same before and after a 90° turn, so the drafted target is the stored
        # size scaled by one factor, whatever the orientation.
        factor = draft_to / max(width, height)
        image.draft("RGB", (math.ceil(image.width * factor), math.ceil(image.height * factor)))
    _check_decoded_bytes(image, width * height, max_decoded_bytes)
    reduce_by = _reduction(image, draft_to)
    if reservation is not None:
        turned = orientation is None or orientation in _UPRIGHT  # unknown yet: counted as turned
        reservation.acquire(decode_peak_bytes(image, width * height, reduce_by, upright_copy=turned))
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
        raise PermanentError(errors.IMAGE_UNDECODABLE, f"the {image.format} image is corrupt: {exc}") from exc
    # PNG, GIF and TIFF images keep their file open for other frames: a kept image would keep the
    # object's bytes alive too. Only the first frame is used, and it is loaded.
    source.close()
    try:
        rgb = to_rgb(image, reduce_by)
    except ValueError as exc:  # a mode Pillow cannot convert
        raise PermanentError(errors.IMAGE_UNDECODABLE, f"unsupported {image.mode} image: {exc}") from exc
    if orientation is None:
        orientation = _orientation(image)
        if orientation in _TRANSPOSING_ORIENTATIONS:
            width, height = height, width
    if rgb is not image:
        image.close()  # frees the decoded pixels now, so what the reservation keeps is all that is left
    if orientation in _UPRIGHT:
        rgb = rgb.transpose(_UPRIGHT[orientation])  # on the reduced image: the cheapest place
    if reservation is not None:
        reservation.shrink_to(rgb.width * rgb.height * bytes_per_pixel(rgb.mode))
    return DecodedImage(rgb, original_width=width, original_height=height)


def prepare_for_inference(
    data: bytes,
    *,
    max_side: int = 1024,
    max_pixels: int,
    jpeg_quality: int = 90,
    decode_side: int | None = None,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
    reservation: Reservation | None = None,
) -> tuple[PreparedImage, Image.Image]:
    """Decode `data` and encode the JPEG for the endpoint, at most `max_side` px on its longest side.

    Returns the prepared JPEG with its sizes and timings, and the decoded upright RGB image for reuse
    (annotation). That image may be decoded at a reduced scale: it keeps a longest side of at least
    `decode_side` (default: what the sent JPEG needs, 3/4 of `max_side`). `reservation`: see `decode`.
    """
    started = time.perf_counter()
    needed = max(decode_side or 0, math.ceil(max_side * MIN_SENT_FRACTION))
    decoded = decode(
        data,
        max_pixels=max_pixels,
        draft_to=needed,
        max_decoded_bytes=max_decoded_bytes,
        reservation=reservation,
    )
    decoded_at = time.perf_counter()
    sent = shrink_for_sending(decoded.image, max_side)
    resized_at = time.perf_counter()
    jpeg = encode_jpeg(sent, quality=jpeg_quality)
    encoded_at = time.perf_counter()
    prepared = PreparedImage(
        jpeg=jpeg,
        original_width=decoded.original_width,
        original_height=decoded.original_height,
        sent_width=sent.width,
        sent_height=sent.height,
        timings_ms={
            "decode": elapsed_ms(started, decoded_at),
            "resize": elapsed_ms(decoded_at, resized_at),
            "encode": elapsed_ms(resized_at, encoded_at),
        },
    )
    return prepared, decoded.image


def shrink_for_sending(image: Image.Image, max_side: int) -> Image.Image:
    """`image` with a longest side of at most `max_side`: an integer box reduction when it keeps at least
    `MIN_SENT_FRACTION` of `max_side`, else a bilinear resize to exactly `max_side`."""
    longest = max(image.size)
    if longest <= max_side:
        return image
    factor = math.ceil(longest / max_side)
    if math.ceil(longest / factor) >= max_side * MIN_SENT_FRACTION:
        return image.reduce(factor)
    return image.resize(fit_size(image.size, max_side), Image.Resampling.BILINEAR, reducing_gap=2.0)


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
    image = to_rgb(resize_to_fit(image, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _open_header(source: io.BytesIO, max_pixels: int, min_side: int) -> Image.Image:
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels  # the configured limit is the one that applies
    try:
        with warnings.catch_warnings():
            # Our own limit is checked just below; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source, formats=ALLOWED_FORMATS)
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
    if min(width, height) < min_side:
        raise PermanentError(
            errors.IMAGE_TOO_SMALL, f"{width}x{height} px: both sides must be at least {min_side} px"
        )
    return image


def _reduction(image: Image.Image, draft_to: int | None) -> int:
    """The integer box reduction applied while converting to RGB: a JPEG's draft already did the work;
    another format is reduced when large enough for a full-size RGB copy to matter (memory), as far as
    `draft_to` allows. Smaller ones keep every pixel for the annotated copy."""
    if not draft_to or image.format in _JPEG_FORMATS or image.width * image.height <= REDUCE_ABOVE_PIXELS:
        return 1
    return max(1, max(image.size) // draft_to)


def decoded_bytes(image: Image.Image, full_pixels: int) -> int:
    """What decoding `image` (opened, possibly drafted, not loaded) allocates at once: its pixels in its
    mode, plus, for a progressive JPEG, libjpeg's coefficient buffers for the whole full-scale image
    (a draft does not shrink those: 300 MB for a 100 MP 4:2:0 photo)."""
    pixels = image.width * image.height * bytes_per_pixel(image.mode)
    if image.format in _JPEG_FORMATS and image.info.get("progressive"):
        pixels += math.ceil(full_pixels * _coefficients_per_pixel(image)) * _COEFFICIENT_BYTES
    return pixels


def decode_peak_bytes(image: Image.Image, full_pixels: int, reduce_by: int, *, upright_copy: bool) -> int:
    """What `decode` holds at its peak for `image` (opened, not loaded): the decoded pixels
    (`decoded_bytes`), the RGB output when a conversion or reduction makes one, and the upright copy
    when EXIF turns it. (Plus one conversion strip, `image_modes.STRIP_PIXELS`: a few MB, not counted.)"""
    output_pixels = math.ceil(image.width / reduce_by) * math.ceil(image.height / reduce_by)
    output = output_pixels * bytes_per_pixel("RGB")
    converted = 0 if image.mode == "RGB" and reduce_by == 1 else output
    return decoded_bytes(image, full_pixels) + converted + (output if upright_copy else 0)


def _coefficients_per_pixel(image: Image.Image) -> float:
    """DCT coefficients a JPEG stores per pixel: one per component, fewer for subsampled chroma (1.5 in
    the usual 4:2:0 YCbCr). From the frame header's sampling factors, all components at full resolution
    when they are missing."""
    layers: list[tuple[int, int, int, int]] = getattr(image, "layer", None) or []
    if not layers:
        return float(len(image.getbands()))
    most = max(h for _, h, _, _ in layers) * max(v for _, _, v, _ in layers)
    return sum(h * v for _, h, v, _ in layers) / most


def _check_decoded_bytes(image: Image.Image, full_pixels: int, limit: int) -> None:
    needed = decoded_bytes(image, full_pixels)
    if needed > limit:
        kind = f"{image.mode} {'progressive ' if image.info.get('progressive') else ''}{image.format}"
        raise PermanentError(
            errors.IMAGE_TOO_LARGE,
            f"a {image.width}x{image.height} {kind} image needs {needed / 2**20:,.0f} MiB to decode, "
            f"over the limit of {limit / 2**20:,.0f} MiB",
        )


def _exif_precedes_pixels(image: Image.Image) -> bool:
    """Whether reading `image`'s EXIF leaves its pixels undecoded (all but a PNG whose eXIf chunk, if
    any, comes after its image data: `PngImageFile.getexif` loads the image to find it)."""
    return image.format != "PNG" or "exif" in image.info


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a corrupt EXIF block must not cost the picture: treat it as upright
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1
