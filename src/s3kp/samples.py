"""Sample images that ship inside installed packages (no downloads), and the bad inputs we test with.

- `astronaut` and `camera`: scikit-image's data (Eileen Collins; a cameraman), public domain.
- `grace_hopper`: matplotlib's sample data.
- `china`: scikit-learn's sample image (a temple, no people): the negative.
- composites built from them: `faces_2x2` (four astronauts), `people_side_by_side` (two people).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from functools import cache
from pathlib import Path

from PIL import Image


@cache
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).convert("RGB")  # type: ignore[no-untyped-call]  # skimage: no hints


@cache
def camera() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.camera()).convert("L")  # type: ignore[no-untyped-call]  # skimage: no hints


@cache
def grace_hopper() -> Image.Image:
    from matplotlib import cbook

    # The path, not the file object: its stub types the file object as `ndarray | IO`.
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return Image.open(io.BytesIO(Path(path).read_bytes())).convert("RGB")


@cache
def china() -> Image.Image:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image("china.jpg")).convert("RGB")


@cache
def faces_2x2() -> Image.Image:
    """Four astronauts in a 2×2 grid: four faces, each a quarter of the picture's width."""
    tile = astronaut()
    grid = Image.new("RGB", (tile.width * 2, tile.height * 2))
    for index in range(4):
        grid.paste(tile, ((index % 2) * tile.width, (index // 2) * tile.height))
    return grid


@cache
def people_side_by_side() -> Image.Image:
    """The astronaut and Grace Hopper side by side, scaled to one height: two people."""
    left, right = astronaut(), grace_hopper()
    height = min(left.height, right.height)
    left = left.resize((round(left.width * height / left.height), height), Image.Resampling.LANCZOS)
    right = right.resize((round(right.width * height / right.height), height), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (left.width + right.width, height))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    return canvas


SAMPLE_IMAGES: dict[str, Callable[[], Image.Image]] = {
    "astronaut": astronaut,
    "camera": camera,
    "grace_hopper": grace_hopper,
    "china": china,
    "faces_2x2": faces_2x2,
    "people_side_by_side": people_side_by_side,
}


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG" and image.mode not in ("RGB", "L", "CMYK"):
        image = image.convert("RGB")
    image.save(buffer, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}) | options)
    return buffer.getvalue()


def sample_jpeg(name: str) -> bytes:
    return encode(SAMPLE_IMAGES[name]())


def upscaled_jpeg(name: str, long_side: int) -> bytes:
    """A sample resized to a given longest side, e.g. 4000 px for a 12-megapixel-class photo."""
    image = SAMPLE_IMAGES[name]()
    scale = long_side / max(image.size)
    resized = image.resize(
        (round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC
    )
    return encode(resized)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def decompression_bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG whose header claims width × height pixels (900 megapixels by default)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = compressor.compress(row * 64) + compressor.flush()  # only the first rows: never decoded
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def exif_rotated_jpeg(orientation: int = 6) -> bytes:
    """The astronaut stored rotated on disk with an EXIF Orientation tag that undoes it for viewers.

    Orientation 6 means "rotate 90° clockwise to display": the stored pixels are the upright image
    rotated 90° counter-clockwise, so an orientation-aware reader recovers the upright astronaut.
    """
    upright = astronaut()
    stored = upright.transpose(Image.Transpose.ROTATE_90) if orientation == 6 else upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored, exif=exif.tobytes())


def cmyk_jpeg() -> bytes:
    return encode(astronaut().convert("CMYK"))


def png_16bit() -> bytes:
    return encode(camera().convert("I;16"), "PNG")


def palette_with_transparency_png() -> bytes:
    image = astronaut().convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return encode(image, "PNG", transparency=0)


def rgba_png() -> bytes:
    image = astronaut().convert("RGBA")
    image.putalpha(200)
    return encode(image, "PNG")


def la_png() -> bytes:
    return encode(camera().convert("LA"), "PNG")


def animated_gif() -> bytes:
    frames = [astronaut().convert("P", palette=Image.Palette.ADAPTIVE), china().convert("P")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=200, loop=0)
    return buffer.getvalue()


def truncated_jpeg() -> bytes:
    data = sample_jpeg("astronaut")
    return data[: len(data) // 3]


def pdf_named_jpg() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )


def one_pixel_png() -> bytes:
    return encode(Image.new("RGB", (1, 1), (128, 128, 128)), "PNG")


# name -> (file name to upload as, bytes factory): inputs that must never crash anything.
BAD_INPUTS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "zero_byte": ("empty.jpg", lambda: b""),
    "truncated_jpeg": ("truncated.jpg", truncated_jpeg),
    "pdf_named_jpg": ("document.jpg", pdf_named_jpg),
    "decompression_bomb": ("bomb.png", decompression_bomb_png),
    "one_pixel": ("pixel.png", one_pixel_png),
}

# name -> (file name, bytes factory): unusual but valid images that must be processed correctly.
UNUSUAL_IMAGES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "cmyk_jpeg": ("cmyk.jpg", cmyk_jpeg),
    "png_16bit": ("sixteen-bit.png", png_16bit),
    "palette_transparency": ("palette.png", palette_with_transparency_png),
    "rgba": ("alpha.png", rgba_png),
    "la": ("grey-alpha.png", la_png),
    "animated_gif": ("animated.gif", animated_gif),
    "exif_rotated": ("rotated.jpg", exif_rotated_jpeg),
}
