"""Video Lambda: an uploaded video -> keypoints on every sampled frame, one result per video.

One queue feeds it two kinds of message (docs/videos.md):
- S3 notifications for the video suffixes: the *planner* probes the video, records it `processing` and
  sends one segment task per `VIDEO_SEGMENT_SECONDS` of video back to the same queue (the fan-out);
- segment tasks (`s3kp_core.video_tasks`): each samples its frames, infers, writes its part, and the one
  that records the last segment finishes the video;
- segment watches: a segment's last delivery sends one, delayed past its own end, which records the video's
  failure if that delivery was killed without an outcome (`video_processing.watch_segment`).

Messages are handled as the ingest function handles its own (`sqs_retries`, the same module): a lease while
the invocation runs, a backoff for transient failures, a deferral (never a failure) for a duplicate still
in progress elsewhere and for a segment waiting out an inference endpoint outage, for as long as the queue
would keep it. Both kinds are idempotent (Powertools Idempotency): the planner per object version and
fingerprint, as an image; a segment per run and index.
"""

from __future__ import annotations

from s3kp_core import cold_start  # first: it makes the imports below cheaper

# isort: split
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import cache
from typing import Any

import msgspec
import video_dependencies
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS, DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from ingest_settings import resolve_api_key
from s3_events import (
    IDEMPOTENCY_KEY_JMESPATH,
    MalformedNotification,
    Notification,
    parse_json_notification,
    parse_notification,
    work_unit,
)
from s3kp_core import redact
from s3kp_core.errors import EndpointUnavailable, TransientError
from s3kp_core.observability import logger, metrics, tracer
from s3kp_core.processing import ObjectEvent
from s3kp_core.results import ResultRecord
from s3kp_core.video_processing import (
    PlanOutcome,
    SegmentOutcome,
    plan_video,
    process_segment,
    watch_segment,
)
from s3kp_core.video_tasks import MalformedTask, SegmentTask, decode_task, is_task
from sqs_retries import (
    LEASE_MARGIN_SECONDS,
    SQS_MAX_DELAY_SECONDS,
    MessageVisibility,
    defer_duplicate,
    defer_for_outage,
    outage_deferrable,
    process_leased_batch,
    queue_url_from_arn,
)
from video_dependencies import collaborators, idempotency_store, sqs_client, video_processing_settings

# Kept back from a segment's deadline for writing its part and piece and, for the last, finishing the video
# (a quarter of the time when the function has less than four times this).
RESERVED_SECONDS = 60.0
SEGMENT_KEY_JMESPATH = "[result_id, run, segment]"


class InProgressElsewhere(Exception):
    """Another invocation holds this unit's in-progress record; the message is deferred, not failed."""

    def __init__(self, seconds_left: float | None) -> None:
        super().__init__("this unit is being processed by another invocation")
        self.seconds_left = seconds_left


def _count_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    logger.info("duplicate message: this unit was already processed", previous=response)
    metrics.add_metric(name="DuplicateEvents", unit=MetricUnit.Count, value=1)
    return response


settings = video_dependencies.settings()  # validated once per container: a bad variable fails the cold start
deferrals = settings.deferral_settings()  # when a message waits rather than fails (sqs_retries)
redact.install(logger)
plan_config = IdempotencyConfig(
    response_hook=_count_duplicate,
    event_key_jmespath=IDEMPOTENCY_KEY_JMESPATH,  # an upload's version under a fingerprint, as for images
    raise_on_no_idempotency_key=True,
    expires_after_seconds=settings.idempotency_ttl_seconds,
)
segment_config = IdempotencyConfig(
    response_hook=_count_duplicate,
    event_key_jmespath=SEGMENT_KEY_JMESPATH,
    raise_on_no_idempotency_key=True,
    expires_after_seconds=settings.idempotency_ttl_seconds,
)
batch_processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    plan_config.register_lambda_context(context)
    segment_config.register_lambda_context(context)
    records = event.get("Records") or []
    if records and records[0].get("eventSource") == "aws:sqs":
        return handle_sqs_batch(event, context)
    return handle_s3_event(event, context)


def _message_visibility() -> MessageVisibility:
    return MessageVisibility(
        sqs_client(),
        base_delay=settings.retry_base_delay_seconds,
        max_delay=settings.retry_max_delay_seconds,
        log=logger,
    )


def handle_sqs_batch(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    response: Mapping[str, Any] = process_leased_batch(
        event,
        context,
        visibility=_message_visibility(),
        processor=batch_processor,
        record_handler=handle_sqs_record,
    )
    return response


def handle_sqs_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    receive_count = int(record.attributes.approximate_receive_count or 1)
    final_attempt = receive_count >= settings.max_receive_count
    deferrable = outage_deferrable(record, time.time() * 1000, deferrals)
    queue_url = settings.segment_queue_url or queue_url_from_arn(record.event_source_arn)
    try:
        if is_task(record.body):
            _segment_message(
                record,
                lambda_context,
                final_attempt=final_attempt,
                deferrable=deferrable,
                queue_url=queue_url,
            )
        else:
            _notification_message(record, lambda_context, final_attempt=final_attempt, queue_url=queue_url)
    except InProgressElsewhere as busy:
        if not defer_duplicate(_message_visibility(), record, busy.seconds_left, deferrals):
            raise
    except EndpointUnavailable as outage:
        if not defer_for_outage(
            _message_visibility(),
            record,
            outage,
            deferrable=deferrable,
            settings=deferrals,
            add_metric=metrics.add_metric,
        ):
            raise


def _notification_message(
    record: SQSRecord, context: LambdaContext, *, final_attempt: bool, queue_url: str
) -> None:
    try:
        notification = parse_json_notification(record.body)
    except MalformedNotification as error:
        _drop(record, str(error))
        return
    _plan_notification(notification, context, final_attempt=final_attempt, queue_url=queue_url)


def _segment_message(
    record: SQSRecord, context: LambdaContext, *, final_attempt: bool, deferrable: bool, queue_url: str
) -> None:
    try:
        task = decode_task(record.body)
    except MalformedTask as error:
        _drop(record, str(error))
        return
    logger.set_correlation_id(task.source.key)
    logger.append_keys(bucket=task.source.bucket, object_key=task.source.key, segment=task.segment)
    try:
        if task.watch:
            _watch_segment(task, queue_url)
            return
        if final_attempt:
            _send_watch(task, context, queue_url)
        _idempotent(process_segment_once, segment_config, "segment")(
            unit=_segment_unit(task),
            task=task,
            context=context,
            final_attempt=final_attempt,
            deferrable=deferrable,
        )
    except IdempotencyAlreadyInProgressError:
        raise InProgressElsewhere(
            _in_progress_seconds_left(process_segment_once, segment_config, "segment", _segment_unit(task))
        ) from None
    except TransientError as error:
        _transient(error)
        raise
    finally:
        logger.remove_keys(["bucket", "object_key", "segment"])


def _drop(record: SQSRecord, why: str) -> None:
    """Nothing to record a state against, and a retry cannot fix it: log, count, drop."""
    logger.warning("dropping a message that is neither an S3 notification nor a segment task",
                   message_id=record.message_id, error=why)  # fmt: skip
    metrics.add_metric(name="MalformedMessages", unit=MetricUnit.Count, value=1)


def handle_s3_event(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A direct S3 notification (`sam local invoke`): plan; the segments go to SEGMENT_QUEUE_URL."""
    if not settings.segment_queue_url:
        raise RuntimeError("a direct S3 event needs SEGMENT_QUEUE_URL: the queue segment tasks are sent to")
    notification = parse_notification(event)
    _plan_notification(notification, context, final_attempt=False, queue_url=settings.segment_queue_url)
    return {"planned": len(notification.objects)}


def _plan_notification(
    notification: Notification, context: LambdaContext, *, final_attempt: bool, queue_url: str
) -> None:
    if notification.is_test_event:
        logger.info("ignoring S3 test event")
        metrics.add_metric(name="IgnoredEvents", unit=MetricUnit.Count, value=1)
        return
    for event_name in notification.ignored_event_names:
        logger.info("ignoring a notification that is not ObjectCreated", event_name=event_name)
        metrics.add_metric(name="IgnoredEvents", unit=MetricUnit.Count, value=1)
    for event in notification.objects:
        source = event.source
        logger.set_correlation_id(source.key)
        logger.append_keys(bucket=source.bucket, object_key=source.key, event_name=event.event_name)
        unit = work_unit(event, settings.fingerprint)
        try:
            _idempotent(plan_once, plan_config, "plan")(
                unit=unit,
                event=replace(event, final_attempt=final_attempt),
                context=context,
                queue_url=queue_url,
            )
        except IdempotencyAlreadyInProgressError:
            raise InProgressElsewhere(
                _in_progress_seconds_left(plan_once, plan_config, "plan", unit)
            ) from None
        except TransientError as error:
            _transient(error)
            raise
        finally:
            logger.remove_keys(["bucket", "object_key", "event_name"])


def _transient(error: TransientError) -> None:
    logger.warning("transient failure: the message will be retried", reason=str(error), detail=error.detail)
    metrics.add_metric(name="TransientFailures", unit=MetricUnit.Count, value=1)


@cache
def _idempotent(
    function: Callable[..., dict[str, Any]], config: IdempotencyConfig, unit: str
) -> Callable[..., dict[str, Any]]:
    """`function` behind Powertools idempotency, keyed on its `unit` argument; built on the first message.
    The records' keys are `{function name}.video_handler.{function}#{hash}`."""
    decorate = idempotent_function(
        data_keyword_argument="unit", persistence_store=idempotency_store(settings, unit), config=config
    )
    wrapped: Callable[..., dict[str, Any]] = decorate(function)
    return wrapped


def _segment_unit(task: SegmentTask) -> dict[str, Any]:
    return {"result_id": task.result_id, "run": task.run, "segment": task.segment}


def _in_progress_seconds_left(
    function: Callable[..., Any], config: IdempotencyConfig, unit: str, data: dict[str, Any]
) -> float | None:
    """How long the other invocation's in-progress record of this unit can still last (its deadline)."""
    try:
        record = _idempotency_record(function, config, unit, data)
    except Exception:  # unreadable: the caller uses a bound
        return None
    expiry = record.in_progress_expiry_timestamp if record is not None else None
    return None if expiry is None else max(0.0, float(expiry) / 1000 - time.time())


def _idempotency_record(
    function: Callable[..., Any], config: IdempotencyConfig, unit: str, data: dict[str, Any]
) -> DataRecord | None:
    """`function`'s Powertools idempotency record for `data` (see `_idempotent`), or None."""
    store = idempotency_store(settings, unit)
    # Keys name the decorated function: configured here too, for a container that has not called it yet
    # (its first message is a watch).
    store.configure(config, function_name=f"{function.__module__}.{function.__qualname__}")
    try:
        return store.get_record(data=data)
    except IdempotencyItemNotFoundError:
        return None


def _send_watch(task: SegmentTask, context: LambdaContext, queue_url: str) -> None:
    """The segment's last delivery: a watch, due once this invocation has ended however it ends (a lease's
    margin after its deadline, at most SQS's 900 s: a later end finds its record still in progress and the
    watch waits). Best effort: without it, a killed delivery is left to the video DLQ's alarm."""
    delay = min(
        SQS_MAX_DELAY_SECONDS, round(context.get_remaining_time_in_millis() / 1000) + LEASE_MARGIN_SECONDS
    )
    try:
        segments = collaborators(settings, resolve_api_key(settings), queue_url).segments
        segments.send([msgspec.structs.replace(task, watch=True)], delay_seconds=delay)
    except Exception as error:
        logger.warning("could not send the segment's watch", error=f"{type(error).__name__}: {error}")
        return
    logger.info("last delivery of a segment: its watch is due later", watch_in_seconds=delay)


def _watch_segment(task: SegmentTask, queue_url: str) -> None:
    """After the segment's last delivery: was it killed without an outcome? (see `watch_segment`)"""
    previous = _idempotency_record(process_segment_once, segment_config, "segment", _segment_unit(task))
    killed = previous is not None and previous.status == STATUS_CONSTANTS["INPROGRESS"]
    if killed and previous is not None:
        expiry = previous.in_progress_expiry_timestamp
        seconds_left = None if expiry is None else float(expiry) / 1000 - time.time()
        if seconds_left is None or seconds_left > 0:  # still running (or unknown): look again after it
            raise InProgressElsewhere(seconds_left)
    deps = collaborators(settings, resolve_api_key(settings), queue_url)
    outcome = watch_segment(
        task, settings=video_processing_settings(settings), deps=deps, last_delivery_killed=killed
    )
    logger.info("segment watched", segment=task.segment, last_delivery_killed=killed, state=outcome.state)
    if outcome.record is not None:
        _log_video(outcome.record)
    if outcome.event_published:
        metrics.add_metric(name="ResultEventsPublished", unit=MetricUnit.Count, value=1)


def plan_once(
    *, unit: dict[str, Any], event: ObjectEvent, context: LambdaContext, queue_url: str
) -> dict[str, Any]:
    """Runs once per upload version and fingerprint (see `s3_events.work_unit`)."""
    deps = collaborators(settings, resolve_api_key(settings), queue_url)
    started = time.perf_counter()
    outcome = plan_video(event, settings=video_processing_settings(settings), deps=deps)
    _log_plan(outcome, time.perf_counter() - started)
    record = outcome.record
    return {
        "result_id": record.result_id if record else None,
        "status": record.status.value if record else (outcome.start.value if outcome.start else None),
        "segments": outcome.segments,
    }


def process_segment_once(
    *, unit: dict[str, Any], task: SegmentTask, context: LambdaContext, final_attempt: bool, deferrable: bool
) -> dict[str, Any]:
    """Runs once per segment of a run (`SEGMENT_KEY_JMESPATH`)."""
    queue_url = settings.segment_queue_url or ""
    deps = collaborators(settings, resolve_api_key(settings), queue_url)
    remaining = context.get_remaining_time_in_millis() / 1000
    deadline = deps.clock() + remaining - min(RESERVED_SECONDS, remaining / 4)
    started = time.perf_counter()
    outcome = _traced_segment(task, deps, deadline, final_attempt, deferrable)
    _log_segment(task, outcome, time.perf_counter() - started)
    return {"result_id": task.result_id, "segment": task.segment, "state": outcome.state}


@tracer.capture_method(capture_response=False)
def _traced_segment(
    task: SegmentTask, deps: Any, deadline: float, final_attempt: bool, deferrable: bool
) -> SegmentOutcome:
    return process_segment(
        task,
        settings=video_processing_settings(settings),
        deps=deps,
        deadline=deadline,
        final_attempt=final_attempt,
        outage_deferrable=deferrable,
    )


def _log_plan(outcome: PlanOutcome, seconds: float) -> None:
    record = outcome.record
    logger.info(
        "video planned",
        start=outcome.start.value if outcome.start else None,
        status=record.status.value if record else None,
        reason=msgspec.structs.asdict(record.reason) if record and record.reason else None,
        segments=outcome.segments,
        elapsed_ms=round(seconds * 1000, 1),
    )
    if record is not None and record.reason is not None:
        _count_video(record)
    if outcome.event_published:
        metrics.add_metric(name="ResultEventsPublished", unit=MetricUnit.Count, value=1)


def _log_segment(task: SegmentTask, outcome: SegmentOutcome, seconds: float) -> None:
    logger.info(
        "segment processed",
        segment=task.segment,
        segments=task.segments,
        state=outcome.state,
        frames=outcome.frames,
        inferences=outcome.inferences,
        timings_ms=outcome.timings_ms,
        elapsed_ms=round(seconds * 1000, 1),
    )
    metrics.add_metric(name="VideoFrames", unit=MetricUnit.Count, value=outcome.frames)
    if outcome.inferences:
        metrics.add_metric(
            name="InferenceLatency",
            unit=MetricUnit.Milliseconds,
            value=outcome.inference_ms / outcome.inferences,
        )
    if outcome.record is not None:
        _log_video(outcome.record)
    if outcome.event_published:
        metrics.add_metric(name="ResultEventsPublished", unit=MetricUnit.Count, value=1)


def _log_video(record: ResultRecord) -> None:
    logger.info(
        "video processed",
        status=record.status.value,
        reason=msgspec.structs.asdict(record.reason) if record.reason else None,
        frames=record.video.frames if record.video else 0,
        detections=record.detections,
    )
    _count_video(record)


def _count_video(record: ResultRecord) -> None:
    with single_metric(
        name="VideosProcessed",
        unit=MetricUnit.Count,
        value=1,
        namespace=metrics.namespace,
        default_dimensions=metrics.default_dimensions,
    ) as metric:
        metric.add_dimension(name="status", value=record.status.value)


cold_start.imports_done()
