"""Videos with PyAV: sampling by timestamps, rotation, segments, and every bad input's recorded reason.

The videos are made in the test (`s3kp.video_samples`), a few KB each; each frame shows its own number as
stripes, so a test reads back which source frame a sample came from.
"""

from __future__ import annotations

import io
from fractions import Fraction
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image
from s3kp_core import errors
from s3kp_core.errors import PermanentError
from s3kp_core.video_decode import (
    SampledFrame,
    VideoProbe,
    _Sampler,
    probe,
    sample_frames,
    sniff_container,
)
from s3kp_core.video_plan import plan_segments

from s3kp import video_samples
from s3kp.video_samples import frame_number, numbered_video

FIVE = Fraction(5)


def sampled(
    data: bytes, *, fps: Fraction = FIVE, first: int = 0, stop: int = 10_000, max_side: int = 1024
) -> list[SampledFrame]:
    video = probe(io.BytesIO(data), max_seconds=1800)
    return list(sample_frames(io.BytesIO(data), video, fps=fps, first=first, stop=stop, max_side=max_side))


def _probe_and_sample(data: bytes, max_seconds: float, options: dict[str, int]) -> None:
    video = probe(io.BytesIO(data), max_seconds=max_seconds, **options)
    list(sample_frames(io.BytesIO(data), video, fps=FIVE, first=0, stop=10_000, max_side=64))


def refused(data: bytes, *, max_seconds: float = 1800, **options: int) -> PermanentError:
    with pytest.raises(PermanentError) as raised:
        _probe_and_sample(data, max_seconds, options)
    return raised.value


@pytest.fixture(scope="module")
def thirty_fps() -> bytes:
    """Two seconds at 30 fps, a keyframe every 10 frames (so segments seek to one)."""
    return numbered_video(60, fps=30, gop=10)


# ------------------------------------------------------------------------------------------ sampling


def test_a_30_fps_video_sampled_at_5_fps_takes_every_sixth_frame_at_its_exact_time(thirty_fps: bytes) -> None:
    samples = sampled(thirty_fps)
    assert [s.index for s in samples] == list(range(10))
    assert [s.time for s in samples] == [Fraction(k, 5) for k in range(10)]
    # Frame 6 starts exactly at 0.2 s: it is the one shown then (a float comparison could pick frame 5).
    assert [frame_number(s.image) for s in samples] == [0, 6, 12, 18, 24, 30, 36, 42, 48, 54]
    assert [s.source_frame for s in samples] == [0, 6, 12, 18, 24, 30, 36, 42, 48, 54]


def test_frames_no_sample_shows_are_skipped_when_nothing_refers_to_them_and_the_samples_are_the_same() -> (
    None
):
    """B-frames no other frame refers to are not decoded unless a sample shows them (FFmpeg's NONREF
    skip): the samples are exactly those of a full decode, whole or in segments."""
    data = numbered_video(90, fps=30, preset="veryfast", gop=30)  # B-frames, as cameras write
    assert [frame_number(s.image) for s in sampled(data)] == list(range(0, 90, 6))
    video = probe(io.BytesIO(data), max_seconds=60)
    parts = [
        frame_number(s.image)
        for segment in plan_segments(video.duration, FIVE, Fraction(1))
        for s in sample_frames(
            io.BytesIO(data), video, fps=FIVE, first=segment.first, stop=segment.stop, max_side=1024
        )
    ]
    assert parts == list(range(0, 90, 6))
    assert _decoded_frames(data) < 80, "B-frames no sample shows were not decoded"


def _decoded_frames(data: bytes) -> int:
    from s3kp_core import video_decode

    counted = []
    real = video_decode._Sampler.frame

    def counting(self: Any, frame: Any) -> Any:
        counted.append(frame.pts)
        return real(self, frame)

    video_decode._Sampler.frame = counting  # type: ignore[method-assign]
    try:
        sampled(data)  # decodes up to the frame after the last sample (2.8 s): 86 frames without skipping
    finally:
        video_decode._Sampler.frame = real  # type: ignore[method-assign]
    return len(counted)


def test_a_variable_frame_rate_is_sampled_by_timestamps_the_frame_on_screen_at_each_time() -> None:
    # Five frames with uneven gaps: a phone dropping its rate in low light.
    data = numbered_video(5, times=[0.0, 0.1, 1.0, 1.05, 2.0])
    samples = sampled(data)
    on_screen = {0.0: 0, 0.2: 1, 0.4: 1, 0.6: 1, 0.8: 1, 1.0: 2, 1.2: 3, 1.4: 3, 1.6: 3, 1.8: 3, 2.0: 4}
    assert {s.time_seconds: frame_number(s.image) for s in samples} == on_screen


def test_a_frame_shown_at_several_sample_times_is_converted_once() -> None:
    samples = sampled(numbered_video(5, times=[0.0, 0.1, 1.0, 1.05, 2.0]))
    held = [s for s in samples if s.source_frame == 1]
    assert len(held) == 4
    assert all(s.image is held[0].image for s in held)


def test_segments_decoded_apart_give_exactly_the_samples_of_the_whole(thirty_fps: bytes) -> None:
    whole = [(s.index, frame_number(s.image)) for s in sampled(thirty_fps)]
    video = probe(io.BytesIO(thirty_fps), max_seconds=1800)
    parts = []
    for segment in plan_segments(video.duration, FIVE, Fraction(1, 2)):  # four segments, three after a seek
        parts += [
            (s.index, frame_number(s.image))
            for s in sample_frames(
                io.BytesIO(thirty_fps), video, fps=FIVE, first=segment.first, stop=segment.stop, max_side=1024
            )
        ]
    assert parts == whole


def test_frames_are_reduced_to_the_longest_side_keeping_their_shape(thirty_fps: bytes) -> None:
    assert {s.image.size for s in sampled(thirty_fps, max_side=64)} == {(64, 48)}
    assert {s.image.size for s in sampled(thirty_fps, max_side=4096)} == {(128, 96)}  # never enlarged
    assert {s.image.mode for s in sampled(thirty_fps, max_side=64)} == {"RGB"}


def _top_left_marked(size: tuple[int, int] = (128, 64)) -> Image.Image:
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[: size[1] // 2, : size[0] // 2] = 255
    return Image.fromarray(pixels)


def _bright_quadrant(image: Image.Image) -> str:
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    h, w = grey.shape
    quadrants = {
        "top-left": grey[: h // 2, : w // 2],
        "top-right": grey[: h // 2, w // 2 :],
        "bottom-left": grey[h // 2 :, : w // 2],
        "bottom-right": grey[h // 2 :, w // 2 :],
    }
    return max(quadrants, key=lambda name: float(quadrants[name].mean()))


@pytest.mark.parametrize(
    ("rotation", "size", "quadrant"),
    [
        (0, (128, 64), "top-left"),
        (90, (64, 128), "bottom-left"),  # a quarter turn counter-clockwise: a phone held upright
        (180, (128, 64), "bottom-right"),
        (270, (64, 128), "top-right"),
    ],
)
def test_rotation_metadata_turns_frames_upright_as_players_show_them(
    rotation: int, size: tuple[int, int], quadrant: str
) -> None:
    data = video_samples.encode_video([_top_left_marked()] * 5, fps=5, rotation=rotation)
    video = probe(io.BytesIO(data), max_seconds=60)
    assert (video.rotation, video.width, video.height) == (rotation, *size)
    assert (video.stored_width, video.stored_height) == (128, 64)
    [first, *_] = sampled(data)
    assert first.image.size == size
    assert _bright_quadrant(first.image) == quadrant


@pytest.mark.parametrize(
    ("container", "codec"),
    [("matroska", "libx264"), ("webm", "libvpx-vp9"), ("avi", "mpeg4"), ("mov", "libx264")],
)
def test_every_supported_container_is_sampled_alike(container: str, codec: str) -> None:
    data = numbered_video(20, fps=10, container=container, codec=codec)
    assert [frame_number(s.image) for s in sampled(data)] == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]


def test_a_live_recording_without_a_declared_duration_is_measured_from_its_packets() -> None:
    data = numbered_video(20, fps=10, container="matroska", live=True)
    assert probe(io.BytesIO(data), max_seconds=60).duration == 2


# ------------------------------------------------------------------------------------------ bad input


def test_an_image_renamed_mp4_is_not_a_video() -> None:
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64)).save(jpeg, "JPEG")
    error = refused(jpeg.getvalue())
    assert error.code == errors.VIDEO_UNDECODABLE
    assert "not a video in a supported container" in error.message


def test_an_audio_only_mp4_has_no_video_stream() -> None:
    error = refused(video_samples.audio_only_mp4())
    assert (error.code, error.message) == (
        errors.VIDEO_NO_STREAM,
        "the file has no video stream (it holds audio)",
    )


def test_a_video_stream_without_frames_has_no_frames() -> None:
    assert refused(video_samples.mkv_without_frames()).code == errors.VIDEO_NO_FRAMES


def test_an_mp4_cut_before_its_index_is_undecodable() -> None:
    data = numbered_video(60, size=(320, 240))  # FFmpeg writes the index (moov) after the frames
    assert data.find(b"moov") > len(data) // 2
    assert refused(data[: len(data) // 2]).code == errors.VIDEO_UNDECODABLE


def test_an_mp4_cut_after_its_index_is_truncated_where_its_data_ends() -> None:
    data = numbered_video(100, size=(320, 240), faststart=True)  # index first, as phones and browsers stream
    error = refused(data[: len(data) // 2])
    assert error.code == errors.VIDEO_TRUNCATED
    assert "its header says it lasts 10.0 s" in error.message


def test_an_absurd_duration_in_the_header_is_too_long_before_anything_decodes() -> None:
    data = video_samples.with_declared_duration(numbered_video(10, container="matroska"), 10**9)
    error = refused(data, max_seconds=1800)
    assert error.code == errors.VIDEO_TOO_LONG
    assert "1,000,000,000.0 s; MAX_VIDEO_SECONDS is 1800" in error.message


def test_a_recording_without_a_duration_that_runs_past_the_limit_is_too_long() -> None:
    data = numbered_video(30, fps=10, container="matroska", live=True)
    assert refused(data, max_seconds=2).code == errors.VIDEO_TOO_LONG


def test_frames_over_the_pixel_limit_are_refused_from_the_header() -> None:
    error = refused(numbered_video(3), max_pixels=128 * 96 - 1)
    assert error.code == errors.VIDEO_TOO_LARGE


def test_an_unsupported_codec_is_undecodable() -> None:
    data = video_samples.encode_video([Image.new("RGB", (32, 32))] * 3, container="matroska", codec="ffv1")
    error = refused(data)
    assert (error.code, error.message) == (errors.VIDEO_UNDECODABLE, "the video codec ffv1 is not supported")


def test_container_signatures() -> None:
    assert sniff_container(b"\x00\x00\x00\x18ftypmp42") == "mov"
    assert sniff_container(b"\x1a\x45\xdf\xa3\x01\x00") == "matroska"
    assert sniff_container(b"RIFF\x00\x00\x00\x00AVI LIST") == "avi"
    with pytest.raises(PermanentError):
        sniff_container(b"RIFF\x00\x00\x00\x00WAVEfmt ")  # a RIFF that is not AVI


def test_timestamps_that_do_not_advance_show_nothing_new() -> None:
    video = VideoProbe(
        container="mov", codec="h264", duration=Fraction(1), width=8, height=8, stored_width=8,
        stored_height=8, rotation=0, average_fps=10.0, start=Fraction(0),
    )  # fmt: skip
    sampler = _Sampler(video, Fraction(10), 0, 10, (8, 8))
    image = Image.new("RGB", (8, 8))

    def frame(pts: int) -> SimpleNamespace:
        return SimpleNamespace(
            pts=pts,
            time_base=Fraction(1, 10),
            duration=1,
            reformat=lambda **_: SimpleNamespace(to_image=lambda: image),
        )

    shown = [s.source_frame for pts in (0, 1, 1, 0, 2) for s in sampler.frame(frame(pts))]
    assert shown == [0, 1]  # frames 2 and 3 (pts 1, 0) went back in time and were passed over
