"""Videos with PyAV: what a file holds (`probe`) and its frames at a fixed rate (`sample_frames`).

Every upload is untrusted input parsed in C (FFmpeg), so the surface is kept small and every bound is
checked before the work it bounds (docs/videos.md):
- Containers are sniffed from their first bytes and opened with that one demuxer: ISO BMFF (`.mp4 .mov
  .m4v`), Matroska (`.mkv .webm`), AVI. Anything else, an image renamed `.mp4` included, is
  `video_undecodable`; FFmpeg's hundreds of other demuxers are never tried on uploads.
- Codecs: the common camera, phone and web ones (`ALLOWED_CODECS`).
- Limits from the header: frames over `max_pixels` are `video_too_large` before any is decoded; a
  duration over `max_seconds` is `video_too_long` (a header without a duration, a live recording, is
  measured by demuxing its packets, no decoding, up to the limit).
- Timestamps, not frame counts, decide sampling: sample `k` is the frame *shown* at `k / fps` seconds (the
  last one whose timestamp is not after it), so a variable-frame-rate video is sampled evenly in time. A
  frame shown at several sample times is converted once; timestamps that never advance are refused rather
  than decoded forever.
- Rotation: the stream's display matrix (a phone's portrait video) is applied, so frames, sizes and
  keypoints are the picture as players show it, as EXIF orientation is for photos.
- Memory: a sampled frame is scaled and converted from the decoder's YUV to RGB in one swscale pass at the
  reduced size (`reformat`), so no full-size RGB copy ever exists (an 8K frame would be 100 MB as RGB).
  A frame a sample is known to show is converted at once: no decoded frame is held beyond the decoder's own.
- Work: a frame no sample shows is not decoded when no other frame refers to it (`skip_frame` NONREF,
  decided per packet from its display interval): most B-frames of a camera's video sampled at 5 fps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO, Final

import av
import av.error
from PIL import Image

from s3kp_core import errors
from s3kp_core.errors import PermanentError, ProcessingError
from s3kp_core.imaging import fit_size
from s3kp_core.video_plan import sample_count, sample_time

DEFAULT_MAX_VIDEO_PIXELS: Final = 8192 * 4352
"""8K (7680×4320 UHD and 8192×4320 DCI) passes; what is larger is refused before decoding."""
ALLOWED_CODECS: Final = frozenset(
    {"h264", "hevc", "vp8", "vp9", "av1", "libdav1d", "libvpx", "libvpx-vp9", "mpeg4", "mpeg2video",
     "mjpeg", "prores", "h263"}
)  # fmt: skip
MAX_SOURCE_FPS: Final = 1000
"""Decoded frames per second of video beyond which timestamps are taken as broken (they do not advance)."""
SEEK_SLACK_SECONDS: Final = 30
"""How far before a segment's start a backward seek may land (the keyframe interval) in the frame budget."""
MAX_PROBE_PACKETS: Final = 2000
"""Packets read for the first frame before a stream is taken as undecodable."""
TRUNCATION_TOLERANCE_SECONDS: Final = 1.0
"""Samples the data lacks at the end of a stream are forgiven this long (headers round, audio runs over)."""
_BMFF_BOXES: Final = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")
_EBML: Final = b"\x1a\x45\xdf\xa3"
_SUPPORTED: Final = "MP4/MOV/M4V, Matroska/WebM or AVI"
# PyAV raises FFmpeg's failures as av.error.FFmpegError; some container problems surface as these.
_DECODE_ERRORS: Final = (av.error.FFmpegError, OSError, ValueError, EOFError, IndexError, RuntimeError)
_ROTATIONS: Final = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True)
class VideoProbe:
    """What a video's header and first frame say; `width`/`height` are as displayed (rotation applied)."""

    container: str  # the demuxer that read it
    codec: str
    duration: Fraction  # seconds of the video stream
    width: int
    height: int
    stored_width: int  # as coded, before rotation and pixel aspect ratio
    stored_height: int
    rotation: int  # 0, 90, 180 or 270: degrees counter-clockwise the stored picture turns to display
    average_fps: float | None
    start: Fraction  # the stream's first timestamp, seconds: sample times count from it

    @property
    def duration_seconds(self) -> float:
        return float(self.duration)


@dataclass(frozen=True)
class SampledFrame:
    """Sample `index` of the video: the frame shown at `time` seconds, upright, reduced, RGB."""

    index: int
    time: Fraction
    image: Image.Image
    source_frame: int  # the decoded frame it came from (samples of one frame share it: reuse its answer)
    source_time: float  # that frame's own timestamp, seconds from the stream's start

    @property
    def time_seconds(self) -> float:
        return float(self.time)


def sniff_container(head: bytes) -> str:
    """The demuxer for a file starting with `head` (its first 12 bytes or more)."""
    if len(head) >= 8 and head[4:8] in _BMFF_BOXES:
        return "mov"
    if head.startswith(_EBML):
        return "matroska"
    if len(head) >= 12 and head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    raise PermanentError(
        errors.VIDEO_UNDECODABLE, f"the object is not a video in a supported container ({_SUPPORTED})"
    )


def probe(source: BinaryIO, *, max_seconds: float, max_pixels: int = DEFAULT_MAX_VIDEO_PIXELS) -> VideoProbe:
    """Read the header and decode the first frame; raise PermanentError with a `video_*` code (or the
    source's own errors, e.g. `object_missing`) when the video cannot be processed."""
    with _opened(source) as (container, stream):
        codec = _codec_name(stream)
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise PermanentError(errors.VIDEO_UNDECODABLE, f"the {codec} stream has no frame size")
        if width * height > max_pixels:
            raise PermanentError(
                errors.VIDEO_TOO_LARGE,
                f"{width}x{height} px frames are {width * height:,} pixels, over the limit of {max_pixels:,}",
            )
        duration = _declared_duration(container, stream, max_seconds)
        rotation = _rotation(_first_frame(container, stream))
        display_width, display_height = _display_size(stream, width, height)
        rate = stream.average_rate or stream.guessed_rate
        demuxer, start = container.format.name, _stream_start(stream)
    if duration is None:  # a live recording: no duration in the header
        duration = _measured_duration(source, demuxer, max_seconds)
    if duration <= 0:
        raise PermanentError(errors.VIDEO_NO_FRAMES, "the video stream lasts no time")
    if rotation in (90, 270):
        display_width, display_height = display_height, display_width
    return VideoProbe(
        container=demuxer,
        codec=codec,
        duration=duration,
        width=display_width,
        height=display_height,
        stored_width=width,
        stored_height=height,
        rotation=rotation,
        average_fps=float(rate) if rate else None,
        start=start,
    )


def sample_frames(
    source: BinaryIO,
    video: VideoProbe,
    *,
    fps: Fraction,
    first: int,
    stop: int,
    max_side: int,
) -> Iterator[SampledFrame]:
    """Samples `first` to `stop - 1` (see `video_plan`), each the frame shown at its time, upright and
    reduced to at most `max_side` px. Decodes from the keyframe before the first sample to one frame past
    the last. Raises PermanentError: `video_undecodable` (the data breaks off unreadably, or timestamps
    never advance), `video_truncated` (the data ends well before the header's duration)."""
    stop = min(stop, sample_count(video.duration, fps))
    if stop <= first:
        return
    reduced = _reduced_size(video, max_side)
    budget = math.ceil((float(sample_time(stop - first, fps)) + SEEK_SLACK_SECONDS) * MAX_SOURCE_FPS)
    with _opened(source) as (container, stream):
        sampler = _Sampler(video, fps, first, stop, reduced)
        if first > 0:
            _seek(container, stream, video.start + sample_time(first, fps))
        packets = 0
        try:
            for packet in container.demux(stream):
                packets += 1
                if packets > budget:
                    raise PermanentError(
                        errors.VIDEO_UNDECODABLE,
                        f"over {budget:,} frames read for {stop - first} samples: "
                        "its timestamps do not advance",
                    )
                # A frame no sample shows is not decoded when nothing refers to it (FFmpeg's NONREF skip:
                # most B-frames), so the segment costs less than decoding every frame.
                shown = not packet.size or _may_be_shown(packet, video.start, fps, first, stop)
                stream.codec_context.skip_frame = "DEFAULT" if shown else "NONREF"
                for frame in packet.decode():
                    yield from sampler.frame(frame)
                    if sampler.done:
                        return
        except ProcessingError:
            raise
        except _DECODE_ERRORS as error:
            raise PermanentError(
                errors.VIDEO_UNDECODABLE, f"the video data is corrupt: {_reason(error)}"
            ) from error
        yield from sampler.end_of_stream()


def _may_be_shown(packet: Any, start: Fraction, fps: Fraction, first: int, stop: int) -> bool:
    """Whether a sample falls within the packet's frame's own display interval `[pts, pts + duration)`;
    without a timestamp or a duration, it may be (the frame is decoded)."""
    if packet.pts is None or not packet.duration or packet.time_base is None:
        return True
    base = Fraction(packet.time_base)
    begins = Fraction(packet.pts) * base - start
    ends = begins + Fraction(packet.duration) * base
    index = max(first, math.ceil(begins * fps))
    return index < stop and sample_time(index, fps) < ends


@dataclass
class _Held:
    """The frame on screen until the next one's timestamp: converted as soon as a sample is known to show
    it (then the decoder's full-size frame is let go), else kept decoded until the next frame tells."""

    number: int
    time: Fraction
    duration: Fraction
    frame: Any = None
    image: Image.Image | None = None


class _Sampler:
    """Turns decoded frames, in presentation order, into the samples they are shown at."""

    def __init__(
        self, video: VideoProbe, fps: Fraction, first: int, stop: int, reduced: tuple[int, int]
    ) -> None:
        self._video = video
        self._fps = fps
        self._next = first
        self._stop = stop
        self._reduced = reduced
        self._held: _Held | None = None
        self._number = -1
        self._default_step = (
            1 / Fraction(video.average_fps).limit_denominator(1001) if video.average_fps else 1 / fps
        )

    @property
    def done(self) -> bool:
        return self._next >= self._stop

    def frame(self, frame: Any) -> Iterator[SampledFrame]:
        self._number += 1
        time = self._time_of(frame)
        held = self._held
        if held is not None and time <= held.time:
            return  # a timestamp that does not advance (a broken file): nothing new is shown
        arrived = _Held(self._number, time, self._duration_of(frame), frame=frame)
        # Samples before this frame's timestamp show the held frame (or, before the first frame, this one).
        while not self.done and self._next_time() < time:
            yield self._sample(held if held is not None else arrived)
        self._held = arrived
        if not self.done and self._next_time() < time + arrived.duration:
            self._convert(arrived)  # the next sample shows it (unless a frame comes early): keep it small

    def end_of_stream(self) -> Iterator[SampledFrame]:
        """The last frame is shown for its own duration; samples further on than that, and than the
        tolerance, mean the data ended early."""
        held = self._held
        if held is None:
            if self.done:
                return
            raise PermanentError(errors.VIDEO_TRUNCATED, self._truncated(None))
        shown_until = held.time + held.duration
        while not self.done and self._next_time() < shown_until:
            yield self._sample(held)
        if self.done:
            return
        if float(self._video.duration - shown_until) > TRUNCATION_TOLERANCE_SECONDS:
            raise PermanentError(errors.VIDEO_TRUNCATED, self._truncated(shown_until))
        while not self.done:  # the header's end is within the tolerance: the last frame stays on screen
            yield self._sample(held)

    def _next_time(self) -> Fraction:
        return sample_time(self._next, self._fps)

    def _truncated(self, ends: Fraction | None) -> str:
        declared = float(self._video.duration)
        where = "before its first frame" if ends is None else f"at {float(ends):.1f} s"
        return f"the video's data ends {where}; its header says it lasts {declared:.1f} s"

    def _convert(self, held: _Held) -> Image.Image:
        if held.image is None:
            held.image = _upright_rgb(held.frame, self._reduced, self._video.rotation)
            held.frame = None
        return held.image

    def _sample(self, held: _Held) -> SampledFrame:
        index = self._next
        self._next += 1
        return SampledFrame(
            index=index,
            time=sample_time(index, self._fps),
            image=self._convert(held),
            source_frame=held.number,
            source_time=float(held.time),
        )

    def _time_of(self, frame: Any) -> Fraction:
        if frame.pts is None or frame.time_base is None:
            # No timestamp (some AVI files): one frame interval after the previous frame.
            held = self._held
            return held.time + held.duration if held is not None else Fraction(0)
        return Fraction(frame.pts) * Fraction(frame.time_base) - self._video.start

    def _duration_of(self, frame: Any) -> Fraction:
        if frame.duration and frame.time_base is not None:
            return Fraction(frame.duration) * Fraction(frame.time_base)
        return self._default_step


# ------------------------------------------------------------------------------------------ internals


@contextmanager
def _opened(source: BinaryIO) -> Iterator[tuple[Any, Any]]:
    """The container, opened with the demuxer its first bytes name, and its video stream."""
    source.seek(0)
    head = source.read(16)
    source.seek(0)
    demuxer = sniff_container(head)
    try:
        container = av.open(source, mode="r", format=demuxer)
    except ProcessingError:
        raise
    except _DECODE_ERRORS as error:
        raise PermanentError(
            errors.VIDEO_UNDECODABLE, f"the {demuxer} container cannot be read: {_reason(error)}"
        ) from error
    try:
        stream = _video_stream(container)
        stream.thread_type = "AUTO"  # frame and slice threads: what every player does
        yield container, stream
    finally:
        container.close()


def _video_stream(container: Any) -> Any:
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:  # cover art is not the video
            if _codec_name(stream) not in ALLOWED_CODECS:
                raise PermanentError(
                    errors.VIDEO_UNDECODABLE, f"the video codec {_codec_name(stream)} is not supported"
                )
            return stream
    kinds = sorted({stream.type for stream in container.streams})
    held = f" (it holds {', '.join(kinds)})" if kinds else ""
    raise PermanentError(errors.VIDEO_NO_STREAM, f"the file has no video stream{held}")


def _codec_name(stream: Any) -> str:
    return str(stream.codec_context.name)


def _stream_start(stream: Any) -> Fraction:
    if stream.start_time is None or stream.time_base is None:
        return Fraction(0)
    return Fraction(stream.start_time) * Fraction(stream.time_base)


def _declared_duration(container: Any, stream: Any, max_seconds: float) -> Fraction | None:
    """The stream's duration from the header (else the container's); None when neither declares one."""
    duration: Fraction | None = None
    if stream.duration and stream.duration > 0 and stream.time_base is not None:
        duration = Fraction(stream.duration) * Fraction(stream.time_base)
    elif container.duration and container.duration > 0:
        duration = Fraction(container.duration, av.time_base)
    if duration is not None and duration > max_seconds:
        raise PermanentError(
            errors.VIDEO_TOO_LONG,
            f"its header says it lasts {float(duration):,.1f} s; MAX_VIDEO_SECONDS is {max_seconds:g}",
        )
    return duration


def _measured_duration(source: BinaryIO, demuxer: str, max_seconds: float) -> Fraction:
    """The end of the last video packet, by demuxing (no decoding), stopping once past `max_seconds`."""
    with _opened(source) as (container, stream):
        start = _stream_start(stream)
        end = Fraction(0)
        try:
            for packet in container.demux(stream):
                if packet.pts is None or packet.time_base is None:
                    continue
                base = Fraction(packet.time_base)
                end = max(end, Fraction(packet.pts) * base + Fraction(packet.duration or 0) * base - start)
                if end > max_seconds:
                    raise PermanentError(
                        errors.VIDEO_TOO_LONG,
                        f"its header declares no duration and it runs past {max_seconds:g} s "
                        "(MAX_VIDEO_SECONDS)",
                    )
        except ProcessingError:
            raise
        except _DECODE_ERRORS as error:
            raise PermanentError(
                errors.VIDEO_UNDECODABLE, f"the {demuxer} data is corrupt: {_reason(error)}"
            ) from error
    return end


def _first_frame(container: Any, stream: Any) -> Any:
    packets = 0
    try:
        for packet in container.demux(stream):
            packets += 1 if packet.size else 0  # the demuxer ends with an empty packet (a flush)
            for frame in packet.decode():
                return frame
            if packets >= MAX_PROBE_PACKETS:
                break
    except ProcessingError:
        raise
    except _DECODE_ERRORS as error:
        raise PermanentError(
            errors.VIDEO_UNDECODABLE, f"the video data is corrupt: {_reason(error)}"
        ) from error
    if packets == 0:
        raise PermanentError(errors.VIDEO_NO_FRAMES, "the video stream holds no frames")
    raise PermanentError(errors.VIDEO_UNDECODABLE, f"no frame decodes from the first {packets} packets")


def _rotation(frame: Any) -> int:
    """Degrees counter-clockwise, to the nearest quarter turn (a display matrix's flips are ignored)."""
    try:
        degrees = float(frame.rotation or 0)
    except (TypeError, ValueError):
        return 0
    if not math.isfinite(degrees):
        return 0
    return round(degrees / 90) % 4 * 90


def _display_size(stream: Any, width: int, height: int) -> tuple[int, int]:
    """The stored size with the pixel aspect ratio applied (anamorphic video), before rotation."""
    ratio = stream.sample_aspect_ratio
    if ratio is None or ratio <= 0 or ratio == 1:
        return width, height
    return max(1, round(width * Fraction(ratio))), height


def _reduced_size(video: VideoProbe, max_side: int) -> tuple[int, int]:
    """The size a frame is converted to, in stored orientation: the displayed size fitted to `max_side`."""
    upright = (video.width, video.height)
    if video.rotation in (90, 270):
        upright = (video.height, video.width)
    return fit_size(upright, max_side)


def _upright_rgb(frame: Any, size: tuple[int, int], rotation: int) -> Image.Image:
    # One swscale pass: scale and convert together, from the decoder's planes to RGB at the reduced size.
    image: Image.Image = frame.reformat(
        width=size[0], height=size[1], format="rgb24", interpolation="BILINEAR"
    ).to_image()
    return image.transpose(_ROTATIONS[rotation]) if rotation in _ROTATIONS else image


def _seek(container: Any, stream: Any, seconds: Fraction) -> None:
    """To the keyframe at or before `seconds` (stream time); decoding from the start if the file will not."""
    try:
        container.seek(math.floor(seconds / Fraction(stream.time_base)), stream=stream, backward=True)
    except _DECODE_ERRORS:
        container.seek(0, stream=stream, backward=True)


def _reason(error: BaseException) -> str:
    text = str(getattr(error, "strerror", None) or error).strip()
    return (text[:200] or type(error).__name__).rstrip(".")
