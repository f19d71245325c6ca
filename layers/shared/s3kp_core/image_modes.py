"""Decoded pixels of any mode -> 8-bit RGB, reduced by an integer factor, in bounded memory.

The rules (the same for the ingest function and the model server):
- Transparency is composited on white (what a browser shows on a default page). Flattening then
  box-reducing gives the same pixels as Pillow's premultiplied reduce then flattening, without its copy.
- 16-bit and 32-bit integer images are scaled by their bit depth (inferred from the brightest value as
  the smallest of 8..16 bits that holds it) rather than clipped; float images are stretched to 0..255.
- Everything else goes through Pillow's own `convert("RGB")` (1, L, P, CMYK, YCbCr, LAB, HSV).

Memory: a large image is converted in horizontal strips, each reduced before it is pasted into the
output, so the peak is the decoded pixels plus the (reduced) output plus one strip, whatever the mode;
a full-size converted copy never exists. Modes whose conversion is per-pixel and linear reduce first
(cheaper), the others convert first (exact).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, cast

from PIL import Image

# Bytes Pillow stores per pixel: 1, L and P use one; the 16-bit modes two; every other mode four
# (RGB is padded to four bytes, LA and PA too).
_ONE_BYTE_MODES: Final = frozenset({"1", "L", "P"})
_TWO_BYTE_MODES: Final = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES: Final = frozenset({"RGBA", "LA", "PA", "RGBa"})
# Reduce first, then convert: Image.reduce() handles them and their conversion commutes with averaging.
_REDUCE_THEN_CONVERT: Final = frozenset({"RGB", "L", "CMYK", "YCbCr", "I", "F"})
# Above this many pixels, conversion runs in strips of about this many pixels (8 MB of RGB).
STRIP_PIXELS: Final = 2_000_000

Converter = Callable[[Image.Image], Image.Image]


def bytes_per_pixel(mode: str) -> int:
    """What Pillow allocates per pixel of `mode` once decoded."""
    if mode in _ONE_BYTE_MODES:
        return 1
    if mode in _TWO_BYTE_MODES:
        return 2
    return 4


def to_rgb(image: Image.Image, reduce_by: int = 1) -> Image.Image:
    """`image` as 8-bit RGB, box-reduced by `reduce_by` (sizes round up, as `Image.reduce` does).

    Raises ValueError for a mode Pillow cannot convert.
    """
    if reduce_by < 1:
        raise ValueError(f"reduce_by must be at least 1, not {reduce_by}")
    if image.mode == "RGB" and reduce_by == 1:
        return image
    convert = _converter(image)
    width, height = image.size
    if width * height <= STRIP_PIXELS:
        return _convert_part(image, convert, reduce_by)
    output = Image.new("RGB", (math.ceil(width / reduce_by), math.ceil(height / reduce_by)))
    # Strips a whole number of reduction boxes high, so every box falls inside one strip.
    rows = max(reduce_by, STRIP_PIXELS // width // reduce_by * reduce_by)
    for top in range(0, height, rows):
        part = image.crop((0, top, width, min(height, top + rows)))
        output.paste(_convert_part(part, convert, reduce_by), (0, top // reduce_by))
    return output


def _convert_part(part: Image.Image, convert: Converter, reduce_by: int) -> Image.Image:
    if reduce_by == 1:
        return convert(part)
    if part.mode in _REDUCE_THEN_CONVERT:
        return convert(part.reduce(reduce_by))
    return convert(part).reduce(reduce_by)


def _converter(image: Image.Image) -> Converter:
    """The per-strip conversion for `image`'s mode; parameters that need every pixel (the brightest
    value of a 16-bit image) are computed here, once, on the whole image."""
    mode = image.mode
    if mode == "RGB":
        return lambda part: part
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        return _flatten_on_white
    if mode.startswith("I"):
        low, high = cast(tuple[int, int], image.getextrema())  # one band: (min, max)
        if low < 0 or high > 0xFFFF:
            return _stretch(float(low), float(high))
        bits = min(16, max(8, int(high).bit_length()))
        divisor = ((1 << bits) - 1) / 255
        return lambda part: _as_int32(part).point(lambda value: value / divisor).convert("L").convert("RGB")
    if mode == "F":
        low_f, high_f = cast(tuple[float, float], image.getextrema())
        if low_f >= 0 and high_f <= 1:  # the usual float convention
            low_f, high_f = 0.0, 1.0
        return _stretch(low_f, high_f)
    return lambda part: part.convert("RGB")  # 1, L, P, CMYK, YCbCr, LAB, HSV


def _flatten_on_white(part: Image.Image) -> Image.Image:
    # Pasting through the alpha band: the same pixels as alpha_composite, with a third of its memory.
    rgba = part if part.mode == "RGBA" else part.convert("RGBA")
    flattened = Image.new("RGB", rgba.size, (255, 255, 255))
    flattened.paste(rgba, (0, 0), rgba)
    return flattened


def _stretch(low: float, high: float) -> Converter:
    span = (high - low) or 1.0

    def stretch(part: Image.Image) -> Image.Image:
        source = part if part.mode == "F" else _as_int32(part)
        return source.point(lambda value: (value - low) * 255 / span).convert("L").convert("RGB")

    return stretch


def _as_int32(part: Image.Image) -> Image.Image:
    return part if part.mode in ("I", "F") else part.convert("I")
