"""Videos made on the spot with PyAV, never downloaded: the tests' inputs, the demo's sample, the benchmarks'.

- `encode_video(frames, ...)`: any frames as MP4/MOV, Matroska/WebM or AVI; constant or variable frame rate
  (`times`), a display rotation, `faststart` (the index first) or a live recording (no duration).
- `numbered_frame(n)` / `frame_number(image)`: frames that carry their own number as eight black or white
  stripes, so a test can tell which source frame was sampled, through lossy coding and rescaling.
- `audio_only_mp4`, `mkv_without_frames`, `with_declared_duration` (Matroska): bad inputs (docs/videos.md).
- `sample_video()`: the demo's short clip, a slow pan across the sample images (`s3kp.samples`).
"""

from __future__ import annotations

import io
import struct
import tempfile
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

NUMBER_BITS = 8
_MATROSKA_DURATION = b"\x44\x89\x88"  # the Duration element's id and an 8-byte size


def encode_video(
    frames: Iterable[Image.Image],
    *,
    fps: float = 10,
    times: Sequence[float] | None = None,
    container: str = "mp4",
    codec: str = "libx264",
    rotation: int = 0,
    faststart: bool = False,
    live: bool = False,
    quality: int = 18,
    gop: int | None = None,
    preset: str = "ultrafast",
) -> bytes:
    """The frames as a video file. `times` (seconds, increasing) gives each frame its own timestamp: a
    variable frame rate; `rotation` sets the display matrix (degrees counter-clockwise, as players read
    it); `faststart` puts the MP4 index first; `live` writes Matroska without a duration; `preset` is
    libx264's (`ultrafast`: no B-frames; `veryfast`: B-frames, as many cameras and encoders write)."""
    options: dict[str, str] = {}
    if faststart:
        options["movflags"] = "+faststart"
    if live:
        options["live"] = "1"
    codec_options = {"crf": str(quality)} if codec in ("libx264", "libvpx-vp9") else {}
    if codec == "libx264":
        codec_options["preset"] = preset
    if gop is not None:
        codec_options["g"] = str(gop)
    # faststart rewrites the file after writing it: the muxer needs a real path, not a buffer.
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"video.{container}"
        time_base = Fraction(1, 1000) if times is not None else Fraction(fps).limit_denominator(1001) ** -1
        with av.open(str(path), "w", format=container, options=options) as output:
            stream: Any = output.add_stream(
                codec, rate=Fraction(fps).limit_denominator(1001), options=codec_options
            )
            stream.codec_context.time_base = time_base
            started = False
            for number, image in enumerate(frames):
                if not started:
                    stream.width, stream.height = image.size
                    stream.pix_fmt = "yuv420p"
                    if rotation:
                        stream.set_display_rotation(rotation)
                    started = True
                frame = av.VideoFrame.from_image(image.convert("RGB"))  # type: ignore[no-untyped-call]
                frame.pts = round(times[number] * 1000) if times is not None else number
                frame.time_base = time_base
                for packet in stream.encode(frame):
                    output.mux(packet)
            for packet in stream.encode():
                output.mux(packet)
        return path.read_bytes()


def numbered_frame(number: int, size: tuple[int, int] = (128, 96)) -> Image.Image:
    """A frame showing `number` (0-255) as eight vertical stripes, most significant bit on the left."""
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    stripe = width // NUMBER_BITS
    for bit in range(NUMBER_BITS):
        if number >> (NUMBER_BITS - 1 - bit) & 1:
            pixels[:, bit * stripe : (bit + 1) * stripe] = 255
    return Image.fromarray(pixels)


def frame_number(image: Image.Image) -> int:
    """The number a `numbered_frame` shows, read back from a decoded (and maybe rescaled) copy."""
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    height, width = grey.shape
    stripe = width / NUMBER_BITS
    number = 0
    for bit in range(NUMBER_BITS):
        centre = grey[height // 4 : 3 * height // 4, int((bit + 0.3) * stripe) : int((bit + 0.7) * stripe)]
        number = number << 1 | int(centre.mean() > 128)
    return number


def numbered_video(
    count: int, *, fps: float = 10, size: tuple[int, int] = (128, 96), **options: Any
) -> bytes:
    """`count` numbered frames (0, 1, ...) at `fps`, or at `times=` for a variable frame rate."""
    return encode_video((numbered_frame(n % 256, size) for n in range(count)), fps=fps, **options)


def audio_only_mp4(seconds: float = 1.0) -> bytes:
    """An `.mp4` with one AAC stream and no video (a voice memo)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        stream: Any = output.add_stream("aac", rate=44_100, layout="mono")
        for block in range(round(seconds * 44_100 / 1024)):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 44_100
            frame.pts = block * 1024
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)
    return buffer.getvalue()


def mkv_without_frames(size: tuple[int, int] = (64, 48)) -> bytes:
    """A Matroska file declaring an H.264 video stream (and audio) whose video holds no frame."""
    buffer = io.BytesIO()
    output = av.open(buffer, "w", format="matroska")
    video: Any = output.add_stream("libx264", rate=10)
    video.width, video.height = size
    video.pix_fmt = "yuv420p"
    audio: Any = output.add_stream("aac", rate=44_100, layout="mono")
    output.start_encoding()
    for block in range(20):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44_100
        frame.pts = block * 1024
        for packet in audio.encode(frame):
            output.mux(packet)
    for packet in audio.encode():
        output.mux(packet)
    output.close()
    return buffer.getvalue()


def with_declared_duration(mkv: bytes, seconds: float) -> bytes:
    """The Matroska file with its segment's `Duration` declaring `seconds`, whatever its frames hold: an
    absurd header. (An MP4's headers cannot lie to FFmpeg this way: it measures tracks by their samples.)"""
    at = mkv.find(_MATROSKA_DURATION)
    if at == -1:
        raise ValueError("no 8-byte Duration element: a live recording declares none")
    start = at + len(_MATROSKA_DURATION)
    # In the segment's timestamp scale: Matroska's default (and FFmpeg's), a millisecond.
    return mkv[:start] + struct.pack(">d", seconds * 1000) + mkv[start + 8 :]


def sample_video(seconds: float = 4.0, fps: float = 10, width: int = 640) -> bytes:
    """The demo's clip: a slow pan across the two people of `samples.people_side_by_side`, then the four
    faces of `samples.faces_2x2` whole (pillarboxed) and slowly closer (H.264 MP4, 16:9, index first so a
    browser streams it)."""
    from s3kp import samples

    height = round(width * 9 / 16) // 2 * 2
    count = round(seconds * fps)
    half = max(1, count // 2)
    people = samples.people_side_by_side()
    faces = Image.new("RGB", (round(samples.faces_2x2().height * 16 / 9), samples.faces_2x2().height))
    faces.paste(samples.faces_2x2(), ((faces.width - samples.faces_2x2().width) // 2, 0))

    def frame(number: int) -> Image.Image:
        progress = (number % half) / max(1, half - 1)
        if number < half:  # pan from left to right
            crop_width = min(people.width, round(people.height * 16 / 9))
            crop_height = round(crop_width * 9 / 16)
            left = round((people.width - crop_width) * progress)
            top = (people.height - crop_height) // 2
            box = (left, top, left + crop_width, top + crop_height)
            return people.crop(box).resize((width, height), Image.Resampling.BILINEAR)
        zoom = 1 - 0.15 * progress  # a slow zoom into the middle
        crop_width, crop_height = round(faces.width * zoom), round(faces.height * zoom)
        left, top = (faces.width - crop_width) // 2, (faces.height - crop_height) // 2
        return faces.crop((left, top, left + crop_width, top + crop_height)).resize(
            (width, height), Image.Resampling.BILINEAR
        )

    return encode_video((frame(n) for n in range(count)), fps=fps, faststart=True, quality=23)
