"""A video's per-frame predictions: gzip JSON Lines, one sampled frame a line.

    {"frame": 12, "time_seconds": 2.4, "predictions": [{"x": …, "keypoints": […]}, …]}

Each segment writes its own part; the finished document is the parts' bytes one after another (gzip
members concatenate into one valid gzip stream, so nothing is decompressed to merge them). `read_frames`
pages through it without holding it decompressed.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable, Sequence
from typing import Annotated, BinaryIO

import msgspec

from s3kp_core.results import Prediction, ResultType, doc

CONTENT_TYPE = "application/x-ndjson"
CONTENT_ENCODING = "gzip"
_ENCODER = msgspec.json.Encoder()


class FrameLine(ResultType, frozen=True, kw_only=True):
    """One sampled frame of a video and its predictions (a line of the document, an item of the API)."""

    frame: Annotated[int, doc("the sample's index: frame n is shown at n / fps_sampled seconds")]
    time_seconds: Annotated[float, doc("seconds from the video's start")]
    predictions: Annotated[tuple[Prediction, ...], doc("in the video's displayed pixels")]


def encode_part(frames: Iterable[FrameLine], *, level: int = 6) -> bytes:
    """One gzip member holding the frames' lines, in order."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=level, mtime=0) as stream:
        for frame in frames:
            stream.write(_ENCODER.encode(frame))
            stream.write(b"\n")
    return buffer.getvalue()


def join_parts(parts: Sequence[bytes]) -> bytes:
    """The document of a whole video from its segments' parts, in segment order."""
    return b"".join(parts)


_DECODER = msgspec.json.Decoder(FrameLine)


def read_frames(document: BinaryIO, *, offset: int, limit: int) -> tuple[list[FrameLine], int | None]:
    """Frames `offset` to `offset + limit - 1`, and the offset of the next page (None after the last frame).
    Streams: only the lines up to the page's end are decompressed, and only those are parsed."""
    items: list[FrameLine] = []
    with gzip.GzipFile(fileobj=document, mode="rb") as stream:
        for number, line in enumerate(stream):
            if number < offset:
                continue
            if len(items) == limit:
                return items, offset + limit
            items.append(_DECODER.decode(line))
    return items, None
