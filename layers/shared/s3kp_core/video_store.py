"""Where a video's result lives while its segments land: the port the video flow writes through.

A video is one result item, like an image, written in three kinds of steps, each one atomic:
- `start`: the item becomes `processing` for one *run* (one upload under one fingerprint), unless a newer
  upload's result is stored (the event order, as for images) or this run has started already (a retried
  planner: nothing is reset, its tasks are sent again).
- `record_segment`: a segment's summary is added and the count of segments done goes up by one, only if the
  run is still the item's, it is still `processing` and this segment is not recorded yet. So a retried or
  duplicated segment counts once, and exactly one writer sees the count reach the total: it finishes the
  video.
- `finish`: the final state (succeeded, or failed/skipped with a reason) replaces the item, only if the run
  is still the item's and it is still `processing`: the first to finish wins, later ones change nothing.

The DynamoDB adapter (`video_store_dynamodb`) does each with one conditional write.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum

import msgspec

from s3kp_core.results import ResultRecord, Status
from s3kp_core.results_store import Write


class SegmentSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What one segment found, summed into the video's totals when it finishes."""

    frames: int
    detections: int = 0
    keypoints: int = 0
    counts: dict[str, int] = msgspec.field(default_factory=dict)
    timings_ms: dict[str, float] = msgspec.field(default_factory=dict)


class Start(StrEnum):
    STARTED = "started"  # the item is now this run's, `processing`
    RUNNING = "running"  # this run had started already and is still `processing`
    FINISHED = "finished"  # this run has recorded its final state
    STALE = "stale"  # a newer upload's result is stored


class SegmentWrite(StrEnum):
    RECORDED = "recorded"
    NOT_RECORDED = "not_recorded"  # recorded before, or the video takes no more segments (see the state)


@dataclass(frozen=True)
class VideoState:
    """The stored item as the video flow reads it."""

    record: ResultRecord
    run: str | None
    order: str | None
    segments: dict[int, SegmentSummary] = field(default_factory=dict)
    event_owed: bool = False  # its final state's event has not been published yet

    def belongs_to(self, run: str) -> bool:
        return self.run == run

    @property
    def processing(self) -> bool:
        return self.record.status == Status.PROCESSING

    @property
    def complete(self) -> bool:
        """Every segment is recorded (the video can be finished)."""
        video = self.record.video
        return video is not None and len(self.segments) >= video.segments


class VideoStore(ABC):
    @abstractmethod
    def start(self, record: ResultRecord, *, order: str, run: str) -> Start:
        """Make `record` (status `processing`) the stored result for `run`; outputs of the result it replaces
        are deleted (nothing points at them any more)."""

    @abstractmethod
    def read(self, result_id: str) -> VideoState | None:
        """The stored item (consistent read), or None."""

    @abstractmethod
    def record_segment(
        self, result_id: str, *, run: str, index: int, summary: SegmentSummary
    ) -> tuple[SegmentWrite, VideoState | None]:
        """Add a segment's summary (see the module doc); the state after the write, or as it is now."""

    @abstractmethod
    def finish(self, record: ResultRecord, *, order: str, run: str, track_event: bool) -> Write:
        """Replace the `processing` item of `run` with its final state; `written` False when another
        writer finished it first, or the item belongs to another run."""

    @abstractmethod
    def settle(self, write: Write) -> None:
        """The event owed by `write` went out: forget that it is owed."""
