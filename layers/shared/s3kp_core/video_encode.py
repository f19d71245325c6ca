"""The annotated video: H.264 MP4 at the sampled rate, one piece per segment, joined without re-encoding.

Each segment encodes its annotated frames as a piece of its own (libx264, yuv420p, no B-frames, so every
packet's decode and presentation times are the same and pieces join end to end). The finished video is the
pieces' packets in order, their timestamps moved to the first sample each piece holds, written once with
the index first (`+faststart`, so a browser plays it while it downloads). Browsers play this: H.264 High
profile, yuv420p, even dimensions, MP4.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any, Final, cast

import av
from PIL import Image

CONTENT_TYPE: Final = "video/mp4"
TIME_BASE: Final = Fraction(1, 90_000)  # MPEG's clock: exact for every sampled rate that divides 90 kHz
DEFAULT_CRF: Final = 23
DEFAULT_PRESET: Final = "ultrafast"
KEYFRAME_SECONDS: Final = 2  # a scrubbing player seeks to a keyframe: at most this far to decode forward


def even_size(size: tuple[int, int]) -> tuple[int, int]:
    """yuv420p needs even sides: one pixel less where a side is odd."""
    return max(2, size[0] // 2 * 2), max(2, size[1] // 2 * 2)


def ticks(index: int, fps: Fraction) -> int:
    """Sample `index`'s time in TIME_BASE units."""
    return round(Fraction(index) / fps / TIME_BASE)


class PieceWriter:
    """Encodes one segment's annotated frames, in sample order, into an MP4 held in memory."""

    def __init__(
        self, *, fps: Fraction, size: tuple[int, int], crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET
    ) -> None:
        self._fps = fps
        self._size = even_size(size)
        self._buffer = io.BytesIO()
        self._output: Any = av.open(self._buffer, mode="w", format="mp4")
        gop = max(1, round(fps * KEYFRAME_SECONDS))
        options = {"crf": str(crf), "preset": preset, "bf": "0", "g": str(gop), "keyint_min": str(gop)}
        self._stream: Any = self._output.add_stream("libx264", rate=fps, options=options)
        self._stream.width, self._stream.height = self._size
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = TIME_BASE
        self._count = 0

    @property
    def frames(self) -> int:
        return self._count

    def add(self, image: Image.Image) -> None:
        frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]  # PyAV: no hints here
        if image.size != self._size:
            frame = frame.reformat(width=self._size[0], height=self._size[1], format="yuv420p")
        frame.pts = ticks(self._count, self._fps)
        frame.time_base = TIME_BASE
        self._count += 1
        for packet in self._stream.encode(frame):
            self._output.mux(packet)

    def finish(self) -> bytes:
        """The piece; empty when no frame was added."""
        for packet in self._stream.encode():
            self._output.mux(packet)
        if self._count == 0:
            self._output.close()
            return b""
        self._output.close()
        return self._buffer.getvalue()


def join_pieces(pieces: Iterable[tuple[int, bytes]], fps: Fraction, path: Path) -> int:
    """Write the video made of `(first sample index, piece)` pairs, in order, to `path`; the frame count.

    Packets are copied, not decoded: each piece's timestamps are moved to start at its first sample's time.
    """
    frames = 0
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as output:
        target: Any = None
        for first, piece in pieces:
            if not piece:
                continue
            with av.open(io.BytesIO(piece), mode="r", format="mov") as source:
                stream = source.streams.video[0]
                if target is None:
                    target = output.add_stream_from_template(stream)
                    target.time_base = TIME_BASE
                start = ticks(first, fps)
                for packet in cast(Iterable[Any], source.demux(stream)):
                    if packet.dts is None:  # the demuxer's closing empty packet
                        continue
                    moved = start + round(Fraction(packet.pts) * Fraction(packet.time_base) / TIME_BASE)
                    packet.pts = packet.dts = moved
                    packet.time_base = TIME_BASE
                    packet.stream = target
                    output.mux(packet)
                    frames += 1
    return frames
