"""The video flow: plan an upload into segments, process one segment, finish the video with the last one.

    plan_video        guard, probe (ranged reads), record `processing`, send one task per segment
    process_segment   sample the segment's frames, infer each (the same `Predictor`, so the same circuit
                      breaker and outage handling as images), write its frames' predictions (gzip JSON
                      Lines) and its piece of the annotated video, record the segment; the writer that
                      records the last one finishes: joins the parts and pieces, records the final state
                      and publishes the video's one result event
    watch_segment     after a segment's last delivery: if that delivery was killed without an outcome
                      (out of memory, a native crash), record the video's failure; if the video's last
                      segment is recorded but the video is not finished, finish it

No AWS event shapes here; every collaborator with I/O is injected (`VideoCollaborators`). Every video ends
in one recorded state, as an image does: `succeeded`, or `failed`/`skipped` with a reason, written by the
planner (the video cannot be read) or by the first segment that cannot be processed; an endpoint outage
never fails a segment while its message may still wait (the handler defers it); a transient failure on a
message's last delivery is recorded before the message goes to the dead-letter queue.
"""

from __future__ import annotations

import hashlib
import math
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

import msgspec
from PIL import Image

from s3kp_core import errors
from s3kp_core.annotate import draw_annotations, resolve_skeleton
from s3kp_core.imaging import MIN_SENT_FRACTION, encode_jpeg, fit_size, shrink_for_sending
from s3kp_core.objects import ObjectStore
from s3kp_core.ordering import event_order
from s3kp_core.predictor import Predictor
from s3kp_core.processing import (
    ObjectEvent,
    ProcessingSettings,
    guard_location,
    guard_size,
    record_state,
)
from s3kp_core.redact import redact
from s3kp_core.rescale import rescale
from s3kp_core.result_events import EventPublisher, result_event_detail
from s3kp_core.results import (
    ObjectRef,
    Prediction,
    Reason,
    ResultRecord,
    SourceObject,
    Status,
    VideoSummary,
    result_id_for,
    summarize,
    utc_now,
)
from s3kp_core.results_store import ResultsStore, Write
from s3kp_core.video_decode import VideoProbe, probe, sample_frames
from s3kp_core.video_encode import CONTENT_TYPE as VIDEO_CONTENT_TYPE
from s3kp_core.video_encode import PieceWriter, join_pieces
from s3kp_core.video_frames import CONTENT_TYPE as FRAMES_CONTENT_TYPE
from s3kp_core.video_frames import FrameLine, encode_part, join_parts
from s3kp_core.video_plan import plan_segments, sample_count
from s3kp_core.video_store import SegmentSummary, SegmentWrite, Start, VideoState, VideoStore
from s3kp_core.video_tasks import ProbeFacts, SegmentQueue, SegmentTask

TIMING_DECIMALS = 3
_T = TypeVar("_T")
# Parts and pieces are read back whole to be joined; a bound like any read (a 30-minute piece is ~150 MB).
MAX_WORK_OBJECT_BYTES = 2 * 1024**3


@dataclass(frozen=True, kw_only=True)
class VideoProcessingSettings:
    """Derived from the video function's settings (`VideoSettings.video_processing_settings()`)."""

    processing: ProcessingSettings  # model, prefixes, output bucket, inference size, skeleton
    fps: Fraction
    segment_seconds: Fraction
    max_video_seconds: float
    max_video_pixels: int
    max_video_bytes: int
    annotated_max_side: int  # of the annotated video


class VideoSources(Protocol):
    """Opens an object as a seekable binary file (`video_source_s3.S3RangeReader` in AWS)."""

    def open(self, source: SourceObject, size: int) -> AbstractContextManager[BinaryIO]: ...


@dataclass(frozen=True)
class VideoCollaborators:
    sources: VideoSources
    objects: ObjectStore
    predictor: Predictor
    results: ResultsStore  # the planner's failures are written like an image's
    videos: VideoStore
    segments: SegmentQueue
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = utc_now
    events: EventPublisher | None = None


@dataclass(frozen=True)
class PlanOutcome:
    record: ResultRecord | None  # processing, or the recorded failure; None when stale or already planned
    segments: int = 0
    start: Start | None = None
    event_published: bool = False


@dataclass(frozen=True)
class SegmentOutcome:
    """What one segment did; `record` is the video's final state when this invocation recorded it."""

    state: str  # "recorded", "already_recorded", "stale", "failed" (see process_segment)
    record: ResultRecord | None = None
    frames: int = 0
    inferences: int = 0
    inference_ms: float = 0.0
    bytes_sent: int = 0
    event_published: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    detections: int = 0
    keypoints: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)


def run_token(order: str, source: SourceObject, fingerprint: str | None, rerun: str | None) -> str:
    """16 hex digits naming one processing of one upload: its outputs and the segments that belong to it."""
    parts = f"{order}|{source.version_id}|{source.etag}|{fingerprint}|{rerun or ''}"
    return hashlib.sha256(parts.encode()).hexdigest()[:16]


def annotated_video_key(source_key: str, settings: ProcessingSettings, run: str) -> str:
    """`annotated/<source key without the input prefix>.<run>.mp4` (as an image's, with the run's token)."""
    relative = source_key.removeprefix(settings.input_prefix) if settings.input_prefix else source_key
    return f"{settings.output_prefix}{relative}.{run}.mp4"


# Segment work lives under a prefix of its own, so the bucket's lifecycle rule (template.yaml,
# `expire-abandoned-video-work`) can expire what a run that never finishes leaves behind; a result id is hex,
# so no result's documents are under it.
WORK_DIRECTORY = "video-work/"
FRAMES_NAME = "frames.jsonl.gz"


def frames_key(settings: ProcessingSettings, result_id: str, run: str) -> str:
    """Where a finished run keeps its frames document."""
    return f"{settings.predictions_prefix}{result_id}/{run}/{FRAMES_NAME}"


def work_key(settings: ProcessingSettings, result_id: str, run: str, name: str) -> str:
    """Where a run keeps each segment's part and piece until the video is finished."""
    return f"{settings.predictions_prefix}{WORK_DIRECTORY}{result_id}/{run}/{name}"


def _part_name(index: int) -> str:
    return f"frames-{index:05d}.jsonl.gz"


def _piece_name(index: int) -> str:
    return f"piece-{index:05d}.mp4"


# ---------------------------------------------------------------------------------------------- planning


def plan_video(
    event: ObjectEvent, *, settings: VideoProcessingSettings, deps: VideoCollaborators
) -> PlanOutcome:
    """Probe the upload and fan it out into segment tasks, or record why it cannot be processed."""
    started = deps.clock()
    source = event.source
    result_id = result_id_for(source.bucket, source.key)
    order = event_order(source.sequencer, event.event_time, deps.now())
    stored = deps.results.stored_state(result_id)
    if event.replay and stored is not None and stored.event_order is not None:
        order = stored.event_order  # as for images: a replay speaks for the object as it is now
    if stored is not None and stored.event_order is not None and stored.event_order > order:
        return PlanOutcome(record=None, start=Start.STALE)
    created_at = stored.created_at if stored is not None and stored.created_at else deps.now()
    if event.replay:
        source = msgspec.structs.replace(source, version_id=None)  # the key's current object, by ETag
    timings: dict[str, float] = {}

    def failure(status: Status, reason: Reason) -> ResultRecord:
        timings["total"] = _ms(deps.clock() - started)
        return _video_record(
            result_id, event.source, settings, status, reason, None, created_at, deps.now(), timings
        )

    try:
        guard_location(source, settings.processing)
        size = source.size if source.size is not None else deps.objects.head(source.bucket, source.key).size
        guard_size(size, limit=settings.max_video_bytes, setting="MAX_VIDEO_BYTES")
        with deps.sources.open(source, size) as reader:
            video = probe(
                reader, max_seconds=settings.max_video_seconds, max_pixels=settings.max_video_pixels
            )
        timings["probe"] = _ms(deps.clock() - started)
    except (errors.PermanentError, errors.Skipped) as error:
        if event.replay and stored is not None and error.code == errors.OBJECT_MISSING:
            return PlanOutcome(record=None, start=Start.STALE)
        write, published = record_state(
            failure(error.status, error.reason()), order, deps.results, deps.events
        )
        return PlanOutcome(record=write.record if write.written else None, event_published=published)
    except errors.TransientError as error:
        if event.final_attempt:
            record_state(failure(Status.FAILED, error.reason()), order, deps.results, deps.events)
        raise
    except Exception as error:
        if event.final_attempt:
            record_state(failure(Status.FAILED, _internal(error)), order, deps.results, deps.events)
        raise

    segments = plan_segments(video.duration, settings.fps, settings.segment_seconds)
    run = run_token(order, source, settings.processing.fingerprint, event.rerun)
    summary = _summary(
        video, settings.fps, frames=sample_count(video.duration, settings.fps), segments=len(segments)
    )
    timings["total"] = _ms(deps.clock() - started)
    record = ResultRecord(
        result_id=result_id,
        status=Status.PROCESSING,
        source=event.source,
        model_id=settings.processing.model_id,
        fingerprint=settings.processing.fingerprint,
        media_type="video",
        video=summary,
        timings_ms=timings,
        created_at=created_at,
        updated_at=deps.now(),
    )
    start = deps.videos.start(record, order=order, run=run)
    if start in (Start.STARTED, Start.RUNNING):
        facts = ProbeFacts.of(video)
        deps.segments.send(
            [
                SegmentTask(
                    source=source,
                    result_id=result_id,
                    run=run,
                    order=order,
                    fingerprint=settings.processing.fingerprint,
                    segment=segment.index,
                    segments=len(segments),
                    first=segment.first,
                    stop=segment.stop,
                    fps=str(settings.fps),
                    video=facts,
                    created_at=created_at,
                    replay=event.replay,
                )
                for segment in segments
            ]
        )
    return PlanOutcome(record=record if start == Start.STARTED else None, segments=len(segments), start=start)


# ---------------------------------------------------------------------------------------------- segments


def process_segment(
    task: SegmentTask,
    *,
    settings: VideoProcessingSettings,
    deps: VideoCollaborators,
    deadline: float | None = None,
    final_attempt: bool = False,
    outage_deferrable: bool = False,
) -> SegmentOutcome:
    """Process one segment task and, when it is the last, finish the video. Idempotent: a segment already
    recorded is not processed again, and a duplicate of the last one finishes a video its writer left
    unfinished. `deadline` is a `deps.clock` time after which no frame is inferred.

    Outcome states: `recorded` (this segment counted), `already_recorded` (a duplicate, or the video already
    has its final state), `stale` (another upload or run owns the result now), `failed` (this segment
    recorded the video's failure)."""
    state = deps.videos.read(task.result_id)
    if state is None or not state.belongs_to(task.run):
        return SegmentOutcome(state="stale")  # a newer upload or another run replaced this one
    if not state.processing:
        return SegmentOutcome(state="already_recorded", event_published=_publish_owed(state, deps))
    try:
        if task.segment in state.segments:
            if state.complete:  # the last segment's writer died before finishing the video
                return _finish(task, state, settings, deps, SegmentOutcome(state="already_recorded"))
            return SegmentOutcome(state="already_recorded")
        outcome = _run_segment(task, settings, deps, deadline)
        written, after = deps.videos.record_segment(
            task.result_id, run=task.run, index=task.segment, summary=_segment_summary(outcome)
        )
        still_open = after is not None and after.belongs_to(task.run) and after.processing
        if written == SegmentWrite.NOT_RECORDED:
            if not still_open:
                _delete_work(task, settings, deps, task.segment)  # nobody will read this segment's outputs
                return replace(outcome, state="stale")
            return replace(outcome, state="already_recorded")  # a copy recorded it: its outputs are these
        if after is not None and still_open and after.complete:
            return _finish(task, after, settings, deps, outcome)
        return outcome
    except (errors.PermanentError, errors.Skipped) as error:
        return _fail(task, settings, deps, error.status, error.reason())
    except errors.TransientError as error:
        waits = outage_deferrable and isinstance(error, errors.EndpointUnavailable)
        if final_attempt and not waits:
            _fail(task, settings, deps, Status.FAILED, error.reason())
        raise
    except Exception as error:
        if final_attempt:
            _fail(task, settings, deps, Status.FAILED, _internal(error))
        raise


def watch_segment(
    task: SegmentTask,
    *,
    settings: VideoProcessingSettings,
    deps: VideoCollaborators,
    last_delivery_killed: bool,
) -> SegmentOutcome:
    """Check on a segment after its last delivery (`task.watch`; see `video_tasks`).

    `last_delivery_killed`: the segment's idempotency record says a delivery started it and never ended (the
    handler reads it). Any outcome of ours ends a delivery in one of three ways, each leaving nothing to do
    here: the segment recorded, the video's failure recorded, or the message retried or deferred (it comes
    back, and its own last delivery sends another watch). A killed one ran none of them, and no delivery
    follows: the video's failure is recorded now (`video_segment_crashed`). Killed after recording the
    last segment but before finishing, the video is finished here.

    Outcome states: as `process_segment`'s, plus `watched` (nothing to do)."""
    state = deps.videos.read(task.result_id)
    if state is None or not state.belongs_to(task.run):
        return SegmentOutcome(state="stale")
    if not state.processing:
        return SegmentOutcome(state="already_recorded", event_published=_publish_owed(state, deps))
    if task.segment in state.segments:
        if state.complete:
            return _finish(task, state, settings, deps, SegmentOutcome(state="already_recorded"))
        return SegmentOutcome(state="already_recorded")
    if not last_delivery_killed:
        return SegmentOutcome(state="watched")
    reason = Reason(
        code=errors.VIDEO_SEGMENT_CRASHED,
        message=f"segment {task.segment + 1} of {task.segments} ended its last delivery without an outcome: "
        "the invocation was killed (out of memory, a crash, or the function's timeout)",
    )
    return _fail(task, settings, deps, Status.FAILED, reason)


@dataclass
class _Shown:
    """The answer for one decoded frame, kept while samples show it."""

    source_frame: int
    predictions: tuple[Prediction, ...]


class _Annotator:
    """Draws and encodes the annotated piece in a thread of its own, so it runs while the segment waits for
    the endpoint and decodes the next frames (Pillow's drawing and x264 leave the GIL). At most
    `QUEUED_FRAMES` frames wait for it: memory stays bounded whatever the segment's length."""

    QUEUED_FRAMES = 8
    _REPEAT = object()  # the last drawn frame again (a frame shown at several samples)

    def __init__(
        self,
        writer: PieceWriter,
        draw: Callable[[Image.Image, tuple[Prediction, ...], tuple[int, int]], Image.Image],
    ) -> None:
        self._writer = writer
        self._draw = draw
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.QUEUED_FRAMES)
        self._error: BaseException | None = None
        self._stopped = threading.Event()
        self.draw_ms = 0.0
        self.video_ms = 0.0
        self.piece = b""
        self._thread = threading.Thread(target=self._work, name="annotate", daemon=True)
        self._thread.start()

    def draw(self, image: Image.Image, predictions: tuple[Prediction, ...], sent: tuple[int, int]) -> None:
        self._put((image, predictions, sent))

    def repeat(self) -> None:
        self._put(self._REPEAT)

    def finish(self) -> bytes:
        """The piece, once every frame is encoded; raises what the thread raised."""
        self._put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.piece

    def close(self) -> None:
        """Stop without finishing (the segment failed): the thread ends, nothing is kept."""
        self._stopped.set()
        with suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout=30)

    def _put(self, item: Any) -> None:
        while True:
            if self._error is not None:
                raise self._error
            if self._stopped.is_set():
                return
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _work(self) -> None:
        last: Image.Image | None = None
        try:
            while not self._stopped.is_set():
                item = self._queue.get()
                if item is None:
                    break
                if item is not self._REPEAT:
                    started = time.perf_counter()
                    last = self._draw(*item)
                    self.draw_ms += (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                assert last is not None  # a repeat follows a drawing
                self._writer.add(last)
                self.video_ms += (time.perf_counter() - started) * 1000
            if not self._stopped.is_set():
                started = time.perf_counter()
                self.piece = self._writer.finish()
                self.video_ms += (time.perf_counter() - started) * 1000
        except BaseException as error:  # handed to the segment's thread, raised there
            self._error = error
            self._stopped.set()


def _run_segment(
    task: SegmentTask, settings: VideoProcessingSettings, deps: VideoCollaborators, deadline: float | None
) -> SegmentOutcome:
    """Sample, infer, draw and encode the segment's frames; write its part and piece."""
    processing = settings.processing
    video = task.video.probe()
    # As for photos: the endpoint gets the frame box-reduced as long as it keeps 3/4 of its side (the models
    # look at 128-256 px); the drawing gets its own side. One conversion serves both.
    decode_side = max(
        settings.annotated_max_side, math.ceil(processing.max_side_for_inference * MIN_SENT_FRACTION)
    )
    drawing_size = fit_size(fit_size((video.width, video.height), decode_side), settings.annotated_max_side)
    timings = _Timings(deps.clock)
    lines: list[FrameLine] = []
    annotator = _Annotator(
        PieceWriter(fps=task.sampling, size=drawing_size),
        lambda image, predictions, sent: _drawn(image, predictions, sent, drawing_size, processing),
    )
    shown: _Shown | None = None
    inferences, inference_ms, bytes_sent = 0, 0.0, 0
    size = task.source.size
    if size is None:
        size = deps.objects.head(task.source.bucket, task.source.key, version_id=task.source.version_id).size
    try:
        with deps.sources.open(task.source, size) as reader:
            samples = sample_frames(
                reader, video, fps=task.sampling, first=task.first, stop=task.stop, max_side=decode_side
            )
            for sample in timings.iterate("decode", samples):
                if shown is not None and shown.source_frame == sample.source_frame:
                    annotator.repeat()
                else:
                    if deadline is not None and deps.clock() > deadline:
                        raise errors.TransientError(
                            errors.VIDEO_SEGMENT_TIMEOUT,
                            f"segment {task.segment + 1} of {task.segments} ran out of time "
                            f"at sample {sample.index}",
                        )
                    with timings.stage("encode"):
                        sent = shrink_for_sending(sample.image, processing.max_side_for_inference)
                        jpeg = encode_jpeg(sent, quality=processing.inference_jpeg_quality)
                    answer = deps.predictor.predict(jpeg, deadline=deadline)
                    inferences += 1
                    inference_ms += answer.elapsed_ms
                    bytes_sent += answer.bytes_sent
                    annotator.draw(sample.image, answer.predictions, sent.size)
                    to_video = (video.width / sent.width, video.height / sent.height)
                    shown = _Shown(sample.source_frame, tuple(rescale(answer.predictions, *to_video)))
                lines.append(
                    FrameLine(
                        frame=sample.index, time_seconds=sample.time_seconds, predictions=shown.predictions
                    )
                )
        with timings.stage("video"):  # the annotator's remaining work
            piece_bytes = annotator.finish()
    finally:
        annotator.close()
    timings.ms["draw"] = round(annotator.draw_ms, TIMING_DECIMALS)
    timings.ms["video_encode"] = round(annotator.video_ms, TIMING_DECIMALS)
    with timings.stage("put"):
        _put_work(task, settings, deps, _part_name(task.segment), encode_part(lines), FRAMES_CONTENT_TYPE)
        _put_work(task, settings, deps, _piece_name(task.segment), piece_bytes, VIDEO_CONTENT_TYPE)
    counts, detections, keypoints = summarize([p for line in lines for p in line.predictions])
    timings.ms["inference"] = round(inference_ms, TIMING_DECIMALS)
    return SegmentOutcome(
        state="recorded",
        frames=len(lines),
        inferences=inferences,
        inference_ms=inference_ms,
        bytes_sent=bytes_sent,
        counts=counts,
        detections=detections,
        keypoints=keypoints,
        timings_ms=timings.ms,
    )


def _drawn(
    image: Image.Image,
    predictions: tuple[Prediction, ...],
    sent: tuple[int, int],
    size: tuple[int, int],
    processing: ProcessingSettings,
) -> Image.Image:
    canvas = image if image.size == size else image.resize(size, Image.Resampling.BILINEAR)
    on_canvas = tuple(rescale(predictions, canvas.width / sent[0], canvas.height / sent[1]))
    keypoints = max((len(p.keypoints) for p in on_canvas), default=0)
    return draw_annotations(
        canvas,
        on_canvas,
        skeleton=resolve_skeleton(processing.skeleton, keypoints),
        keypoint_threshold=processing.keypoint_draw_threshold,
    )


def _segment_summary(outcome: SegmentOutcome) -> SegmentSummary:
    return SegmentSummary(
        frames=outcome.frames,
        detections=outcome.detections,
        keypoints=outcome.keypoints,
        counts=outcome.counts,
        timings_ms=outcome.timings_ms,
    )


# ---------------------------------------------------------------------------------------------- finishing


def _finish(
    task: SegmentTask,
    state: VideoState,
    settings: VideoProcessingSettings,
    deps: VideoCollaborators,
    outcome: SegmentOutcome,
) -> SegmentOutcome:
    """Every segment is recorded: join the parts and pieces, record the final state, publish its event."""
    processing = settings.processing
    started = deps.clock()
    segments = [state.segments[index] for index in range(task.segments)]
    frames = sum(segment.frames for segment in segments)
    if frames == 0:
        reason = Reason(code=errors.VIDEO_NO_FRAMES, message="no frame of the video could be sampled")
        return _fail(task, settings, deps, Status.FAILED, reason)
    bucket = _output_bucket(task, processing)
    parts = [_get_work(task, settings, deps, _part_name(index)) for index in range(task.segments)]
    frames_ref = ObjectRef(bucket=bucket, key=frames_key(processing, task.result_id, task.run))
    deps.objects.put(
        bucket, frames_ref.key, join_parts(parts), content_type=FRAMES_CONTENT_TYPE, metadata=_metadata(task)
    )
    first_samples = _first_samples(segments)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "annotated.mp4"
        join_pieces(
            (
                (first_samples[index], _get_work(task, settings, deps, _piece_name(index)))
                for index in range(task.segments)
            ),
            task.sampling,
            path,
        )
        annotated = ObjectRef(bucket=bucket, key=annotated_video_key(task.source.key, processing, task.run))
        deps.objects.put(
            bucket,
            annotated.key,
            path.read_bytes(),
            content_type=VIDEO_CONTENT_TYPE,
            metadata=_metadata(task),
        )
    counts: dict[str, int] = {}
    for segment in segments:
        for name, count in segment.counts.items():
            counts[name] = counts.get(name, 0) + count
    timings = dict(state.record.timings_ms)
    for segment in segments:
        for stage, ms in segment.timings_ms.items():
            timings[stage] = round(timings.get(stage, 0.0) + ms, TIMING_DECIMALS)
    timings["finish"] = _ms(deps.clock() - started)
    video = state.record.video
    assert video is not None  # a video's processing item always has it
    record = msgspec.structs.replace(
        state.record,
        status=Status.SUCCEEDED,
        reason=None,
        video=msgspec.structs.replace(
            video, frames=frames, segments_done=task.segments, frames_ref=frames_ref
        ),
        counts=counts,
        detections=sum(segment.detections for segment in segments),
        keypoints=sum(segment.keypoints for segment in segments),
        timings_ms=timings,
        annotated=annotated,
        updated_at=deps.now(),
    )
    write, published = _record_final(record, task, deps)
    if write.written:
        for index in range(task.segments):
            _delete_work(task, settings, deps, index)
    return replace(outcome, record=write.record if write.written else None, event_published=published)


def _first_samples(segments: list[SegmentSummary]) -> list[int]:
    """Each segment's first sample index: the plan's, rebuilt from the frames each recorded (a segment
    holds every sample of its range, in order)."""
    firsts, index = [], 0
    for segment in segments:
        firsts.append(index)
        index += segment.frames
    return firsts


def _fail(
    task: SegmentTask,
    settings: VideoProcessingSettings,
    deps: VideoCollaborators,
    status: Status,
    reason: Reason,
) -> SegmentOutcome:
    """Record the video's failure (or skip) for this run, unless it has a final state already."""
    state = deps.videos.read(task.result_id)
    if state is None or not state.belongs_to(task.run) or not state.processing:
        return SegmentOutcome(
            state="stale" if state is None or not state.belongs_to(task.run) else "already_recorded"
        )
    record = msgspec.structs.replace(
        state.record,
        status=status,
        reason=reason,
        counts={},
        detections=0,
        keypoints=0,
        updated_at=deps.now(),
    )
    write, published = _record_final(record, task, deps)
    if write.written:
        for index in range(task.segments):
            _delete_work(task, settings, deps, index)
    return SegmentOutcome(
        state="failed", record=write.record if write.written else None, event_published=published
    )


def _record_final(record: ResultRecord, task: SegmentTask, deps: VideoCollaborators) -> tuple[Write, bool]:
    write = deps.videos.finish(record, order=task.order, run=task.run, track_event=deps.events is not None)
    if not (write.written and write.event_owed and deps.events is not None):
        return write, False
    deps.events.publish(result_event_detail(write.record))
    deps.videos.settle(write)
    return write, True


def _publish_owed(state: VideoState, deps: VideoCollaborators) -> bool:
    """A final state whose event its writer could not publish (it died, or EventBridge refused): publish."""
    if not state.event_owed or deps.events is None or state.order is None:
        return False
    deps.events.publish(result_event_detail(state.record))
    deps.videos.settle(Write(written=True, record=state.record, order=state.order, event_owed=True))
    return True


# ---------------------------------------------------------------------------------------------- helpers


def _summary(video: VideoProbe, fps: Fraction, *, frames: int, segments: int) -> VideoSummary:
    return VideoSummary(
        duration_seconds=round(float(video.duration), 3),
        fps_sampled=float(fps),
        frames=frames,
        width=video.width,
        height=video.height,
        segments=segments,
        segments_done=0,
    )


def _video_record(
    result_id: str,
    source: SourceObject,
    settings: VideoProcessingSettings,
    status: Status,
    reason: Reason | None,
    video: VideoSummary | None,
    created_at: datetime,
    now: datetime,
    timings: dict[str, float],
) -> ResultRecord:
    return ResultRecord(
        result_id=result_id,
        status=status,
        reason=reason,
        source=source,
        model_id=settings.processing.model_id,
        fingerprint=settings.processing.fingerprint,
        media_type="video",
        video=video,
        timings_ms=timings,
        created_at=created_at,
        updated_at=now,
    )


def _output_bucket(task: SegmentTask, processing: ProcessingSettings) -> str:
    return processing.output_bucket or task.source.bucket


def _metadata(task: SegmentTask) -> dict[str, str]:
    return {"source-bucket": task.source.bucket, "source-key": task.source.key, "result-id": task.result_id}


def _put_work(
    task: SegmentTask,
    settings: VideoProcessingSettings,
    deps: VideoCollaborators,
    name: str,
    body: bytes,
    content_type: str,
) -> None:
    processing = settings.processing
    key = work_key(processing, task.result_id, task.run, name)
    deps.objects.put(
        _output_bucket(task, processing), key, body, content_type=content_type, metadata=_metadata(task)
    )


def _get_work(
    task: SegmentTask, settings: VideoProcessingSettings, deps: VideoCollaborators, name: str
) -> bytes:
    processing = settings.processing
    key = work_key(processing, task.result_id, task.run, name)
    return deps.objects.get(_output_bucket(task, processing), key, max_bytes=MAX_WORK_OBJECT_BYTES)


def _delete_work(
    task: SegmentTask, settings: VideoProcessingSettings, deps: VideoCollaborators, index: int
) -> None:
    """Best effort: a segment's part and piece (an orphan costs storage, not correctness)."""
    processing = settings.processing
    for name in (_part_name(index), _piece_name(index)):
        with suppress(errors.ProcessingError):
            deps.objects.delete(
                _output_bucket(task, processing), work_key(processing, task.result_id, task.run, name)
            )


def _internal(error: Exception) -> Reason:
    return Reason(code=errors.INTERNAL_ERROR, message=redact(f"{type(error).__name__}: {error}")[:500])


def _ms(seconds: float) -> float:
    return round(seconds * 1000, TIMING_DECIMALS)


class _Timings:
    """Milliseconds per stage, summed over a segment's frames."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.ms: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.ms[stage] = round(self.ms.get(stage, 0.0) + seconds * 1000, TIMING_DECIMALS)

    @contextmanager
    def stage(self, stage: str) -> Iterator[None]:
        started = self._clock()
        try:
            yield
        finally:
            self.add(stage, self._clock() - started)

    def iterate(self, stage: str, items: Iterator[_T]) -> Iterator[_T]:
        """`items`, the time spent producing each (decoding) added to `stage`."""
        while True:
            started = self._clock()
            try:
                item = next(items)
            except StopIteration:
                self.add(stage, self._clock() - started)
                return
            self.add(stage, self._clock() - started)
            yield item
