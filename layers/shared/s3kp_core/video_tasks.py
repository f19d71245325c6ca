"""The message that asks for one segment of a video: its shape, and the port it is sent through.

The planner (the invocation that received the upload's notification) sends one task per segment to the
video queue; each is processed by an invocation of its own. A task carries what the planner learnt (the
probe, the run, the event order), so a segment neither probes the video again nor guesses which upload it
belongs to. Bodies are JSON with a version key, `s3kp_video_segment`, which tells them from S3's
notifications on the same queue.

A task with `watch` set is a segment's *watch*: the segment's last delivery sends it, delayed past that
delivery's end, to find out whether the delivery ended at all (`video_processing.watch_segment`). An
invocation killed by its memory limit or a native crash runs no code of ours, so only a message that
arrives afterwards can record the video's failure.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction
from typing import Protocol

import msgspec

from s3kp_core.results import SourceObject
from s3kp_core.video_decode import VideoProbe

TASK_KEY = "s3kp_video_segment"
TASK_VERSION = 1


class MalformedTask(ValueError):
    """A body that claims to be a segment task but does not hold one."""


class ProbeFacts(msgspec.Struct, frozen=True, kw_only=True):
    """`VideoProbe` as JSON: fractions as `"num/den"` strings, so nothing is rounded on the way."""

    container: str
    codec: str
    duration: str
    width: int
    height: int
    stored_width: int
    stored_height: int
    rotation: int
    average_fps: float | None
    start: str

    @classmethod
    def of(cls, probe: VideoProbe) -> ProbeFacts:
        return cls(
            container=probe.container,
            codec=probe.codec,
            duration=str(probe.duration),
            width=probe.width,
            height=probe.height,
            stored_width=probe.stored_width,
            stored_height=probe.stored_height,
            rotation=probe.rotation,
            average_fps=probe.average_fps,
            start=str(probe.start),
        )

    def probe(self) -> VideoProbe:
        return VideoProbe(
            container=self.container,
            codec=self.codec,
            duration=Fraction(self.duration),
            width=self.width,
            height=self.height,
            stored_width=self.stored_width,
            stored_height=self.stored_height,
            rotation=self.rotation,
            average_fps=self.average_fps,
            start=Fraction(self.start),
        )


class SegmentTask(msgspec.Struct, frozen=True, kw_only=True):
    """Segment `segment` of `segments`: samples `first` to `stop - 1` of one run of one video."""

    s3kp_video_segment: int = TASK_VERSION
    source: SourceObject
    result_id: str
    run: str  # one processing of one upload under one fingerprint (video_processing.run_token)
    order: str  # the upload's event order (s3kp_core.ordering)
    fingerprint: str | None
    segment: int
    segments: int
    first: int
    stop: int
    fps: str  # "num/den"
    video: ProbeFacts
    created_at: datetime
    replay: bool = False
    watch: bool = False  # this message checks on the segment after its last delivery (see the module doc)

    @property
    def sampling(self) -> Fraction:
        return Fraction(self.fps)


def encode_task(task: SegmentTask) -> str:
    return msgspec.json.encode(task).decode()


def is_task(body: str) -> bool:
    """Whether an SQS body is a segment task (else an S3 notification, or junk)."""
    try:
        document = json.loads(body)
    except (TypeError, ValueError):
        return False
    return isinstance(document, dict) and TASK_KEY in document


def decode_task(body: str) -> SegmentTask:
    try:
        task = msgspec.json.decode(body, type=SegmentTask)
    except msgspec.DecodeError as error:
        raise MalformedTask(f"not a segment task: {error}") from None
    if task.s3kp_video_segment != TASK_VERSION:
        raise MalformedTask(f"segment task version {task.s3kp_video_segment} is not {TASK_VERSION}")
    if not (0 <= task.segment < task.segments and 0 <= task.first < task.stop):
        raise MalformedTask("segment task with an empty or impossible range")
    return task


class SegmentQueue(Protocol):
    """Where segment tasks go; `send` returns once every task is accepted, else raises TransientError.
    `delay_seconds` (at most SQS's 900) holds the tasks back that long."""

    def send(self, tasks: Sequence[SegmentTask], *, delay_seconds: int = 0) -> None: ...
