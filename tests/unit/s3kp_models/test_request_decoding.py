"""Request bodies and image files: every shape real clients send, every bad input, never a 500."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from urllib.parse import quote

import pytest
from PIL import Image
from s3kp_core.imaging import open_image
from s3kp_models.request_decoding import ImageLimits, decode_base64_body, decode_image
from s3kp_models.request_errors import InvalidImage, PayloadTooLarge

from s3kp import samples
from tests.unit.model_server.fake_pipeline import client_for

SMALL = samples.astronaut().resize((64, 48))
JPEG = samples.encode(SMALL)
B64 = base64.b64encode(JPEG)
URL = "/fake/1?api_key=any"


# --- base64 bodies ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(B64, id="plain"),
        pytest.param(b"data:image/jpeg;base64," + B64, id="data-url-prefix"),
        pytest.param(b"\n".join(B64[i : i + 76] for i in range(0, len(B64), 76)) + b"\r\n", id="mime-lines"),
        pytest.param(b"  " + B64 + b"\n", id="surrounding-whitespace"),
        pytest.param(B64.rstrip(b"="), id="padding-dropped"),
        pytest.param(base64.urlsafe_b64encode(JPEG), id="url-safe-alphabet"),
        pytest.param(quote(B64.decode(), safe="").encode(), id="url-encoded"),
        pytest.param(b'"' + B64 + b'"', id="json-string"),
    ],
)
def test_base64_body_variants_decode_to_the_same_file(body: bytes) -> None:
    assert decode_base64_body(body) == JPEG


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"not base64 at all!", "not valid base64"),
        (B64[:-5] + b"*" + B64[-4:], "not valid base64"),
        (b"QUJDR", "not valid base64"),  # 4n+1 characters cannot be base64
    ],
)
def test_bad_base64_is_a_400_naming_the_cause(body: bytes, cause: str) -> None:
    with pytest.raises(InvalidImage, match=cause) as raised:
        decode_base64_body(body)
    assert raised.value.status_code == 400
    assert raised.value.message.startswith("Could not load input image. Cause:")


# --- image files ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(samples.UNUSUAL_IMAGES))
def test_unusual_images_decode_to_rgb(name: str) -> None:
    _, factory = samples.UNUSUAL_IMAGES[name]
    image = decode_image(factory(), ImageLimits()).image
    assert image.mode == "RGB"
    assert image.width > 1
    assert image.height > 1


def test_exif_orientation_is_applied() -> None:
    """GIVEN pixels stored rotated with Orientation=6 WHEN decoded THEN the image is upright again."""
    stored = Image.open(io.BytesIO(samples.exif_rotated_jpeg()))
    upright = samples.astronaut()
    decoded = decode_image(samples.exif_rotated_jpeg(), ImageLimits()).image
    assert decoded.size == upright.size
    assert stored.size == (upright.height, upright.width)
    # the top-left corner is the flag's blue/red, not the shuttle's side: compare with the upright source
    assert _mean_abs_difference(decoded, upright) < 12


def test_animated_gif_decodes_its_first_frame() -> None:
    decoded = decode_image(samples.animated_gif(), ImageLimits()).image
    assert decoded.size == samples.astronaut().size  # frame 2 is the china picture, a different size


def test_sixteen_bit_greyscale_keeps_its_contrast() -> None:
    """Pillow's plain convert() clips 16-bit values at 255 (a white image); ours scales them to 8 bits."""
    import numpy as np

    ramp = np.linspace(0, 65535, 64 * 16, dtype=np.uint16).reshape(16, 64)
    decoded = decode_image(samples.encode(Image.fromarray(ramp), "PNG"), ImageLimits()).image
    low, high = decoded.convert("L").getextrema()
    assert (low, high) == (0, 255)


def test_sixteen_bit_png_holding_8_bit_values_is_not_darkened() -> None:
    decoded = decode_image(samples.png_16bit(), ImageLimits()).image
    assert decoded.convert("L").getextrema() == samples.camera().getextrema()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Image.new("I;16", (64, 48), 4095), id="12-bit-data-in-16-bit-png"),
        pytest.param(lambda: Image.new("LA", (64, 48), (90, 100)), id="half-transparent-grey"),
        pytest.param(lambda: samples.astronaut().resize((64, 48)).convert("RGBA"), id="rgba"),
    ],
)
def test_the_server_sees_an_image_exactly_as_the_ingest_function_does(
    make: Callable[[], Image.Image],
) -> None:
    """One decoder: the server's pixels are s3kp_core's, byte for byte (it once had its own rules, and
    read 12-bit data in a 16-bit PNG as nearly black where the ingest function saw it full range)."""
    data = samples.encode(make(), "PNG")

    ours = decode_image(data, ImageLimits()).image
    ingest = open_image(data, max_pixels=64_000_000)

    assert ours.tobytes() == ingest.tobytes()


def test_transparent_pixels_are_flattened_on_white() -> None:
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    decoded = decode_image(samples.encode(image, "PNG"), ImageLimits()).image
    assert decoded.getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("name", ["zero_byte", "truncated_jpeg", "pdf_named_jpg"])
def test_bad_inputs_are_400(name: str) -> None:
    _, factory = samples.BAD_INPUTS[name]
    with pytest.raises(InvalidImage) as raised:
        decode_image(factory(), ImageLimits())
    assert raised.value.status_code == 400


def test_one_pixel_image_decodes() -> None:
    assert decode_image(samples.one_pixel_png(), ImageLimits()).image.size == (1, 1)


def test_decompression_bomb_is_refused_from_its_header_with_413() -> None:
    with pytest.raises(PayloadTooLarge, match="pixels"):
        decode_image(samples.decompression_bomb_png(), ImageLimits())


def test_pixel_limit_is_configurable() -> None:
    with pytest.raises(PayloadTooLarge, match="3,072 pixels, over the limit of 3,071"):
        decode_image(JPEG, ImageLimits(max_pixels=64 * 48 - 1))
    assert decode_image(JPEG, ImageLimits(max_pixels=64 * 48)).image.size == (64, 48)


def test_a_big_jpeg_is_decoded_at_a_reduced_scale_keeping_its_true_size() -> None:
    """GIVEN a 2400x1800 JPEG and reduce_to_side=1000 WHEN decoded THEN 1/2 scale, the true size reported."""
    big = samples.encode(samples.astronaut().resize((2400, 1800)))
    decoded = decode_image(big, ImageLimits(), reduce_to_side=1000)
    assert decoded.image.size == (1200, 900)
    assert (decoded.original_width, decoded.original_height) == (2400, 1800)
    assert decoded.scale == (2.0, 2.0)


def test_reduced_decode_of_a_sideways_jpeg_reports_the_upright_size() -> None:
    stored = samples.astronaut().resize((2400, 1800)).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode_image(samples.encode(stored, exif=exif.tobytes()), ImageLimits(), reduce_to_side=1000)
    assert (decoded.original_width, decoded.original_height) == (2400, 1800)
    assert decoded.image.size == (1200, 900)


def test_images_under_twice_the_side_are_decoded_in_full() -> None:
    decoded = decode_image(JPEG, ImageLimits(), reduce_to_side=33)  # 64 px < 2 x 33
    assert decoded.image.size == (64, 48)
    assert decoded.scale == (1.0, 1.0)


# --- over HTTP --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "application/json", "text/plain", "text/plain; charset=utf-8"],
)
def test_base64_body_is_accepted_under_any_content_type(content_type: str) -> None:
    client, pipeline = client_for()
    response = client.post(URL, content=B64, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert response.json()["image"] == {"width": 64, "height": 48}
    assert pipeline.last_call["shape"] == (48, 64, 3)
    assert pipeline.last_call["dtype"] == "uint8"


def test_multipart_file_part_carries_the_raw_file() -> None:
    client, _ = client_for()
    response = client.post(URL, files={"file": ("photo.jpg", JPEG, "image/jpeg")})
    assert response.status_code == 200, response.text
    assert response.json()["image"] == {"width": 64, "height": 48}


def test_multipart_text_part_named_file_is_read_as_base64() -> None:
    client, _ = client_for()
    response = client.post(URL, data={"file": B64.decode()}, files={"other": ("x.txt", b"x", "text/plain")})
    assert response.status_code == 200, response.text


def test_multipart_without_a_file_part_is_400() -> None:
    client, _ = client_for()
    response = client.post(URL, files={"image": ("photo.jpg", JPEG, "image/jpeg")})
    assert response.status_code == 400
    assert "file" in response.json()["message"]


def test_raw_image_body_is_accepted_as_an_extension() -> None:
    """`curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg'` just works."""
    client, _ = client_for()
    response = client.post(URL, content=JPEG, headers={"Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text


def test_missing_content_type_is_400() -> None:
    client, pipeline = client_for()
    response = client.post(URL, content=B64, headers={"Content-Type": ""})
    assert response.status_code == 400
    assert "Content-Type" in response.json()["message"]
    assert pipeline.calls == []


@pytest.mark.parametrize("name", sorted(samples.BAD_INPUTS))
def test_bad_inputs_over_http_are_client_errors_never_500(name: str) -> None:
    _, factory = samples.BAD_INPUTS[name]
    client, _ = client_for()
    response = client.post(URL, content=base64.b64encode(factory()), headers={"Content-Type": "text/plain"})
    expected = {"decompression_bomb": 413, "one_pixel": 200}.get(name, 400)
    assert response.status_code == expected, response.text
    if expected != 200:
        assert response.json()["message"]


def test_body_over_the_limit_is_413_before_decoding() -> None:
    client, pipeline = client_for(image_limits=ImageLimits(max_body_bytes=1000))
    response = client.post(URL, content=B64, headers={"Content-Type": "text/plain"})
    assert response.status_code == 413
    assert "limit" in response.json()["message"]
    assert pipeline.calls == []


def test_chunked_body_over_the_limit_is_413() -> None:
    """No Content-Length to check up front: the limit is enforced while the body streams in."""
    client, pipeline = client_for(image_limits=ImageLimits(max_body_bytes=1000))
    response = client.post(
        URL, content=iter([B64[:800], B64[800:1600]]), headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 413
    assert pipeline.calls == []


def test_predictions_from_a_reduced_decode_are_in_original_pixels() -> None:
    """The model sees the half-size picture; the client gets coordinates in its own picture's pixels."""
    client, pipeline = client_for(image_limits=ImageLimits(reduce_to_side=1000))
    big = base64.b64encode(samples.encode(samples.astronaut().resize((2400, 1800))))
    body = client.post(URL, content=big, headers={"Content-Type": "text/plain"}).json()
    assert pipeline.last_call["shape"] == (900, 1200, 3)
    assert body["image"] == {"width": 2400, "height": 1800}
    first = body["predictions"][0]
    assert (first["x"], first["y"], first["width"], first["height"]) == (
        40.0,
        20.0,
        16.0,
        12.0,
    )  # fake: 20,10,8,6
    assert first["keypoints"][0]["x"] == 36.0  # fake: 18


def _mean_abs_difference(a: Image.Image, b: Image.Image) -> float:
    import numpy as np

    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())
