"""When a message comes back: a short lease while it runs, exponential backoff after a failure, and a
deferral (not a failure) for a duplicate whose first copy is still in progress.

The queue's 750 s visibility timeout is sized for the worst case (Lambda's rule of thumb: six times the
function timeout, for the event source mapping's own retries before the handler runs). Left alone it is
also how long a failed message, or one in flight when an invocation crashes, waits before its next try.
So the handler moves each message's visibility itself (`sqs:ChangeMessageVisibility` on the ingest queue):

- on arrival, to the invocation's remaining time plus `LEASE_MARGIN_SECONDS`: a crashed or killed
  invocation's messages come back soon after it would have timed out, not 12 minutes later (the 750 s
  stays the backstop for the time before the handler runs, and for when this call fails);
- after a batch item failure, to `backoff_seconds(receive count)`: RETRY_BASE_DELAY_SECONDS × 2^(n−1),
  capped at RETRY_MAX_DELAY_SECONDS, with "equal jitter" (between half and all of that), so a flaky
  endpoint is retried in seconds rather than minutes and a burst of failures does not come back at once.

A duplicate that finds the object version in progress (Powertools' IdempotencyAlreadyInProgressError:
the same S3 event twice, or a redelivery while the first copy runs) is not a failure: failing it would
spend one of the queue's receives, and enough of them would send it to the DLQ while the object is fine.
It is sent again (`sqs:SendMessage`) with a delay that ends when the in-progress record expires, and the
original is reported as done. When the delayed copy arrives, either the first copy finished (it is
answered from the idempotency table) or it died and its record expired (the copy processes the object).

The same deferral waits out an inference endpoint outage (`EndpointUnavailable`): the message is sent
again after `outage_delay_seconds` instead of being failed, so an outage of any length spends none of
its receives. A copy carries its first send time (`FIRST_SENT_ATTRIBUTE`), so "as long as the queue
would keep the message" is measured from the upload's notification, not from the latest copy: once a
message is older than the queue's retention it is no longer deferred and takes the ordinary path
(recorded as failed on its last delivery, then the DLQ). Outage deferrals are not counted against
`MAX_DEFERRALS`, which bounds only the duplicates' loop.

Both functions' handlers (ingest and video: this file is linked into functions/video) defer through
`defer_duplicate` and `defer_for_outage`, so the two kinds of deferral are decided in one place; each
returns False when the message could not be deferred, and the handler then fails it (re-raises).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

if TYPE_CHECKING:
    from s3kp_core.errors import EndpointUnavailable

LEASE_MARGIN_SECONDS = 10  # covers the event source mapping deleting the messages after the invocation
SQS_MAX_DELAY_SECONDS = 900  # SendMessage's DelaySeconds limit
SQS_MAX_VISIBILITY_SECONDS = 43_200
REQUEUE_ATTRIBUTE = "s3kp-deferrals"  # how many times a duplicate was deferred (a bound on loops)
FIRST_SENT_ATTRIBUTE = "s3kp-first-sent"  # epoch ms of the original message's send, kept on every copy
MAX_DEFERRALS = 20
_BATCH_LIMIT = 10


def queue_url_from_arn(arn: str) -> str:
    """`arn:aws:sqs:us-east-1:123456789012:name` -> `https://sqs.us-east-1.amazonaws.com/123456789012/name`."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise ValueError(f"not an SQS queue ARN: {arn!r}")
    _, partition, _, region, account, name = parts
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"


def backoff_seconds(
    receive_count: int, *, base: float, cap: float, uniform: Callable[[float, float], float] = random.uniform
) -> int:
    """Seconds before try `receive_count + 1`: half to all of min(cap, base × 2^(receive_count − 1))."""
    ceiling = min(cap, base * 2.0 ** max(0, receive_count - 1))
    return min(SQS_MAX_VISIBILITY_SECONDS, max(1, math.ceil(uniform(ceiling / 2, ceiling))))


def outage_delay_seconds(
    retry_in: float | None,
    open_for: float | None,
    *,
    floor: float,
    cap: float,
    uniform: Callable[[float, float], float] = random.uniform,
) -> int:
    """How long a message waiting for the endpoint is deferred: not before the next probe may go
    (`retry_in`, else `floor`), and spread up to how long the endpoint has been failing (`open_for`),
    at most `cap`: a short outage drains within seconds of recovery, a long one costs few receives."""
    low = max(1.0, retry_in if retry_in is not None else floor)
    high = max(low, min(cap, open_for or 0.0))
    return min(SQS_MAX_DELAY_SECONDS, math.ceil(uniform(low, high)))


def message_age_seconds(record: SQSRecord, now_ms: float) -> float:
    """Seconds since the original message was sent (a deferred copy keeps its first send time)."""
    return max(0.0, (now_ms - _first_sent_ms(record)) / 1000)


class DeferralSettings(msgspec.Struct, frozen=True, kw_only=True):
    """When a message is deferred rather than failed, and for how long; derived from the function's
    settings (`IngestSettings.deferral_settings()`, the video function's included)."""

    in_progress_unknown: float  # RETRY_MAX_DELAY_SECONDS: a duplicate's wait when the other's is unknown
    probe_interval: float  # CIRCUIT_PROBE_SECONDS: an outage deferral's floor when no circuit says more
    max_outage_defer: float  # OUTAGE_MAX_DEFER_SECONDS: the longest single outage deferral
    retention: float  # MESSAGE_RETENTION_SECONDS: how long the queue keeps a message


def outage_deferrable(record: SQSRecord, now_ms: float, settings: DeferralSettings) -> bool:
    """Whether the message may still wait for an unavailable endpoint: while the queue would keep it
    through one more longest deferral. Past that it takes the ordinary path: recorded as failed on its
    last delivery, then the DLQ."""
    return message_age_seconds(record, now_ms) + settings.max_outage_defer < settings.retention


class MetricSink(Protocol):
    """Adds one metric value: Powertools' `Metrics.add_metric`, or the ingest handler's locked wrapper of
    it (its records run in threads)."""

    def __call__(self, name: str, unit: MetricUnit, value: float) -> None: ...


class StructuredLog(Protocol):
    """What this module needs of a logger: Powertools' `Logger` (the function's, passed in, so importing
    this module creates no Powertools objects)."""

    def info(self, msg: str, **fields: Any) -> None: ...
    def warning(self, msg: str, **fields: Any) -> None: ...


class MessageVisibility:
    """Moves the visibility of one SQS batch's messages; every call is best effort (logged, never raised):
    if SQS refuses, the queue's own visibility timeout still brings the message back."""

    def __init__(self, sqs_client: Any, *, base_delay: float, max_delay: float, log: StructuredLog) -> None:
        self._sqs = sqs_client
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._log = log

    def lease(self, records: Iterable[SQSRecord], seconds: float) -> None:
        """Make in-flight messages reappear `seconds` from now unless deleted (the crash backstop)."""
        timeout = min(SQS_MAX_VISIBILITY_SECONDS, max(1, math.ceil(seconds)))
        self._change(((record, timeout) for record in records), purpose="lease")

    def back_off(self, records: Iterable[SQSRecord], failed_ids: set[str]) -> dict[str, int]:
        """Give each failed message its backoff delay; returns the delays by message id."""
        delays = {
            record.message_id: backoff_seconds(
                _receive_count(record), base=self._base_delay, cap=self._max_delay
            )
            for record in records
            if record.message_id in failed_ids
        }
        by_id = {record.message_id: record for record in records if record.message_id in delays}
        self._change(((by_id[i], delay) for i, delay in delays.items()), purpose="backoff")
        if delays:
            self._log.info("failed messages will be retried after a backoff", retry_in_seconds=delays)
        return delays

    def defer(self, record: SQSRecord, seconds: float, *, why: str, counted: bool = True) -> bool:
        """Send the message again, delayed by `seconds`; False when it could not (then fail it instead).

        `why` is logged; `counted` deferrals (a duplicate's) are bounded by MAX_DEFERRALS, uncounted ones
        (an outage's, bounded by the message's age instead) carry the count unchanged.
        """
        deferrals = _deferrals(record)
        if counted and deferrals >= MAX_DEFERRALS:
            self._log.warning("a duplicate was deferred too often; failing it instead", deferrals=deferrals)
            return False
        deferrals += 1 if counted else 0
        delay = min(SQS_MAX_DELAY_SECONDS, max(1, math.ceil(seconds)))
        try:
            self._sqs.send_message(
                QueueUrl=queue_url_from_arn(record.event_source_arn),
                MessageBody=record.body,
                DelaySeconds=delay,
                MessageAttributes={
                    REQUEUE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(deferrals)},
                    FIRST_SENT_ATTRIBUTE: {"DataType": "Number", "StringValue": str(_first_sent_ms(record))},
                },
            )
        except Exception as error:  # any refusal: the caller falls back to failing the message
            self._log.warning("could not defer a message", why=why, error=f"{type(error).__name__}: {error}")
            return False
        self._log.info(
            "message deferred",
            why=why,
            message_id=record.message_id,
            delay_seconds=delay,
            deferrals=deferrals,
        )
        return True

    def _change(self, entries: Iterable[tuple[SQSRecord, int]], *, purpose: str) -> None:
        by_queue: dict[str, list[tuple[SQSRecord, int]]] = {}
        for record, timeout in entries:
            by_queue.setdefault(record.event_source_arn, []).append((record, timeout))
        for arn, items in by_queue.items():
            for start in range(0, len(items), _BATCH_LIMIT):
                chunk = items[start : start + _BATCH_LIMIT]
                try:
                    response = self._sqs.change_message_visibility_batch(
                        QueueUrl=queue_url_from_arn(arn),
                        Entries=[
                            {
                                "Id": str(n),
                                "ReceiptHandle": record.receipt_handle,
                                "VisibilityTimeout": timeout,
                            }
                            for n, (record, timeout) in enumerate(chunk)
                        ],
                    )
                except Exception as error:
                    self._log.warning(
                        "could not change message visibility; the queue's timeout applies",
                        purpose=purpose,
                        error=f"{type(error).__name__}: {error}",
                    )
                    continue
                for failure in response.get("Failed", []):
                    self._log.warning(
                        "could not change a message's visibility; the queue's timeout applies",
                        purpose=purpose,
                        code=failure.get("Code"),
                        message=failure.get("Message"),
                    )


def defer_duplicate(
    visibility: MessageVisibility, record: SQSRecord, seconds_left: float | None, settings: DeferralSettings
) -> bool:
    """Defer a duplicate whose unit is in progress in another invocation until that invocation's record
    expires (`seconds_left`, plus a second). When its expiry is unknown (the record could not be read),
    wait the longest backoff (300 s by default, beyond the 120 s function timeout that bounds any
    in-progress record). Counted against MAX_DEFERRALS. False: not deferred; the caller fails the message
    (it comes back after its backoff)."""
    seconds = seconds_left if seconds_left is not None else settings.in_progress_unknown
    return visibility.defer(record, seconds + 1, why="duplicate in progress")


def defer_for_outage(
    visibility: MessageVisibility,
    record: SQSRecord,
    outage: EndpointUnavailable,
    *,
    deferrable: bool,
    settings: DeferralSettings,
    add_metric: MetricSink,
) -> bool:
    """Defer a message that met an unavailable endpoint for `outage_delay_seconds` (not counted against
    MAX_DEFERRALS), and count it: `OutageDeferrals`, and `CircuitOpenSeconds` when the circuit knows how
    long the endpoint has been failing. False: not `deferrable` (`outage_deferrable`, decided when the
    message arrived) or the deferral failed; the caller fails the message, as any transient failure."""
    if not deferrable:
        return False
    delay = outage_delay_seconds(
        outage.retry_in, outage.open_for, floor=settings.probe_interval, cap=settings.max_outage_defer
    )
    if not visibility.defer(record, delay, why=f"waiting for the endpoint: {outage.code}", counted=False):
        return False
    add_metric("OutageDeferrals", MetricUnit.Count, 1)
    if outage.open_for is not None:
        # Alarmed on (template: CircuitOpenAlarm): how long the endpoint has been failing.
        add_metric("CircuitOpenSeconds", MetricUnit.Seconds, round(outage.open_for))
    return True


def process_leased_batch(
    event: dict[str, Any],
    context: Any,
    *,
    visibility: MessageVisibility,
    processor: Any,
    record_handler: Callable[..., Any],
) -> Any:
    """An SQS batch as both functions handle it: lease every message for the invocation's remaining time
    (a crashed invocation's messages come back once it would have timed out, not after the queue's
    visibility timeout), process it with Powertools' partial batch response, and give each failed message
    its backoff. Returns the partial batch response."""
    messages = [SQSRecord(raw) for raw in event["Records"]]
    visibility.lease(messages, context.get_remaining_time_in_millis() / 1000 + LEASE_MARGIN_SECONDS)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    failed = {str(item["itemIdentifier"]) for item in response.get("batchItemFailures", [])}
    visibility.back_off(messages, failed)
    return response


def _receive_count(record: SQSRecord) -> int:
    try:
        return max(1, int(record.attributes.approximate_receive_count or 1))
    except ValueError:
        return 1


def _deferrals(record: SQSRecord) -> int:
    return int(_number_attribute(record, REQUEUE_ATTRIBUTE) or 0)


def _first_sent_ms(record: SQSRecord) -> int:
    """The original message's send time: the copy's attribute, else this message's SentTimestamp."""
    carried = _number_attribute(record, FIRST_SENT_ATTRIBUTE)
    if carried is not None:
        return int(carried)
    try:
        return int(record.attributes.sent_timestamp)
    except (TypeError, ValueError):
        return 0  # unknown: treated as very old, so the message takes the ordinary path


def _number_attribute(record: SQSRecord, name: str) -> float | None:
    attribute = (record.raw_event.get("messageAttributes") or {}).get(name) or {}
    try:
        value = float(attribute.get("stringValue") or "")
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
