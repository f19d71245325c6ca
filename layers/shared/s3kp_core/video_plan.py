"""Which sampled frames a video has and which segment samples which: pure arithmetic on exact fractions.

Sample `k` is the frame shown `k / fps` seconds after the video stream starts, for every `k` with
`k / fps` before the stream's duration. Times are `Fraction`s, never floats: at 30 fps sampled at 5, frame 6
starts exactly at sample 1 (0.2 s), and a float comparison could pick frame 5 instead.

A video longer than one segment is split so each segment is processed by its own invocation: segment `i`
samples the frames shown in `[i × segment_seconds, (i + 1) × segment_seconds)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction


def exact(value: float | int | str | Fraction) -> Fraction:
    """A setting or a header value as an exact fraction: `5`, `2.5` and `"2.5"` mean what they say."""
    if isinstance(value, Fraction):
        return value
    return Fraction(str(value))


def sample_count(duration: Fraction, fps: Fraction) -> int:
    """How many samples a stream of `duration` seconds has at `fps`: every `k / fps` before its end."""
    if duration <= 0:
        return 0
    return math.ceil(duration * fps)


def sample_time(index: int, fps: Fraction) -> Fraction:
    return Fraction(index) / fps


@dataclass(frozen=True)
class Segment:
    """Samples `first` to `stop - 1` of a video (global indices, so frames number the whole video)."""

    index: int
    first: int
    stop: int

    @property
    def samples(self) -> int:
        return self.stop - self.first


def plan_segments(duration: Fraction, fps: Fraction, segment_seconds: Fraction) -> tuple[Segment, ...]:
    """The segments of a video, in order; a segment without samples (possible only when fewer than one
    sample falls in a segment's span) is left out."""
    total = sample_count(duration, fps)
    per_segment = segment_seconds * fps
    segments: list[Segment] = []
    index = 0
    first = 0
    while first < total:
        stop = min(total, math.ceil((index + 1) * per_segment))
        if stop > first:
            segments.append(Segment(index=len(segments), first=first, stop=stop))
        first = max(first, stop)
        index += 1
    return tuple(segments)
