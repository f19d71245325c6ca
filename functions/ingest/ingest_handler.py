"""Ingest Lambda: S3 object created -> keypoints in DynamoDB + an annotated copy in S3.

Two event shapes:
- SQS (production: S3 -> SQS -> Lambda): Powertools `BatchProcessor` with partial batch failures, so
  one failing message is retried alone; up to RECORD_CONCURRENCY messages run at once in threads
  (`record_pool`), so their waits for the endpoint overlap. A message may hold several S3 records; a
  transient failure of any fails the message, and idempotency makes the redelivery skip the records
  already done. The messages' visibility is moved by `sqs_retries`: a lease for the invocation (crash
  backstop), a short exponential backoff for failed ones, and a deferral for duplicates of an object still
  in progress and for messages waiting out an inference endpoint outage (the circuit breaker in
  `s3kp_core.circuit`).
- A plain S3 notification (`sam local invoke`): records are processed in turn; a transient failure is
  re-raised so Lambda's asynchronous retry runs the event again.

Settings are validated at import (cold start): a bad setting fails the first invocation with a message
naming it, instead of failing every object later.

Per record, in its thread: log keys are Powertools' thread-local keys (`thread_safe_append_keys`: the
logger's own keys are shared by every thread), metrics go through `_add_metric` (Powertools' metric set
is not synchronised), and images processed are counted per status and emitted once per invocation.
"""

from __future__ import annotations

from s3kp_core import cold_start  # first: it makes the imports below cheaper

# isort: split
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import replace
from functools import cache
from typing import Any, cast

import ingest_dependencies
import msgspec
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from ingest_dependencies import collaborators, idempotency_store, processing_settings, sqs_client
from ingest_settings import resolve_api_key
from record_pool import ConcurrentBatchProcessor, KeyedLocks, TraceRecorder
from s3_events import (
    IDEMPOTENCY_KEY_JMESPATH,
    MalformedNotification,
    Notification,
    WorkUnit,
    parse_json_notification,
    parse_notification,
    work_unit,
)
from s3kp_core import redact
from s3kp_core.errors import CONFIGURATION_CODES, EndpointUnavailable, TransientError
from s3kp_core.observability import logger, metrics, tracer
from s3kp_core.processing import ObjectEvent, Outcome, process_object
from sqs_retries import (
    MessageVisibility,
    defer_duplicate,
    defer_for_outage,
    outage_deferrable,
    process_leased_batch,
)

# Time kept back from the inference deadline for annotating, writing the copy and the result.
RESERVED_SECONDS = 5.0


class InProgressElsewhere(Exception):
    """Another invocation holds this object version's in-progress record for `seconds_left` more seconds
    (None: unknown); the message is deferred rather than failed (see `sqs_retries`)."""

    def __init__(self, seconds_left: float | None) -> None:
        super().__init__("this object version is being processed by another invocation")
        self.seconds_left = seconds_left


class NotRemembered(Exception):
    """Raised out of the idempotent function after a configuration failure was recorded, so the
    idempotency record is dropped: after fixing the key, re-sending the event processes the object."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _count_duplicate(response: Any, idempotent_data: DataRecord) -> Any:
    """Called when idempotency answers from the table: this object version was already processed."""
    logger.info("duplicate event: this object version was already processed", previous=response)
    _add_metric("DuplicateEvents", MetricUnit.Count, 1)
    return response


settings = ingest_dependencies.settings()  # validated once per container: a bad variable fails the cold start
deferrals = settings.deferral_settings()  # when a message waits rather than fails (sqs_retries)
redact.install(logger)
idempotency_config = IdempotencyConfig(
    response_hook=_count_duplicate,
    # Duplicate S3 events and redelivered messages for one object version collapse into one run.
    event_key_jmespath=IDEMPOTENCY_KEY_JMESPATH,
    raise_on_no_idempotency_key=True,
    expires_after_seconds=settings.idempotency_ttl_seconds,
)
# A batch whose messages all failed is reported like any other (every id listed) rather than raised:
# SQS retries the same messages either way, and the invocation error metric keeps meaning "crashed".
batch_processor = ConcurrentBatchProcessor(
    EventType.SQS,
    max_workers=settings.record_concurrency,
    recorder=cast(TraceRecorder, tracer.provider),
    raise_on_entire_batch_failure=False,
)
_one_copy_at_a_time = KeyedLocks()  # per invocation and object version (see record_pool)
_metrics_lock = threading.Lock()
_images_by_status: Counter[str] = Counter()  # this invocation's ImagesProcessed, per status


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    # Lets an in-progress idempotency record expire with the invocation if Lambda times out.
    idempotency_config.register_lambda_context(context)
    records = event.get("Records") or []
    try:
        if records and records[0].get("eventSource") == "aws:sqs":
            return handle_sqs_batch(event, context)
        return handle_s3_event(event, context)
    finally:
        _emit_image_counts()


def _message_visibility() -> MessageVisibility:
    return MessageVisibility(
        sqs_client(),
        base_delay=settings.retry_base_delay_seconds,
        max_delay=settings.retry_max_delay_seconds,
        log=logger,
    )


def handle_sqs_batch(event: dict[str, Any], context: LambdaContext) -> Mapping[str, Any]:
    _build_shared()
    response: Mapping[str, Any] = process_leased_batch(
        event,
        context,
        visibility=_message_visibility(),
        processor=batch_processor,
        record_handler=handle_sqs_record,
    )
    return response


def _build_shared() -> None:
    """What the records share, built here before they run in parallel (`ingest_dependencies.build_shared`;
    the idempotency decorator and the API key cache are built on first use too). An error is left for each
    record to meet and report, as it would without this."""
    with suppress(Exception):
        ingest_dependencies.build_shared(settings)
        idempotent(process_once)
        collaborators(settings, resolve_api_key(settings))


def handle_sqs_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    # This thread's log keys: a pool thread may have run another message before.
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(message_id=record.message_id)
    try:
        _handle_message(record, lambda_context)
    finally:
        logger.thread_safe_clear_keys()


def _handle_message(record: SQSRecord, lambda_context: LambdaContext) -> None:
    try:
        notification = parse_json_notification(record.body)
    except MalformedNotification as error:
        # Nothing to record a state against and a retry cannot fix it: log, count, drop.
        logger.warning(
            "dropping a message that is not an S3 notification",
            message_id=record.message_id,
            error=str(error),
        )
        _add_metric("MalformedMessages", MetricUnit.Count, 1)
        return
    receive_count = int(record.attributes.approximate_receive_count or 1)
    final_attempt = receive_count >= settings.max_receive_count
    deferrable = outage_deferrable(record, time.time() * 1000, deferrals)
    try:
        _process_notification(
            notification, lambda_context, final_attempt=final_attempt, outage_deferrable=deferrable
        )
    except InProgressElsewhere as busy:
        if not defer_duplicate(_message_visibility(), record, busy.seconds_left, deferrals):
            raise  # a batch item failure: the message comes back after its backoff
    except EndpointUnavailable as outage:
        if not defer_for_outage(
            _message_visibility(),
            record,
            outage,
            deferrable=deferrable,
            settings=deferrals,
            add_metric=_add_metric,
        ):
            raise


def handle_s3_event(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    notification = parse_notification(event)
    _process_notification(notification, context, final_attempt=False, outage_deferrable=False)
    return {"processed": len(notification.objects)}


def _process_notification(
    notification: Notification, context: LambdaContext, *, final_attempt: bool, outage_deferrable: bool
) -> None:
    if notification.is_test_event:
        logger.info("ignoring S3 test event")
        _add_metric("IgnoredEvents", MetricUnit.Count, 1)
        return
    for event_name in notification.ignored_event_names:
        logger.info("ignoring a notification that is not ObjectCreated", event_name=event_name)
        _add_metric("IgnoredEvents", MetricUnit.Count, 1)
    for event in notification.objects:
        source = event.source
        logger.thread_safe_append_keys(
            correlation_id=source.key,
            bucket=source.bucket,
            object_key=source.key,
            event_name=event.event_name,
        )
        unit = work_unit(event, settings.fingerprint)
        try:
            # Keyed by invocation too: another invocation's copy is another container's, in Lambda.
            with _one_copy_at_a_time.hold((context.aws_request_id, *sorted(unit.items()))):
                idempotent(process_once)(
                    unit=unit,
                    event=replace(event, final_attempt=final_attempt, outage_deferrable=outage_deferrable),
                    context=context,
                )
        except IdempotencyAlreadyInProgressError:
            seconds_left = _in_progress_seconds_left(unit)
            logger.info(
                "duplicate event: this object version is in progress in another invocation",
                in_progress_seconds_left=seconds_left,
            )
            _add_metric("DuplicatesInProgress", MetricUnit.Count, 1)
            raise InProgressElsewhere(seconds_left) from None
        except NotRemembered as outcome:
            logger.info(
                "failure recorded; not remembered as processed, so a re-sent event runs again",
                reason=outcome.code,
            )
        except TransientError as error:
            logger.warning(
                "transient failure: the message will be retried", reason=str(error), detail=error.detail
            )
            _add_metric("TransientFailures", MetricUnit.Count, 1)
            raise
        finally:
            # The correlation id stays for the message's last lines (a deferral, say).
            logger.thread_safe_remove_keys(["bucket", "object_key", "event_name"])


def _in_progress_seconds_left(unit: WorkUnit) -> float | None:
    """How long the other invocation's in-progress record can still last (its Lambda deadline)."""
    try:
        # The same data `process_once` is keyed on.
        record = idempotency_store(settings).get_record(data=unit)
    except Exception:  # gone in the meantime, or the table cannot be read: the caller uses a bound
        return None
    expiry = record.in_progress_expiry_timestamp if record is not None else None
    return None if expiry is None else max(0.0, float(expiry) / 1000 - time.time())  # a Decimal


@cache
def idempotent(function: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """`function` behind Powertools idempotency, keyed on its `unit` argument; built on the first event.

    Applying the decorator needs the persistence layer, whose DynamoDB client (botocore reading the
    service's model and endpoint rules) is built, like the function's other clients, when the first
    event needs it rather than at import. The records' keys are unchanged:
    `{function name}.ingest_handler.process_once#{hash}` (the wrapped function's own name).
    """
    decorate = idempotent_function(
        data_keyword_argument="unit", persistence_store=idempotency_store(settings), config=idempotency_config
    )
    wrapped: Callable[..., dict[str, Any]] = decorate(function)
    return wrapped


def process_once(*, unit: WorkUnit, event: ObjectEvent, context: LambdaContext) -> dict[str, Any]:
    """Runs once per work unit (`s3_events.work_unit`: the object version and the fingerprint) when
    called as `idempotent(process_once)`; a duplicate gets this dict back from the idempotency table."""
    deps = collaborators(settings, resolve_api_key(settings))
    deadline = deps.clock() + context.get_remaining_time_in_millis() / 1000 - RESERVED_SECONDS
    outcome = _traced_process(event, deps, deadline)
    _emit(outcome)
    record = outcome.record
    if record and record.reason and record.reason.code in CONFIGURATION_CODES:
        raise NotRemembered(record.reason.code)  # an exception: idempotency deletes its record
    return {
        "result_id": record.result_id if record else None,
        "status": record.status.value if record else "stale",
        "reason": record.reason.code if record and record.reason else None,
    }


@tracer.capture_method(capture_response=False)
def _traced_process(event: ObjectEvent, deps: Any, deadline: float) -> Outcome:
    started = time.perf_counter()
    outcome = process_object(event, settings=processing_settings(settings), deps=deps, deadline=deadline)
    record = outcome.record
    logger.info(
        "object processed",
        status=record.status.value if record else "stale",
        reason=msgspec.structs.asdict(record.reason) if record and record.reason else None,
        detections=record.detections if record else 0,
        timings_ms=record.timings_ms if record else {},
        elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return outcome


def _emit(outcome: Outcome) -> None:
    record = outcome.record
    if record is None:
        _add_metric("StaleEvents", MetricUnit.Count, 1)
        return
    with _metrics_lock:
        _images_by_status[record.status.value] += 1
    _add_metric("Detections", MetricUnit.Count, record.detections)
    if outcome.event_published:
        _add_metric("ResultEventsPublished", MetricUnit.Count, 1)
    if outcome.inference_ms is not None:
        _add_metric("InferenceLatency", MetricUnit.Milliseconds, outcome.inference_ms)
        _add_metric("BytesSent", MetricUnit.Bytes, outcome.bytes_sent)


def _add_metric(name: str, unit: MetricUnit, value: float) -> None:
    """`metrics.add_metric` from any record's thread: Powertools reads, appends to and writes back one
    shared metric set (and flushes it at 100 values) without a lock of its own."""
    with _metrics_lock:
        metrics.add_metric(name=name, unit=unit, value=value)


def _emit_image_counts() -> None:
    """`ImagesProcessed` per status, from the invocation's thread once its records are done: a per-status
    dimension would apply to every metric of the invocation, so each status gets its own blob (printed
    here, where no record thread writes to stdout in between)."""
    with _metrics_lock:
        counts = dict(_images_by_status)
        _images_by_status.clear()
    for status, count in sorted(counts.items()):
        with single_metric(
            name="ImagesProcessed",
            unit=MetricUnit.Count,
            value=count,
            namespace=metrics.namespace,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="status", value=status)


cold_start.imports_done()
