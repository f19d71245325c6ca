"""The queue runner against a real SQS (moto server), with stub handlers standing in for the ingest function.

Specification: the runner settles a batch the way Lambda's SQS event source mapping does with
`ReportBatchItemFailures` — reported failures and failed invocations stay on the queue, reappear after
the visibility timeout and, past `maxReceiveCount`, land in the DLQ.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from s3kp.local.lambda_runtime import LambdaContext, queue_arn
from s3kp.local.runner import BatchOutcome, QueueRunner, RunnerSettings

VISIBILITY_SECONDS = 1
MAX_RECEIVES = 2


@pytest.fixture
def sqs(fresh_aws: str) -> Any:
    return boto3.client("sqs", region_name="us-east-1")


@pytest.fixture
def queues(sqs: Any) -> tuple[str, str]:
    """A work queue with a 1 s visibility timeout redriving to a DLQ after two receives."""
    dlq_url = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName="work",
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_SECONDS),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}
            ),
        },
    )["QueueUrl"]
    return queue_url, dlq_url


def make_runner(sqs: Any, queue_url: str, handler: Any, **settings: Any) -> QueueRunner:
    options = {"batch_size": 10, "wait_seconds": 1, "timeout_seconds": 30.0} | settings
    return QueueRunner(sqs, RunnerSettings(queue_url, queue_arn(queue_url), **options), [handler])


def send(sqs: Any, queue_url: str, *bodies: str) -> None:
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)


def bodies_in(sqs: Any, queue_url: str) -> list[str]:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages", []
    )
    return sorted(message["Body"] for message in messages)


def drain(runner: QueueRunner, handler: Any, rounds: int) -> list[BatchOutcome]:
    """Poll `rounds` times, waiting out the visibility timeout between rounds so retries come back."""
    outcomes = []
    for _ in range(rounds):
        outcome = runner.poll_once(handler)
        if outcome is not None:
            outcomes.append(outcome)
        time.sleep(VISIBILITY_SECONDS + 0.2)
    return outcomes


def test_handler_sees_a_lambda_sqs_event_and_a_counting_down_context(
    sqs: Any, queues: tuple[str, str]
) -> None:
    """GIVEN a message WHEN the runner invokes the handler THEN the event and context look like Lambda's."""
    queue_url, _ = queues
    seen: list[tuple[dict[str, Any], LambdaContext, int]] = []

    def handler(event: dict[str, Any], context: LambdaContext) -> None:
        seen.append((event, context, context.get_remaining_time_in_millis()))

    send(sqs, queue_url, "hello")
    outcome = make_runner(sqs, queue_url, handler, timeout_seconds=45.0).poll_once(handler)

    assert outcome is not None
    assert outcome.error is None
    ((event, context, remaining_ms),) = seen
    (record,) = event["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert record["body"] == "hello"
    assert record["eventSourceARN"].endswith(":work")
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert 40_000 < remaining_ms <= 45_000
    assert context.aws_request_id
    assert context.function_name == "s3kp-ingest"
    assert bodies_in(sqs, queue_url) == [], "a batch without failures is deleted"


def test_reported_failures_are_retried_and_then_moved_to_the_dlq(sqs: Any, queues: tuple[str, str]) -> None:
    """GIVEN a handler that reports `bad` as a batch item failure every time
    WHEN the runner polls past the visibility timeout a few times
    THEN `good` is deleted after the first batch and `bad` ends up in the DLQ after maxReceiveCount tries."""
    queue_url, dlq_url = queues
    received_bad = 0

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        nonlocal received_bad
        failures = [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"]
        received_bad += len(failures)
        return {"batchItemFailures": failures}

    send(sqs, queue_url, "good", "bad")
    outcomes = drain(make_runner(sqs, queue_url, handler), handler, rounds=MAX_RECEIVES + 1)

    assert len(outcomes[0].deleted) == 1
    assert len(outcomes[0].retried) == 1
    assert received_bad == MAX_RECEIVES
    assert bodies_in(sqs, queue_url) == []
    assert bodies_in(sqs, dlq_url) == ["bad"]


@pytest.mark.parametrize(
    "misbehaviour",
    ["raises", "unknown item identifier", "empty item identifier"],
)
def test_a_failed_invocation_deletes_nothing(sqs: Any, queues: tuple[str, str], misbehaviour: str) -> None:
    """GIVEN a handler that raises or returns an invalid failure list
    WHEN the batch is processed THEN no message is deleted: both come back after the visibility timeout."""
    queue_url, _ = queues

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        if misbehaviour == "raises":
            raise RuntimeError("boom")
        identifier = "not-in-this-batch" if misbehaviour == "unknown item identifier" else ""
        return {"batchItemFailures": [{"itemIdentifier": identifier}]}

    send(sqs, queue_url, "one", "two")
    outcome = make_runner(sqs, queue_url, handler).poll_once(handler)

    assert outcome is not None
    assert outcome.error is not None
    assert outcome.deleted == ()
    assert len(outcome.retried) == 2
    time.sleep(VISIBILITY_SECONDS + 0.2)
    assert bodies_in(sqs, queue_url) == ["one", "two"]


def test_pollers_run_in_threads_and_stop_when_asked(sqs: Any, queues: tuple[str, str]) -> None:
    """GIVEN a started runner WHEN messages arrive THEN they are processed in the background,
    AND request_stop + join ends every poller thread."""
    queue_url, _ = queues
    outcomes: list[BatchOutcome] = []
    runner = QueueRunner(
        sqs,
        RunnerSettings(queue_url, queue_arn(queue_url), wait_seconds=1),
        [lambda event, context: None],
        on_batch=outcomes.append,
    )
    runner.start()
    try:
        send(sqs, queue_url, "background")
        deadline = time.monotonic() + 10
        while not outcomes and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.request_stop()
        runner.join(timeout=5)

    assert [len(outcome.deleted) for outcome in outcomes] == [1]
    assert not runner.running


def test_a_handler_that_changes_the_visibility_of_its_failed_message_is_honoured(sqs: Any) -> None:
    """GIVEN a queue with a long visibility timeout WHEN the handler reports a message failed after moving
    its visibility to 1 s (as the ingest handler's backoff does) THEN the runner leaves it alone and it is
    received again ~1 s later, not after the queue's timeout."""
    queue_url = sqs.create_queue(QueueName="long-timeout", Attributes={"VisibilityTimeout": "600"})[
        "QueueUrl"
    ]
    send(sqs, queue_url, "again")
    receives: list[float] = []

    def back_off_and_fail(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        receives.append(time.monotonic())
        record = event["Records"][0]
        sqs.change_message_visibility(
            QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=1
        )
        return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}

    runner = make_runner(sqs, queue_url, back_off_and_fail, wait_seconds=5)
    runner.poll_once(back_off_and_fail)
    runner.poll_once(back_off_and_fail)

    assert len(receives) == 2
    assert receives[1] - receives[0] < 5
