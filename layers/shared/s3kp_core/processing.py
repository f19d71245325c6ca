"""The per-object flow: guard, read, prepare, infer, rescale, annotate, store. No AWS event shapes.

Every collaborator with I/O is injected (object store, predictor, results store, clocks), so unit tests
pass small fakes. Every object ends in exactly one recorded state:
- `succeeded`, `failed` (PermanentError) or `skipped` (Skipped) are written at once;
- a TransientError is raised without a record so the queue redelivers the message, except on the last
  delivery the queue allows (`final_attempt`): then `failed` is recorded with the transient reason
  (e.g. `object_read_failed`) *and* the error is re-raised, so the message still reaches the
  dead-letter queue; a redrive that later succeeds overwrites the record (same event order);
- an `EndpointUnavailable` (the inference endpoint's fault) is not recorded even then while the event is
  `outage_deferrable`: the handler defers the message to wait for the endpoint instead of failing it.

Once a state is recorded, its result event is published (`deps.events`) when the write changed the state
or an earlier delivery still owes it; a publisher that keeps failing raises TransientError, which leaves
the recorded result as it is and gets the message retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
from PIL import Image

from s3kp_core import errors
from s3kp_core.annotate import draw_annotations, resolve_skeleton
from s3kp_core.imaging import encode_jpeg, prepare_for_inference
from s3kp_core.memory import MemoryBudget, Reservation
from s3kp_core.objects import ObjectStore
from s3kp_core.ordering import event_order, event_token
from s3kp_core.predictor import InferenceResult, Predictor
from s3kp_core.redact import redact
from s3kp_core.rescale import rescale
from s3kp_core.result_events import EventPublisher, result_event_detail
from s3kp_core.results import (
    ImageSize,
    ObjectRef,
    Prediction,
    Reason,
    ResultRecord,
    SourceObject,
    Status,
    result_id_for,
    summarize,
    utc_now,
)
from s3kp_core.results_store import ResultsStore, Write

ANNOTATED_CONTENT_TYPE = "image/jpeg"
ANNOTATED_JPEG_QUALITY = 88
# Every `timings_ms` value is in milliseconds rounded to the microsecond: finer digits are clock noise
# that only bloats the item and the log line.
TIMING_DECIMALS = 3


@dataclass(frozen=True, kw_only=True)
class ProcessingSettings:
    """Derived from the ingest function's validated settings, where every default is declared
    (`IngestSettings.processing_settings()`); the variable each field comes from is in docs/settings.md."""

    model_id: str
    fingerprint: str | None  # s3kp_core.fingerprint of the model and its inference settings
    input_prefix: str
    output_prefix: str
    predictions_prefix: str
    output_bucket: str | None  # None: the source object's bucket
    max_object_bytes: int
    max_image_pixels: int
    max_side_for_inference: int
    annotated_max_side: int
    skeleton: str
    keypoint_draw_threshold: float
    inference_jpeg_quality: int = 90  # not a setting: the sent JPEG's quality, see docs/benchmarks.md


@dataclass(frozen=True)
class Collaborators:
    objects: ObjectStore
    predictor: Predictor
    results: ResultsStore
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = utc_now
    events: EventPublisher | None = None  # None: no result events
    # What records processed in parallel may hold at once (s3kp_core.memory): the downloaded objects'
    # bytes and the decoded pixels. Unbounded unless the caller shares budgets between its records.
    object_budget: MemoryBudget = field(default_factory=lambda: MemoryBudget(None, name="objects"))
    pixel_budget: MemoryBudget = field(default_factory=lambda: MemoryBudget(None, name="pixels"))


@dataclass(frozen=True)
class ObjectEvent:
    """What the flow needs from one notification record."""

    source: SourceObject
    event_time: datetime | None = None
    final_attempt: bool = False
    # Sent by `s3kp backfill` about the object's current version, without an S3 sequencer of its own.
    replay: bool = False
    # The notification's name for what happened (e.g. `ObjectCreated:Put`): for logs, not for the flow.
    event_name: str | None = None
    # The handler will defer the message if the endpoint is unavailable (it is young enough for the queue
    # to keep it): such a failure is never the object's final state, whatever the delivery count says.
    outage_deferrable: bool = False
    # A replay that asks to run again although this version was processed (`s3kp backfill --only-failed`):
    # not for the flow either; the handler makes it part of the idempotency key.
    rerun: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened: the record written (None when the event was stale) and figures for metrics."""

    record: ResultRecord | None
    stale: bool = False
    bytes_sent: int = 0
    inference_ms: float | None = None
    inference_attempts: int = 0
    write_ms: float = 0.0
    event_published: bool = False


@dataclass
class _Progress:
    """What a run has learnt so far: kept for the record even when a later stage fails."""

    timings_ms: dict[str, float] = field(default_factory=dict)
    image: ImageSize | None = None
    inference: InferenceResult | None = None


def annotated_key(source_key: str, settings: ProcessingSettings, token: str) -> str:
    """`annotated/<source key without the input prefix>.<event token>.jpg`.

    The whole relative key is kept, extension included and never normalised (`x.png` and `x.jpg`, `a//x`
    and `a/./x` are different objects), so each source key has its own drawings; the event token (see
    `ordering.event_token`) makes each event's drawing its own object, so a stale event can never
    replace a newer drawing and a result always points at the drawing made for it.
    """
    relative = source_key.removeprefix(settings.input_prefix) if settings.input_prefix else source_key
    return f"{settings.output_prefix}{relative}.{token}.jpg"


def process_object(
    event: ObjectEvent, *, settings: ProcessingSettings, deps: Collaborators, deadline: float | None = None
) -> Outcome:
    """Run the flow for one object and record its state; `deadline` is a `deps.clock` time."""
    started = deps.clock()
    source = event.source
    result_id = result_id_for(source.bucket, source.key)
    order = event_order(source.sequencer, event.event_time, deps.now())
    stored = deps.results.stored_state(result_id)
    if event.replay and stored is not None and stored.event_order is not None:
        # A replay describes the object as it is now, which is at least as new as what is stored: it takes
        # the stored token, so it replaces that result, while a newer upload's result, written meanwhile
        # with a larger token, makes this write stale (S3 sequencers belong to S3; we cannot mint one).
        order = stored.event_order
    if stored is not None and stored.event_order is not None and stored.event_order > order:
        return Outcome(record=None, stale=True)  # cheap early exit; `save` re-checks atomically
    created_at = stored.created_at if stored is not None and stored.created_at else deps.now()
    # This very event's result is stored already (a retry after a failed publish or a crash after the
    # write; a replay, which took the stored order): a failure on its last delivery must not replace it.
    record_failure = event.final_attempt and not (stored is not None and stored.event_order == order)
    progress = _Progress()

    def record_of(
        status: Status,
        reason: Reason | None,
        predictions: tuple[Prediction, ...] | None,
        annotated: ObjectRef | None,
    ) -> ResultRecord:
        progress.timings_ms["total"] = _ms(deps.clock() - started)
        counts, detections, keypoints = summarize(predictions or ())
        return ResultRecord(
            result_id=result_id,
            status=status,
            reason=reason,
            source=source,
            model_id=settings.model_id,
            fingerprint=settings.fingerprint,
            image=progress.image,
            predictions=predictions,
            counts=counts,
            detections=detections,
            keypoints=keypoints,
            timings_ms=progress.timings_ms,
            annotated=annotated,
            created_at=created_at,
            updated_at=deps.now(),
        )

    try:
        predictions, annotated = _detect(event, result_id, order, progress, settings, deps, deadline)
        record = record_of(Status.SUCCEEDED, None, predictions, annotated)
    except (errors.PermanentError, errors.Skipped) as error:
        if event.replay and stored is not None and error.code == errors.OBJECT_MISSING:
            # Replaced or deleted since the listing: the replay has nothing to say about the stored result.
            return Outcome(record=None, stale=True)
        record = record_of(error.status, error.reason(), None, None)
    except errors.TransientError as error:
        waits = event.outage_deferrable and isinstance(error, errors.EndpointUnavailable)
        if record_failure and not waits:
            record_state(
                record_of(Status.FAILED, error.reason(), None, None), order, deps.results, deps.events
            )
        raise
    except Exception as error:
        # A bug or an unforeseen library error: let the queue retry, but leave a state on the last try.
        if record_failure:
            reason = Reason(
                code=errors.INTERNAL_ERROR, message=redact(f"{type(error).__name__}: {error}")[:500]
            )
            record_state(record_of(Status.FAILED, reason, None, None), order, deps.results, deps.events)
        raise

    write_started = deps.clock()
    write, published = record_state(record, order, deps.results, deps.events)
    if not write.written and record.annotated is not None:
        # A newer event won the guarded write: its result points at its own drawing, and this event's
        # drawing (written first, so a result never points at a missing object) would be an orphan.
        _delete_quietly(deps.objects, record.annotated)
    inference = progress.inference
    return Outcome(
        record=write.record if write.written else None,  # as stored (e.g. predictions moved to S3)
        stale=not write.written,
        bytes_sent=inference.bytes_sent if inference else 0,
        inference_ms=inference.elapsed_ms if inference else None,
        inference_attempts=inference.attempts if inference else 0,
        write_ms=_ms(deps.clock() - write_started),
        event_published=published,
    )


def record_state(
    record: ResultRecord, order: str, results: ResultsStore, events: EventPublisher | None
) -> tuple[Write, bool]:
    """Write the state, then publish its event if one is owed; True when an event went out.

    The publisher raises TransientError when it keeps failing: the result stays recorded and still marked
    as owing its event, so the redelivered message publishes it (even though nothing else changed).
    """
    write = results.write(record, order=order, track_event=events is not None)
    if not (write.written and write.event_owed and events is not None):
        return write, False
    events.publish(result_event_detail(write.record))
    results.settle(write)
    return write, True


def _detect(
    event: ObjectEvent,
    result_id: str,
    order: str,
    progress: _Progress,
    settings: ProcessingSettings,
    deps: Collaborators,
    deadline: float | None,
) -> tuple[tuple[Prediction, ...], ObjectRef]:
    source = event.source
    guard_location(source, settings)
    predictions, annotated_jpeg = _infer_and_draw(event, progress, settings, deps, deadline)
    target = ObjectRef(
        bucket=settings.output_bucket or source.bucket,
        key=annotated_key(source.key, settings, event_token(order, source)),
    )
    with _timed(progress, "put", deps):
        deps.objects.put(
            target.bucket,
            target.key,
            annotated_jpeg,
            content_type=ANNOTATED_CONTENT_TYPE,
            metadata={"source-bucket": source.bucket, "source-key": source.key, "result-id": result_id},
        )
    return predictions, target


def _infer_and_draw(
    event: ObjectEvent,
    progress: _Progress,
    settings: ProcessingSettings,
    deps: Collaborators,
    deadline: float | None,
) -> tuple[tuple[Prediction, ...], bytes]:
    """Download, prepare, infer, draw: the predictions in original pixels and the annotated JPEG.

    The object's bytes are held until the image is prepared, the decoded pixels until the copy is drawn,
    each reserved in its memory budget first (`deps.object_budget`, `deps.pixel_budget`), so records run
    in parallel wait for their turn rather than add up past the function's memory.
    """
    data: bytes | None = None
    decoded: Image.Image | None = None
    with deps.pixel_budget.reservation() as pixels:
        try:
            with deps.object_budget.reservation() as object_bytes:
                data = _download(
                    event.source, progress, settings, deps, replay=event.replay, reserve=object_bytes
                )
                prepared, decoded = prepare_for_inference(
                    data,
                    max_side=settings.max_side_for_inference,
                    max_pixels=settings.max_image_pixels,
                    jpeg_quality=settings.inference_jpeg_quality,
                    # A JPEG may decode at 1/2, 1/4 or 1/8 scale (libjpeg draft) as long as the image keeps
                    # at least half the annotated copy's side: a full decode of a 12 MP photo costs more
                    # than the inference.
                    decode_side=settings.annotated_max_side // 2,
                    reservation=pixels,
                )
                data = None  # gone before its reservation is
            progress.timings_ms.update(prepared.timings_ms)
            progress.image = ImageSize(width=prepared.original_width, height=prepared.original_height)

            inference = deps.predictor.predict(prepared.jpeg, deadline=deadline)
            progress.inference = inference
            progress.timings_ms["inference"] = round(inference.elapsed_ms, TIMING_DECIMALS)
            with _timed(progress, "parse", deps):
                predictions = tuple(rescale(inference.predictions, prepared.scale_x, prepared.scale_y))

            with _timed(progress, "annotate", deps):
                annotated_jpeg = _annotated_jpeg(decoded, predictions, progress.image, settings)
        finally:
            # After a failure the traceback (which Powertools' batch processor keeps until the next batch)
            # holds this frame: it must not keep the pixels alive once their reservation is gone.
            data = decoded = None
    return predictions, annotated_jpeg


def _delete_quietly(objects: ObjectStore, target: ObjectRef) -> None:
    # An orphaned drawing costs storage, not correctness: nothing points at it.
    with suppress(errors.ProcessingError):
        objects.delete(target.bucket, target.key)


def guard_location(source: SourceObject, settings: ProcessingSettings) -> None:
    """Never process our own outputs, even when the bucket notification is wider than it should be.

    Outputs are always written under the output or predictions prefix of the output bucket (which may
    be the source bucket, as in the template), so that is what identifies them.
    """
    output_bucket = settings.output_bucket or source.bucket
    if source.bucket == output_bucket and source.key.startswith(
        (settings.output_prefix, settings.predictions_prefix)
    ):
        raise errors.Skipped(errors.OUTPUT_PREFIX, f"{source.key} is one of this function's outputs")
    if settings.input_prefix and not source.key.startswith(settings.input_prefix):
        raise errors.Skipped(
            errors.OUTSIDE_INPUT_PREFIX, f"{source.key} is not under {settings.input_prefix}"
        )


def _download(
    source: SourceObject,
    progress: _Progress,
    settings: ProcessingSettings,
    deps: Collaborators,
    *,
    replay: bool = False,
    reserve: Reservation | None = None,
) -> bytes:
    """The object's bytes; `reserve` (empty) acquires their size first (its wait counts as download)."""
    with _timed(progress, "download", deps):
        if replay:
            # A replay speaks for the key's current object: read that, by ETag, never an older version by
            # id (it may have been replaced since the listing, and the replay has taken the stored order).
            source = msgspec.structs.replace(source, version_id=None)
        size = source.size
        if size is None:
            size = deps.objects.head(source.bucket, source.key, version_id=source.version_id).size
        guard_size(size, limit=settings.max_object_bytes, setting="MAX_OBJECT_BYTES")
        if reserve is not None:
            reserve.acquire(size)
        data = deps.objects.get(
            source.bucket,
            source.key,
            version_id=source.version_id,
            etag=source.etag,
            max_bytes=settings.max_object_bytes,
        )
    # The event's size may be stale or absent.
    guard_size(len(data), limit=settings.max_object_bytes, setting="MAX_OBJECT_BYTES")
    return data


def guard_size(size: int, *, limit: int, setting: str) -> None:
    """Refuse an empty object, or one over `limit` bytes (the variable `setting` names it in the reason)."""
    if size == 0:
        raise errors.PermanentError(errors.OBJECT_EMPTY, "the object is empty (0 bytes)")
    if size > limit:
        raise errors.PermanentError(
            errors.OBJECT_TOO_LARGE, f"the object is {size} bytes; {setting} is {limit}"
        )


def _annotated_jpeg(
    decoded: Image.Image,
    predictions: tuple[Prediction, ...],
    original: ImageSize,
    settings: ProcessingSettings,
) -> bytes:
    """Draw on the decoded image scaled to ANNOTATED_MAX_SIDE, never upscaled past what was decoded (so a
    large JPEG's copy may be drawn at its draft size, between half and all of ANNOTATED_MAX_SIDE)."""
    scale = min(1.0, settings.annotated_max_side / max(original.width, original.height))
    width = max(1, min(decoded.width, round(original.width * scale)))
    height = max(1, min(decoded.height, round(original.height * scale)))
    canvas = (
        decoded
        if decoded.size == (width, height)
        else decoded.resize((width, height), Image.Resampling.BILINEAR)
    )
    scaled = tuple(rescale(predictions, width / original.width, height / original.height))
    keypoint_count = max((len(p.keypoints) for p in scaled), default=0)
    drawn = draw_annotations(
        canvas,
        scaled,
        skeleton=resolve_skeleton(settings.skeleton, keypoint_count),
        keypoint_threshold=settings.keypoint_draw_threshold,
    )
    return encode_jpeg(drawn, quality=ANNOTATED_JPEG_QUALITY)


@contextmanager
def _timed(progress: _Progress, stage: str, deps: Collaborators) -> Iterator[None]:
    """Records the duration of a `with` block as `progress.timings_ms[stage]`."""
    started = deps.clock()
    try:
        yield
    finally:
        progress.timings_ms[stage] = _ms(deps.clock() - started)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, TIMING_DECIMALS)
