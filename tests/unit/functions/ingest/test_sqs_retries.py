"""When a message comes back: the backoff schedule, the queue URL of an event's ARN, the SQS calls the
handler makes for a lease, a backoff and a deferred duplicate (against a recording fake client), and the
two deferrals both functions' handlers make instead of failing a message: a duplicate in progress
elsewhere, and a message waiting out an endpoint outage."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from s3kp_core import errors
from s3kp_core.errors import EndpointUnavailable
from sqs_retries import (
    FIRST_SENT_ATTRIBUTE,
    MAX_DEFERRALS,
    REQUEUE_ATTRIBUTE,
    DeferralSettings,
    MessageVisibility,
    backoff_seconds,
    defer_duplicate,
    defer_for_outage,
    message_age_seconds,
    outage_deferrable,
    outage_delay_seconds,
    process_leased_batch,
    queue_url_from_arn,
)

from tests.unit.s3kp_core.fakes import RecordingLog

ARN = "arn:aws:sqs:eu-west-1:123456789012:s3kp-ingest"
URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/s3kp-ingest"


def visibility_for(sqs: Any, log: RecordingLog | None = None) -> MessageVisibility:
    return MessageVisibility(sqs, base_delay=15, max_delay=300, log=log or RecordingLog())


class RecordingSqs:
    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.refuse = refuse

    def change_message_visibility_batch(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("change_message_visibility_batch", kwargs))
        if self.refuse:
            raise RuntimeError("AccessDenied")
        return {"Successful": [{"Id": e["Id"]} for e in kwargs["Entries"]], "Failed": []}

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("send_message", kwargs))
        if self.refuse:
            raise RuntimeError("AccessDenied")
        return {"MessageId": "new"}


SENT_MS = 1_700_000_000_000


def record(
    message_id: str,
    receive_count: int = 1,
    deferrals: int | None = None,
    first_sent_ms: int | None = None,
) -> SQSRecord:
    attributes = (
        {REQUEUE_ATTRIBUTE: {"stringValue": str(deferrals), "dataType": "Number"}} if deferrals else {}
    )
    if first_sent_ms is not None:
        attributes[FIRST_SENT_ATTRIBUTE] = {"stringValue": str(first_sent_ms), "dataType": "Number"}
    return SQSRecord(
        {
            "messageId": message_id,
            "receiptHandle": f"handle-{message_id}",
            "body": '{"Records": []}',
            "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": str(SENT_MS)},
            "messageAttributes": attributes,
            "eventSource": "aws:sqs",
            "eventSourceARN": ARN,
        }
    )


def test_the_queue_url_is_derived_from_the_event_source_arn() -> None:
    assert queue_url_from_arn(ARN) == URL
    assert (
        queue_url_from_arn("arn:aws-cn:sqs:cn-north-1:1:q") == "https://sqs.cn-north-1.amazonaws.com.cn/1/q"
    )
    with pytest.raises(ValueError, match="not an SQS queue ARN"):
        queue_url_from_arn("arn:aws:sns:us-east-1:1:topic")


@pytest.mark.parametrize(
    ("receive_count", "low", "high"), [(1, 8, 15), (2, 15, 30), (3, 30, 60), (5, 120, 240), (9, 150, 300)]
)
def test_backoff_doubles_per_receive_with_equal_jitter_up_to_the_cap(
    receive_count: int, low: int, high: int
) -> None:
    delays = {backoff_seconds(receive_count, base=15, cap=300) for _ in range(200)}

    assert low <= min(delays)
    assert max(delays) <= high
    assert len(delays) > 3  # jittered, so a burst of failures does not come back at once


def test_failed_messages_get_their_backoff_and_the_others_are_left_alone() -> None:
    sqs = RecordingSqs()
    visibility = visibility_for(sqs)
    records = [record("a", 1), record("b", 3), record("c", 1)]

    delays = visibility.back_off(records, {"a", "b"})

    ((name, call),) = sqs.calls
    assert name == "change_message_visibility_batch"
    assert call["QueueUrl"] == URL
    entries = {e["ReceiptHandle"]: e["VisibilityTimeout"] for e in call["Entries"]}
    assert entries == {"handle-a": delays["a"], "handle-b": delays["b"]}
    assert 8 <= delays["a"] <= 15
    assert 30 <= delays["b"] <= 60


def test_the_lease_covers_every_message_in_batches_of_ten() -> None:
    sqs = RecordingSqs()
    visibility_for(sqs).lease([record(str(n)) for n in range(12)], 129.2)

    assert [len(call["Entries"]) for _, call in sqs.calls] == [10, 2]
    assert {e["VisibilityTimeout"] for _, call in sqs.calls for e in call["Entries"]} == {130}


def test_a_batch_is_leased_for_the_invocation_then_its_failed_messages_backed_off() -> None:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    from s3kp.local.lambda_runtime import LambdaContext

    sqs = RecordingSqs()
    event = {"Records": [record("ok").raw_event, record("bad", receive_count=2).raw_event]}

    def handle(record: SQSRecord) -> None:
        if record.message_id == "bad":
            raise RuntimeError("this one fails")

    response = process_leased_batch(
        event,
        LambdaContext(timeout_seconds=60),
        visibility=visibility_for(sqs),
        processor=BatchProcessor(event_type=EventType.SQS),
        record_handler=handle,
    )

    assert response == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    lease, backoff = (call["Entries"] for _, call in sqs.calls)
    assert {e["ReceiptHandle"] for e in lease} == {"handle-ok", "handle-bad"}
    assert {e["VisibilityTimeout"] for e in lease} <= {69, 70}  # 60 s left + the 10 s margin
    assert [e["ReceiptHandle"] for e in backoff] == ["handle-bad"]
    assert 15 <= backoff[0]["VisibilityTimeout"] <= 30  # the second receive's backoff


def test_a_refused_visibility_change_is_logged_not_raised() -> None:
    log = RecordingLog()
    visibility = visibility_for(RecordingSqs(refuse=True), log)

    visibility.lease([record("a")], 60)
    assert visibility.back_off([record("a")], {"a"})  # the queue's own timeout still brings it back
    assert [level for level, _, _ in log.lines].count("warning") == 2


def test_a_deferred_duplicate_is_sent_again_with_the_delay_and_a_deferral_count() -> None:
    sqs = RecordingSqs()

    assert visibility_for(sqs).defer(record("a", deferrals=2), 41.3, why="duplicate in progress")

    ((name, call),) = sqs.calls
    assert name == "send_message"
    assert call["QueueUrl"] == URL
    assert call["DelaySeconds"] == 42
    assert call["MessageBody"] == '{"Records": []}'
    assert call["MessageAttributes"][REQUEUE_ATTRIBUTE]["StringValue"] == "3"
    assert call["MessageAttributes"][FIRST_SENT_ATTRIBUTE]["StringValue"] == str(SENT_MS)


def test_a_duplicate_is_not_deferred_forever_or_when_sqs_refuses() -> None:
    sqs = RecordingSqs()
    assert not visibility_for(sqs).defer(record("a", deferrals=MAX_DEFERRALS), 10, why="duplicate")
    assert sqs.calls == []
    assert not visibility_for(RecordingSqs(refuse=True)).defer(record("a"), 10, why="duplicate")


def test_an_outage_deferral_is_not_counted_and_keeps_the_first_send_time() -> None:
    """A message may wait out a long outage: no MAX_DEFERRALS bound, and its age survives every copy."""
    sqs = RecordingSqs()
    waiting = record("a", deferrals=MAX_DEFERRALS, first_sent_ms=SENT_MS - 3_600_000)

    assert visibility_for(sqs).defer(waiting, 30, why="endpoint", counted=False)

    ((_, call),) = sqs.calls
    assert call["MessageAttributes"][REQUEUE_ATTRIBUTE]["StringValue"] == str(MAX_DEFERRALS)
    assert call["MessageAttributes"][FIRST_SENT_ATTRIBUTE]["StringValue"] == str(SENT_MS - 3_600_000)


def test_a_messages_age_counts_from_the_original_send() -> None:
    assert message_age_seconds(record("a"), SENT_MS + 90_000) == 90
    assert message_age_seconds(record("a", first_sent_ms=SENT_MS - 10_000), SENT_MS) == 10


@pytest.mark.parametrize(
    ("retry_in", "open_for", "bounds"),
    [
        (12.0, 0.0, (12, 12)),  # just opened: back at the next probe
        (12.0, 45.0, (12, 45)),  # spread over the outage so far
        (12.0, 3600.0, (12, 60)),  # ... at most the cap
        (None, None, (15, 15)),  # no circuit to ask (a 429): the floor
        (0.0, 600.0, (1, 60)),  # the probe is due now: at least a second
    ],
)
def test_an_outage_deferral_waits_for_the_next_probe_and_spreads_up_to_the_cap(
    retry_in: float | None, open_for: float | None, bounds: tuple[int, int]
) -> None:
    low = outage_delay_seconds(retry_in, open_for, floor=15, cap=60, uniform=lambda a, b: a)
    high = outage_delay_seconds(retry_in, open_for, floor=15, cap=60, uniform=lambda a, b: b)
    assert (low, high) == bounds


# --- the handlers' deferrals (ingest and video) ---------------------------------------------------------

# RETRY_MAX_DELAY_SECONDS, CIRCUIT_PROBE_SECONDS, OUTAGE_MAX_DEFER_SECONDS, MESSAGE_RETENTION_SECONDS.
DEFERRALS = DeferralSettings(
    in_progress_unknown=300, probe_interval=15, max_outage_defer=60, retention=345_600
)


class RecordingMetrics:
    """`add_metric` as the handlers pass it: Powertools' `Metrics.add_metric`, or the ingest handler's
    locked wrapper of it."""

    def __init__(self) -> None:
        self.values: list[tuple[str, MetricUnit, float]] = []

    def __call__(self, name: str, unit: MetricUnit, value: float) -> None:
        self.values.append((name, unit, value))


def outage(retry_in: float | None = 12.0, open_for: float | None = None) -> EndpointUnavailable:
    return EndpointUnavailable(
        errors.INFERENCE_UNAVAILABLE, "inference endpoint unreachable", retry_in=retry_in, open_for=open_for
    )


def test_a_message_waits_for_the_endpoint_while_the_queue_would_keep_it_one_deferral_more() -> None:
    """Age is counted from the original send (a deferred copy carries it), so a message stops waiting
    once one more longest deferral would outlive the queue's retention: then it takes the ordinary path
    (recorded as failed on its last delivery, then the DLQ) instead of expiring unrecorded."""
    last_chance_ms = SENT_MS + (345_600 - 60) * 1000  # age + OUTAGE_MAX_DEFER_SECONDS = retention

    assert outage_deferrable(record("a"), SENT_MS + 90_000, DEFERRALS)
    assert outage_deferrable(record("a"), last_chance_ms - 1000, DEFERRALS)
    assert not outage_deferrable(record("a"), last_chance_ms, DEFERRALS)
    copy = record("a", first_sent_ms=SENT_MS - 345_600_000)  # sent again a few times over four days
    assert not outage_deferrable(copy, SENT_MS, DEFERRALS)


def test_a_duplicate_in_progress_elsewhere_waits_until_the_other_invocations_record_expires() -> None:
    """GIVEN another invocation's in-progress record with 41.3 s left THEN the message is sent again a
    second after it expires (42.3 s: 43), and the deferral counts towards MAX_DEFERRALS."""
    sqs, log = RecordingSqs(), RecordingLog()

    assert defer_duplicate(visibility_for(sqs, log), record("a", deferrals=2), 41.3, DEFERRALS)

    ((name, call),) = sqs.calls
    assert name == "send_message"
    assert call["DelaySeconds"] == 43
    assert call["MessageAttributes"][REQUEUE_ATTRIBUTE]["StringValue"] == "3"
    assert [(msg, fields["why"]) for _, msg, fields in log.lines] == [
        ("message deferred", "duplicate in progress")
    ]


def test_a_duplicate_whose_other_record_cannot_be_read_waits_the_longest_backoff() -> None:
    """The other invocation's expiry unknown (its record gone or unreadable): RETRY_MAX_DELAY_SECONDS,
    beyond the function timeout that bounds any in-progress record."""
    sqs = RecordingSqs()

    assert defer_duplicate(visibility_for(sqs), record("a"), None, DEFERRALS)

    ((_, call),) = sqs.calls
    assert call["DelaySeconds"] == 301


def test_a_duplicate_that_cannot_be_deferred_is_left_to_the_handler_to_fail() -> None:
    """Deferred too often, or SQS refuses: False, and the handler re-raises (a batch item failure)."""
    sqs = RecordingSqs()
    assert not defer_duplicate(visibility_for(sqs), record("a", deferrals=MAX_DEFERRALS), 10, DEFERRALS)
    assert sqs.calls == []
    assert not defer_duplicate(visibility_for(RecordingSqs(refuse=True)), record("a"), 10, DEFERRALS)


def test_a_message_that_met_an_outage_is_deferred_uncounted_and_the_outage_is_measured() -> None:
    """GIVEN a deferrable message and a circuit open for 45.4 s whose next probe is in 12 s
    THEN the message is sent again after 12 to 45 s (uncounted: an outage may outlast MAX_DEFERRALS),
    logged with the endpoint's reason, and counted: one OutageDeferrals, CircuitOpenSeconds 45 (alarmed
    on)."""
    sqs, log, metrics = RecordingSqs(), RecordingLog(), RecordingMetrics()

    deferred = defer_for_outage(
        visibility_for(sqs, log),
        record("a", deferrals=2),
        outage(retry_in=12.0, open_for=45.4),
        deferrable=True,
        settings=DEFERRALS,
        add_metric=metrics,
    )

    assert deferred
    ((name, call),) = sqs.calls
    assert name == "send_message"
    assert 12 <= call["DelaySeconds"] <= 46
    assert call["MessageAttributes"][REQUEUE_ATTRIBUTE]["StringValue"] == "2"
    assert [fields["why"] for _, _, fields in log.lines] == [
        "waiting for the endpoint: inference_unavailable"
    ]
    assert metrics.values == [
        ("OutageDeferrals", MetricUnit.Count, 1),
        ("CircuitOpenSeconds", MetricUnit.Seconds, 45),
    ]


def test_an_outage_without_a_circuit_to_ask_waits_the_probe_interval_and_reports_no_open_time() -> None:
    """A rate-limited endpoint (429) opens no circuit: no next probe, no open time. The message waits the
    probe interval, and only the deferral is counted."""
    sqs, metrics = RecordingSqs(), RecordingMetrics()

    assert defer_for_outage(
        visibility_for(sqs),
        record("a"),
        outage(retry_in=None, open_for=None),
        deferrable=True,
        settings=DEFERRALS,
        add_metric=metrics,
    )

    ((_, call),) = sqs.calls
    assert call["DelaySeconds"] == 15
    assert metrics.values == [("OutageDeferrals", MetricUnit.Count, 1)]


@pytest.mark.parametrize(("deferrable", "sqs"), [(False, RecordingSqs()), (True, RecordingSqs(refuse=True))])
def test_an_outage_message_that_cannot_be_deferred_is_left_to_the_handler_to_fail_uncounted(
    deferrable: bool, sqs: RecordingSqs
) -> None:
    """Too old to wait (not deferrable), or SQS refuses the copy: False, so the handler re-raises and the
    message takes the ordinary path; no deferral is counted."""
    metrics = RecordingMetrics()

    assert not defer_for_outage(
        visibility_for(sqs),
        record("a"),
        outage(open_for=120.0),
        deferrable=deferrable,
        settings=DEFERRALS,
        add_metric=metrics,
    )

    assert metrics.values == []
    assert len(sqs.calls) == (1 if deferrable else 0)  # the refused send only
