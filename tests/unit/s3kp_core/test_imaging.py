"""Specification of image preparation: decoding rules, orientation, modes, sizes and limits."""

from __future__ import annotations

import io
import re
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageFile, ImageStat
from s3kp_core import errors
from s3kp_core.errors import PermanentError
from s3kp_core.imaging import (
    DEFAULT_MAX_IMAGE_PIXELS,
    MIN_IMAGE_SIDE,
    decode,
    encode_jpeg,
    fit_size,
    open_image,
    prepare_for_inference,
)

from s3kp import samples

LIMIT = DEFAULT_MAX_IMAGE_PIXELS


def png(image: Image.Image, **options: object) -> bytes:
    return samples.encode(image, "PNG", **options)


def jpeg(image: Image.Image, **options: object) -> bytes:
    return samples.encode(image, "JPEG", **options)


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


# --- rejected inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("zero_byte", errors.OBJECT_EMPTY),
        ("truncated_jpeg", errors.IMAGE_UNDECODABLE),
        ("pdf_named_jpg", errors.IMAGE_UNDECODABLE),
        ("decompression_bomb", errors.IMAGE_TOO_LARGE),
        ("one_pixel", errors.IMAGE_TOO_SMALL),
    ],
)
def test_bad_inputs_fail_permanently_with_their_code(name: str, code: str) -> None:
    _, make = samples.BAD_INPUTS[name]

    with pytest.raises(PermanentError) as raised:
        open_image(make(), max_pixels=LIMIT)

    assert raised.value.code == code
    assert raised.value.message


def test_random_bytes_are_undecodable_with_a_message_naming_the_supported_formats() -> None:
    with pytest.raises(PermanentError, match="not an image in a supported format \\(JPEG, PNG"):
        open_image(b"\x00\x01not an image at all" * 10, max_pixels=LIMIT)


def test_a_format_outside_the_allow_list_is_refused() -> None:
    icon = io.BytesIO()
    Image.new("RGB", (32, 32)).save(icon, format="ICO")

    with pytest.raises(PermanentError) as raised:
        open_image(icon.getvalue(), max_pixels=LIMIT)

    assert raised.value.code == errors.IMAGE_UNDECODABLE


def test_a_30000_px_square_png_fails_fast_without_allocating_its_pixels() -> None:
    """GIVEN a 2 KB PNG whose header claims 900 megapixels WHEN it is opened THEN it is refused from
    the header: far less memory is allocated than even one row of 8-bit pixels per megapixel."""
    bomb = samples.decompression_bomb_png(30_000, 30_000)

    tracemalloc.start()
    try:
        with pytest.raises(PermanentError) as raised:
            open_image(bomb, max_pixels=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert raised.value.code == errors.IMAGE_TOO_LARGE
    assert peak < 5_000_000


def test_the_configured_pixel_limit_is_checked_from_the_header() -> None:
    image = samples.decompression_bomb_png(5000, 4000)

    with pytest.raises(
        PermanentError, match="5000x4000 px is 20,000,000 pixels, over the limit of 19,999,999"
    ):
        open_image(image, max_pixels=19_999_999)


def test_a_configured_limit_above_pillows_own_guard_is_the_one_applied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pillow refuses more than twice its global in `Image.open`; our message names our limit instead."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    image = samples.decompression_bomb_png(15_000, 10_000)  # 150 MP, over Pillow's 2 x 64 MP

    with pytest.raises(PermanentError, match="150,000,000 pixels, over the limit of 149,999,999"):
        open_image(image, max_pixels=149_999_999)


@pytest.mark.parametrize(
    ("mode", "bytes_per_pixel"),
    [("I;16", 2), ("RGBA", 4), ("RGB", 4), ("P", 1), ("L", 1), ("LA", 4)],
)
def test_the_decoded_byte_limit_counts_what_the_mode_really_needs(mode: str, bytes_per_pixel: int) -> None:
    """GIVEN a 100x80 PNG WHEN the limit is one byte under its decoded size in its own mode THEN it is
    refused as too large, before decoding; at exactly that size it is accepted."""
    data = png(Image.new(mode, (100, 80)))
    needed = 100 * 80 * bytes_per_pixel

    with pytest.raises(PermanentError, match=f"100x80 {re.escape(mode)} PNG image needs") as raised:
        decode(data, max_pixels=LIMIT, max_decoded_bytes=needed - 1)

    assert raised.value.code == errors.IMAGE_TOO_LARGE
    assert decode(data, max_pixels=LIMIT, max_decoded_bytes=needed).image.mode == "RGB"


@pytest.fixture
def pixel_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The format of every image whose pixels get decoded from now on (Pillow's `ImageFile.load` on an
    image with tiles left to read; every plugin ends its own `load` there)."""
    decoded: list[str] = []
    load = ImageFile.ImageFile.load

    def spied(self: ImageFile.ImageFile) -> object:
        if self.tile:
            decoded.append(str(self.format))
        return load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spied)
    return decoded


@pytest.mark.parametrize("image_format", ["PNG", "GIF", "TIFF", "BMP", "WEBP", "JPEG"])
def test_an_image_over_the_decoded_byte_limit_is_refused_before_any_pixel_is_decoded(
    image_format: str, pixel_decodes: list[str]
) -> None:
    """Reading a PNG's EXIF orientation made Pillow decode every pixel (it looks for an eXIf chunk after
    the image data): the limit was checked on pixels already in memory. Now nothing is decoded."""
    data = samples.encode(Image.new("RGB", (400, 300), (10, 120, 200)), image_format)

    with pytest.raises(PermanentError) as raised:
        decode(data, max_pixels=LIMIT, max_decoded_bytes=1000)

    assert raised.value.code == errors.IMAGE_TOO_LARGE
    assert pixel_decodes == []


def test_a_png_whose_exif_follows_its_pixels_is_still_turned_upright() -> None:
    """The eXIf chunk may come after IDAT (PNG 1.5 allows both); its orientation is applied all the same."""
    data = png(stored_with_orientation(6), exif=with_orientation_tag(6))
    chunks = png_chunks(data)
    exif = next(chunk for chunk in chunks if chunk[4:8] == b"eXIf")
    others = [chunk for chunk in chunks if chunk is not exif]
    after_pixels = [*others[:-1], exif, others[-1]]  # IEND stays last
    moved = data[:8] + b"".join(after_pixels)
    assert "exif" not in Image.open(io.BytesIO(moved)).info  # not readable before the pixels

    decoded = decode(moved, max_pixels=LIMIT)

    assert (decoded.original_width, decoded.original_height) == UPRIGHT_SIZE
    assert ImageChops.difference(decoded.image, upright_picture()).getbbox() is None


def png_chunks(data: bytes) -> list[bytes]:
    """A PNG's chunks after its signature, each whole (length, type, data, CRC)."""
    chunks, position = [], 8
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        chunks.append(data[position : position + 12 + length])
        position += 12 + length
    return chunks


def test_a_progressive_jpeg_counts_its_whole_image_coefficient_buffers() -> None:
    """libjpeg keeps every DCT coefficient of a progressive JPEG (2 bytes each; 1.5 coefficients per pixel
    in 4:2:0 YCbCr) until the last scan, whatever the draft scale: that is what such a file costs, and
    what the limit counts."""
    picture = samples.astronaut().resize((800, 800))
    progressive = jpeg(picture, progressive=True)  # 4:2:0, Pillow's default
    baseline = jpeg(picture)
    drafted = 200 * 200 * 4  # decoded at 1/4 scale
    coefficients = 800 * 800 * 3 // 2 * 2

    assert decode(baseline, max_pixels=LIMIT, draft_to=200, max_decoded_bytes=drafted).image.size == (
        200,
        200,
    )
    with pytest.raises(PermanentError, match="progressive JPEG") as raised:
        decode(progressive, max_pixels=LIMIT, draft_to=200, max_decoded_bytes=drafted + coefficients - 1)
    assert raised.value.code == errors.IMAGE_TOO_LARGE
    decoded = decode(progressive, max_pixels=LIMIT, draft_to=200, max_decoded_bytes=drafted + coefficients)
    assert decoded.image.size == (200, 200)


def test_the_minimum_side_is_a_parameter_for_callers_that_accept_tiny_images() -> None:
    assert decode(samples.one_pixel_png(), max_pixels=LIMIT, min_side=1).image.size == (1, 1)


def test_an_image_exactly_at_the_pixel_limit_is_accepted() -> None:
    assert open_image(png(Image.new("L", (200, 100))), max_pixels=20_000).size == (200, 100)


@pytest.mark.parametrize("size", [(8, 8), (MIN_IMAGE_SIDE - 1, 400), (400, MIN_IMAGE_SIDE - 1)])
def test_images_with_a_side_under_the_minimum_are_too_small(size: tuple[int, int]) -> None:
    with pytest.raises(PermanentError) as raised:
        open_image(png(Image.new("RGB", size)), max_pixels=LIMIT)

    assert raised.value.code == errors.IMAGE_TOO_SMALL


def test_an_image_at_the_minimum_side_is_accepted() -> None:
    assert open_image(png(Image.new("RGB", (MIN_IMAGE_SIDE, MIN_IMAGE_SIDE))), max_pixels=LIMIT).size == (
        16,
        16,
    )


# --- modes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(samples.UNUSUAL_IMAGES))
def test_unusual_images_decode_to_rgb_at_their_size(name: str) -> None:
    _, make = samples.UNUSUAL_IMAGES[name]

    image = open_image(make(), max_pixels=LIMIT)

    assert image.mode == "RGB"
    assert image.size == (512, 512)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("cmyk_jpeg", samples.astronaut),
        ("png_16bit", samples.camera),
        ("la", samples.camera),
        ("exif_rotated", samples.astronaut),
        ("animated_gif", samples.astronaut),  # the first frame
    ],
)
def test_unusual_images_look_like_the_picture_they_encode(
    name: str, reference: Callable[[], Image.Image]
) -> None:
    _, make = samples.UNUSUAL_IMAGES[name]

    assert mean_difference(open_image(make(), max_pixels=LIMIT), reference()) < 8


def test_16_bit_images_are_scaled_by_their_bit_depth_not_clipped() -> None:
    levels = [0, 128 * 257, 65535]  # black, mid grey, white in 16 bits
    image = Image.new("I;16", (48, 16))
    for index, level in enumerate(levels):
        image.paste(level, (index * 16, 0, index * 16 + 16, 16))

    decoded = open_image(png(image), max_pixels=LIMIT)

    assert [decoded.getpixel((index * 16 + 8, 8)) for index in range(3)] == [
        (0, 0, 0),
        (128,) * 3,
        (255,) * 3,
    ]


def test_12_bit_data_in_a_16_bit_image_uses_the_full_8_bit_range() -> None:
    image = Image.new("I;16", (32, 16))
    image.paste(4095, (16, 0, 32, 16))

    decoded = open_image(png(image), max_pixels=LIMIT)

    assert decoded.getpixel((24, 8)) == (255, 255, 255)


def test_float_images_are_stretched_to_8_bits() -> None:
    image = Image.new("F", (32, 16), -1.0)
    image.paste(3.0, (16, 0, 32, 16))
    tiff = io.BytesIO()
    image.save(tiff, format="TIFF")

    decoded = open_image(tiff.getvalue(), max_pixels=LIMIT)

    assert (decoded.getpixel((0, 0)), decoded.getpixel((24, 8))) == ((0, 0, 0), (255, 255, 255))


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_pixels_are_composited_on_white(mode: str) -> None:
    image = Image.new("RGBA", (32, 32), (255, 0, 0, 255))
    image.paste((0, 0, 255, 0), (0, 0, 16, 32))  # left half fully transparent (blue underneath)
    if mode == "LA":
        image = image.convert("LA")
    options: dict[str, object] = {}
    if mode == "P":
        image = image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
        options["transparency"] = image.getpixel((0, 0))

    decoded = open_image(png(image, **options), max_pixels=LIMIT)

    assert decoded.getpixel((4, 4)) == (255, 255, 255)
    assert decoded.getpixel((28, 4)) != (255, 255, 255)


def test_bilevel_images_decode_to_black_and_white_rgb() -> None:
    image = Image.new("1", (32, 32), 0)
    image.paste(1, (16, 0, 32, 32))

    decoded = open_image(png(image), max_pixels=LIMIT)

    assert (decoded.getpixel((0, 0)), decoded.getpixel((31, 0))) == ((0, 0, 0), (255, 255, 255))


# --- orientation ---------------------------------------------------------------------------------------

QUADRANTS = {
    "top_left": (255, 0, 0),
    "top_right": (0, 255, 0),
    "bottom_left": (0, 0, 255),
    "bottom_right": (255, 255, 0),
}
UPRIGHT_SIZE = (96, 64)  # landscape, so a wrongly turned result has the wrong size too


def upright_picture() -> Image.Image:
    width, height = UPRIGHT_SIZE
    image = Image.new("RGB", UPRIGHT_SIZE)
    image.paste(QUADRANTS["top_left"], (0, 0, width // 2, height // 2))
    image.paste(QUADRANTS["top_right"], (width // 2, 0, width, height // 2))
    image.paste(QUADRANTS["bottom_left"], (0, height // 2, width // 2, height))
    image.paste(QUADRANTS["bottom_right"], (width // 2, height // 2, width, height))
    return image


def displayed_position(orientation: int, column: int, row: int, size: tuple[int, int]) -> tuple[int, int]:
    """Where stored pixel (column, row) is displayed, straight from the EXIF definition of the tag:
    which side of the picture the stored row 0 and column 0 show (1: top/left, 6: right/top, ...)."""
    width, height = size
    return {
        1: (column, row),
        2: (width - 1 - column, row),
        3: (width - 1 - column, height - 1 - row),
        4: (column, height - 1 - row),
        5: (row, column),
        6: (width - 1 - row, column),
        7: (width - 1 - row, height - 1 - column),
        8: (row, height - 1 - column),
    }[orientation]


def stored_with_orientation(orientation: int) -> Image.Image:
    upright = upright_picture()
    width, height = upright.size
    stored_size = (height, width) if orientation >= 5 else (width, height)
    stored = Image.new("RGB", stored_size)
    for row in range(stored_size[1]):
        for column in range(stored_size[0]):
            stored.putpixel(
                (column, row), upright.getpixel(displayed_position(orientation, column, row, upright.size))
            )
    return stored


def with_orientation_tag(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_upright_exactly(orientation: int) -> None:
    data = png(stored_with_orientation(orientation), exif=with_orientation_tag(orientation))

    decoded = open_image(data, max_pixels=LIMIT)

    assert decoded.size == UPRIGHT_SIZE
    assert ImageChops.difference(decoded, upright_picture()).getbbox() is None


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_upright_in_jpegs_with_the_original_size_reported(
    orientation: int,
) -> None:
    small = stored_with_orientation(orientation)
    stored = small.resize((small.width * 20, small.height * 20))
    data = jpeg(stored, exif=with_orientation_tag(orientation))

    prepared, decoded = prepare_for_inference(data, max_side=480, max_pixels=LIMIT)

    assert (prepared.original_width, prepared.original_height) == (1920, 1280)
    assert (prepared.sent_width, prepared.sent_height) == (480, 320)
    width, height = decoded.size
    for (x, y), quadrant in zip(
        [
            (width // 4, height // 4),
            (3 * width // 4, height // 4),
            (width // 4, 3 * height // 4),
            (3 * width // 4, 3 * height // 4),
        ],
        QUADRANTS.values(),
        strict=True,
    ):
        assert all(abs(a - b) < 40 for a, b in zip(decoded.getpixel((x, y)), quadrant, strict=True))


def test_the_sent_jpeg_carries_no_exif_so_it_is_not_turned_twice() -> None:
    prepared, _ = prepare_for_inference(samples.exif_rotated_jpeg(6), max_pixels=LIMIT)

    sent = Image.open(io.BytesIO(prepared.jpeg))

    assert 0x0112 not in sent.getexif()
    assert mean_difference(sent, samples.astronaut()) < 8


# --- sizes, draft mode and encoding --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((4000, 3000), 1024, (1024, 768)),
        ((3000, 4000), 1024, (768, 1024)),
        ((3000, 2000), 1024, (1024, 683)),
        ((1024, 10), 512, (512, 5)),
        ((5000, 16), 1024, (1024, 3)),
        ((100000, 16), 1024, (1024, 1)),  # never rounds to zero
        ((800, 600), 1024, (800, 600)),  # never upscaled
        ((1024, 1024), 1024, (1024, 1024)),
    ],
)
def test_fit_size_keeps_the_aspect_ratio_within_max_side(
    size: tuple[int, int], max_side: int, expected: tuple[int, int]
) -> None:
    assert fit_size(size, max_side) == expected


def test_prepare_downscales_the_sent_jpeg_and_reports_exact_sizes_and_scales() -> None:
    data = jpeg(samples.astronaut().resize((3000, 2000)))

    prepared, decoded = prepare_for_inference(data, max_side=1024, max_pixels=LIMIT)

    assert (prepared.original_width, prepared.original_height) == (3000, 2000)
    assert (prepared.sent_width, prepared.sent_height) == (1024, 683)
    assert Image.open(io.BytesIO(prepared.jpeg)).size == (1024, 683)
    assert prepared.scale_x == 3000 / 1024
    assert prepared.scale_y == 2000 / 683
    assert decoded.mode == "RGB"
    assert max(decoded.size) >= 1024


def test_small_images_are_sent_at_their_own_size() -> None:
    prepared, _ = prepare_for_inference(samples.sample_jpeg("astronaut"), max_side=1024, max_pixels=LIMIT)

    assert (prepared.sent_width, prepared.sent_height) == (512, 512)
    assert (prepared.scale_x, prepared.scale_y) == (1.0, 1.0)


def test_timings_are_reported_for_each_step() -> None:
    prepared, _ = prepare_for_inference(samples.sample_jpeg("astronaut"), max_pixels=LIMIT)

    assert set(prepared.timings_ms) == {"decode", "resize", "encode"}
    assert all(value >= 0 for value in prepared.timings_ms.values())


def test_a_jpeg_draft_decodes_smaller_but_reports_the_original_size() -> None:
    """GIVEN a 4000x3000 JPEG stored sideways (orientation 6) WHEN decoded with a draft target of 1000 px
    THEN the pixels come out at a reduced scale that still covers 1000 px, upright, and the original
    (upright) size matches the full decode."""
    data = jpeg(samples.astronaut().resize((4000, 3000)), exif=with_orientation_tag(6))

    full = decode(data, max_pixels=LIMIT)
    drafted = decode(data, max_pixels=LIMIT, draft_to=1000)

    assert (full.original_width, full.original_height) == (3000, 4000) == full.image.size
    assert (drafted.original_width, drafted.original_height) == (3000, 4000)
    assert drafted.image.size == (750, 1000)  # libjpeg's 1/4 scale, portrait like the original
    assert mean_difference(drafted.image, full.image.resize(drafted.image.size)) < 6


def test_prepare_keeps_the_decoded_image_at_least_decode_side() -> None:
    data = jpeg(samples.astronaut().resize((4000, 4000)))

    prepared, decoded = prepare_for_inference(data, max_side=500, max_pixels=LIMIT, decode_side=2048)

    assert max(decoded.size) >= 2048
    assert (prepared.sent_width, prepared.original_width) == (500, 4000)


def test_the_sent_jpeg_may_be_the_dct_scaled_draft_and_looks_like_an_exact_resize() -> None:
    """GIVEN a 4000 px JPEG and max_side 1024 WHEN prepared THEN libjpeg's 1/4 scale (1000 px, within
    3/4 of max_side) is sent as decoded, and it matches a full decode resized with LANCZOS."""
    data = jpeg(samples.astronaut().resize((4000, 4000)))

    prepared, _ = prepare_for_inference(data, max_side=1024, max_pixels=LIMIT)
    exact = encode_jpeg(open_image(data, max_pixels=LIMIT), max_side=1000)

    assert Image.open(io.BytesIO(prepared.jpeg)).size == (1000, 1000)
    assert (prepared.scale_x, prepared.scale_y) == (4.0, 4.0)
    assert mean_difference(Image.open(io.BytesIO(prepared.jpeg)), Image.open(io.BytesIO(exact))) < 3


@pytest.mark.parametrize(
    ("size", "max_side", "sent"),
    [
        ((3000, 2000), 1024, (1000, 667)),  # 1/3 box reduction: 1000 >= 768
        ((1800, 1200), 1024, (900, 600)),  # 1/2: 900 >= 768
        ((1500, 1000), 1024, (1024, 683)),  # 1/2 would be 750 < 768: bilinear to max_side instead
        ((4096, 1024), 1024, (1024, 256)),  # 1/4 exactly
        ((1024, 1024), 1024, (1024, 1024)),  # fits: sent as it is
    ],
)
def test_the_sent_side_is_a_box_reduction_when_it_keeps_three_quarters_of_max_side(
    size: tuple[int, int], max_side: int, sent: tuple[int, int]
) -> None:
    prepared, _ = prepare_for_inference(
        png(samples.astronaut().resize(size)), max_side=max_side, max_pixels=LIMIT
    )

    assert (prepared.sent_width, prepared.sent_height) == sent
    assert max(sent) >= max_side * 3 / 4


def test_encode_jpeg_downscales_converts_and_honours_quality() -> None:
    image = samples.astronaut().convert("RGBA")

    small = encode_jpeg(image, max_side=256, quality=40)
    large = encode_jpeg(image, quality=95)

    assert Image.open(io.BytesIO(small)).size == (256, 256)
    assert Image.open(io.BytesIO(large)).format == "JPEG"
    assert len(small) < len(large)


# --- robustness ----------------------------------------------------------------------------------------

SMALL_VALID = {
    "jpeg": jpeg(samples.astronaut().resize((64, 48))),
    "png": png(samples.astronaut().resize((64, 48)).convert("RGBA")),
    "gif": samples.encode(samples.astronaut().resize((64, 48)).convert("P"), "GIF"),
    "webp": samples.encode(samples.astronaut().resize((64, 48)), "WEBP"),
}


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(sorted(SMALL_VALID)),
    cut=st.integers(0, 4000),
    flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=8),
)
def test_damaged_files_decode_or_fail_permanently_never_otherwise(
    kind: str, cut: int, flips: list[tuple[int, int]]
) -> None:
    """GIVEN a valid small image with bytes overwritten and/or its tail cut off
    THEN decoding yields an RGB image or a PermanentError: never another exception."""
    data = bytearray(SMALL_VALID[kind])
    for position, value in flips:
        data[position % len(data)] = value
    data = data[: max(1, len(data) - cut)]

    outcome: Image.Image | PermanentError
    try:
        outcome = open_image(bytes(data), max_pixels=LIMIT)
    except PermanentError as error:
        outcome = error

    if isinstance(outcome, PermanentError):
        assert outcome.code in {errors.IMAGE_UNDECODABLE, errors.IMAGE_TOO_LARGE, errors.IMAGE_TOO_SMALL}
    else:
        assert outcome.mode == "RGB"
