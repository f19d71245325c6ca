"""Recovering what failed: `s3kp redrive` and `s3kp backfill --only-failed`, run as a user runs them (the
CLI, finding the local stack by its names) against moto with the resources of template.yaml, the
project's inference server, and the ingest (or video) handler invoked on what the queue then holds.

The state an endpoint outage left before issue 19's fix is written as the ingest function wrote it: the
result `failed` / `inference_unavailable` with the event's order (the last delivery recorded it and
raised, so Powertools deleted the idempotency record), and the message moved to the dead-letter queue
with its body and attributes, as SQS moves it after MaxReceiveCount.
"""

# The fixtures come from the sibling module (there is no ingest conftest): parameters "redefine" them.
# ruff: noqa: F811

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests
from s3_events import parse_json_notification
from s3kp_core.ordering import event_order
from s3kp_core.results import Reason, ResultRecord, SourceObject, Status, result_id_for, utc_now
from s3kp_core.results_store_dynamodb import DynamoDBResultsStore

from s3kp import samples
from s3kp.backfill import NOT_FAILED, OTHER_REASON
from s3kp.local_target import local_session
from s3kp.redrive import BY_HAND, IMAGES, VIDEOS
from s3kp.redrive import messages_in as redrive_messages_in
from tests.conftest import ROOT
from tests.integration.test_ingest_pipeline import (  # noqa: F401
    MODEL_ID,
    IngestStack,
    StackFactory,
    ingest_stack,
    proxy,
)
from tests.integration.test_result_events import backfill_cli, drain
from tests.integration.test_stack_e2e import (
    READY_TIMEOUT,
    RESULT_TIMEOUT,
    STOP_TIMEOUT,
    RunningStack,
    start_stack,
)
from tests.integration.test_video_pipeline import StackFactory as VideoStackFactory
from tests.integration.test_video_pipeline import VideoStack, clip, video_stack  # noqa: F401

DEFERRALS = "s3kp-deferrals"  # what the ingest and video functions count deferrals in (sqs_retries)
FIRST_SENT = "s3kp-first-sent"  # and when the original message was sent


def write_outage_failure(
    store: DynamoDBResultsStore, body: str, model_id: str, fingerprint: str | None
) -> str:
    """The result the last delivery of this notification recorded before the fix (with the event's order,
    as processing writes it), through the results store; returns the key."""
    (event,) = parse_json_notification(body).objects
    source, now = event.source, utc_now()
    record = ResultRecord(
        result_id=result_id_for(source.bucket, source.key),
        status=Status.FAILED,
        reason=Reason(code="inference_unavailable", message="gave up after the last delivery: unreachable"),
        source=source,
        model_id=model_id,
        fingerprint=fingerprint,
        created_at=now,
        updated_at=now,
    )
    assert store.write(record, order=event_order(source.sequencer, event.event_time, now)).written
    return source.key


def record_outage_failure(stack: IngestStack, message: dict[str, Any]) -> str:
    store = DynamoDBResultsStore(stack.table, stack.s3, predictions_prefix=stack.resources.predictions_prefix)
    return write_outage_failure(store, message["Body"], MODEL_ID, stack.handler.settings.fingerprint)


def dead_letter(stack: IngestStack, message: dict[str, Any], deferrals: int) -> None:
    """What SQS does at MaxReceiveCount: the message, body and attributes, moves to the DLQ."""
    stack.sqs.send_message(
        QueueUrl=stack.resources.dlq_url,
        MessageBody=message["Body"],
        MessageAttributes={DEFERRALS: {"DataType": "Number", "StringValue": str(deferrals)}},
    )
    stack.sqs.delete_message(QueueUrl=stack.resources.queue_url, ReceiptHandle=message["ReceiptHandle"])


def key_of(message: dict[str, Any]) -> str:
    (event,) = parse_json_notification(message["Body"]).objects
    return event.source.key


def status(stack: IngestStack, key: str) -> tuple[str, str | None]:
    result = stack.result(key)
    assert result is not None
    return result["status"], (result.get("reason") or {}).get("code")


def redrive_cli(stack: IngestStack | VideoStack, *options: str) -> dict[str, dict[str, Any]]:
    """`s3kp redrive` as a user runs it against the local stack: it finds the queues and their DLQs by
    itself. Its JSON entries, by queue (`images`, `videos`)."""
    command = [sys.executable, "-m", "s3kp.cli", "redrive", "--endpoint-url", stack.resources.endpoint_url,
               "--json", *options]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    return {entry["queue"]: entry for entry in report["queues"]}


def dlq_counts(stack: IngestStack) -> tuple[int, int]:
    """(visible, in flight) messages of the DLQ."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = stack.sqs.get_queue_attributes(QueueUrl=stack.resources.dlq_url, AttributeNames=names)
    return int(attributes["Attributes"][names[0]]), int(attributes["Attributes"][names[1]])


# --- s3kp redrive -------------------------------------------------------------------------------------


def test_redrive_moves_the_dead_letters_back_fresh_and_the_ingest_function_processes_them(
    ingest_stack: StackFactory,
) -> None:
    """GIVEN three uploads an outage failed before the fix (results failed, messages in the DLQ, deferred
    twice on the way) WHEN `s3kp redrive` runs against moto, which has no move task THEN a dry run counts
    them without hiding any, the redrive moves all three back by receive/send/delete without their
    deferral count, the DLQ is empty, and processing them makes every result succeed."""
    stack = ingest_stack()
    for index in range(3):
        stack.upload(f"outage/{index}.jpg", samples.sample_jpeg("astronaut"))
    keys = []
    for message in stack.receive(3):
        keys.append(record_outage_failure(stack, message))
        dead_letter(stack, message, deferrals=2)
    assert {status(stack, key) for key in keys} == {("failed", "inference_unavailable")}

    dry = redrive_cli(stack, "--dry-run")
    assert (dry[IMAGES]["in_dlq"], dry[IMAGES]["would_move"], dlq_counts(stack)) == (3, 3, (3, 0))
    assert dry[VIDEOS]["would_move"] == 0

    done = redrive_cli(stack)[IMAGES]
    assert (done["method"], done["moved"], done["not_moved"]) == (BY_HAND, 3, 0)
    assert "no SQS move tasks" in done["fallback_reason"]
    assert dlq_counts(stack) == (0, 0)
    moved = stack.sqs.receive_message(
        QueueUrl=stack.resources.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    )["Messages"]  # fmt: skip
    assert sorted(key_of(message) for message in moved) == sorted(keys)
    assert all(DEFERRALS not in message.get("MessageAttributes", {}) for message in moved)

    assert stack.invoke(moved) == set()
    assert {status(stack, key) for key in keys} == {("succeeded", None)}
    assert {entry["moved"] for entry in redrive_cli(stack).values()} == {0}


def dead_letter_video(stack: VideoStack, message: dict[str, Any], deferrals: int) -> None:
    """What SQS does at MaxReceiveCount on the video queue: the message, body and the bookkeeping the video
    function's deferrals added, moves to the video DLQ."""
    stack.sqs.send_message(
        QueueUrl=stack.resources.video_dlq_url,
        MessageBody=message["Body"],
        MessageAttributes={
            DEFERRALS: {"DataType": "Number", "StringValue": str(deferrals)},
            FIRST_SENT: {"DataType": "Number", "StringValue": str(int(time.time() * 1000) - 60_000)},
        },
    )
    stack.sqs.delete_message(QueueUrl=stack.resources.video_queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_redrive_moves_a_segment_task_and_a_video_notification_back_to_the_video_queue_and_both_finish(
    video_stack: VideoStackFactory, clip: bytes
) -> None:
    """GIVEN two videos with a message each in the video DLQ, deferred on the way: the second segment task
    of one (its planner and first segment ran) and the S3 notification of the other (never planned) WHEN
    `s3kp redrive` runs with its defaults THEN the dry run counts them per DLQ, the redrive moves both to
    the video queue (not the ingest queue) with their bodies unchanged and without the bookkeeping, and
    the video function finishes both videos."""
    stack = video_stack(VIDEO_SEGMENT_SECONDS="2")
    planned = stack.upload("outage/planned.mp4", clip)
    (notification,) = stack.receive()
    assert stack.invoke(notification) == set()
    first, second = sorted(stack.receive(), key=lambda task: json.loads(task["Body"])["segment"])
    assert stack.invoke(first) == set()
    dead_letter_video(stack, second, deferrals=3)
    unplanned = stack.upload("outage/unplanned.mp4", clip)
    (never_planned,) = stack.receive()
    dead_letter_video(stack, never_planned, deferrals=1)
    assert stack.result(planned)["video"]["segments_done"] == 1  # type: ignore[index]
    assert stack.result(unplanned) is None

    dry = redrive_cli(stack, "--dry-run")
    assert (dry[IMAGES]["would_move"], dry[VIDEOS]["would_move"]) == (0, 2)
    assert dry[VIDEOS]["dlq_url"] == stack.resources.video_dlq_url

    done = redrive_cli(stack)
    assert (done[IMAGES]["moved"], done[VIDEOS]["method"], done[VIDEOS]["moved"]) == (0, BY_HAND, 2)
    assert (done[VIDEOS]["queue_url"], redrive_messages_in(stack.sqs, stack.resources.video_dlq_url)) == (
        stack.resources.video_queue_url, 0,
    )  # fmt: skip
    moved = stack.receive()
    assert sorted(message["Body"] for message in moved) == sorted([second["Body"], never_planned["Body"]])
    assert all(not {DEFERRALS, FIRST_SENT} & set(m.get("MessageAttributes", {})) for m in moved)
    assert stack.receive(stack.resources.queue_url, timeout=0.5) == []

    for message in moved:
        assert stack.invoke(message) == set()
    stack.run_until_quiet()  # the unplanned video's segment tasks
    for key in (planned, unplanned):
        result = stack.result(key)
        assert result is not None
        assert (result["status"], result["video"]["frames"]) == ("succeeded", 20)


# --- s3kp backfill --only-failed ------------------------------------------------------------------------


def test_only_failed_with_a_reason_sends_just_the_outages_failures_and_they_succeed(
    ingest_stack: StackFactory,
) -> None:
    stack = ingest_stack()
    for name in ("down 1.jpg", "down 2.jpg", "fine.jpg"):
        stack.upload(f"mixed/{name}", samples.sample_jpeg("astronaut"))
    stack.upload("mixed/broken.jpg", b"not an image at all")
    messages = {key_of(message): message for message in stack.receive(4)}
    down = [key for key in messages if "down" in key]
    assert stack.invoke([m for key, m in messages.items() if key not in down]) == set()
    for key in down:  # their DLQ copies are gone (expired, or purged): only the results say they failed
        record_outage_failure(stack, messages[key])
        stack.sqs.delete_message(
            QueueUrl=stack.resources.queue_url, ReceiptHandle=messages[key]["ReceiptHandle"]
        )
    calls_before = stack.proxy.inference_calls()

    summary = backfill_cli(stack, "--only-failed", "--reason", "inference_unavailable")

    assert summary["sent"] == 2
    assert summary["skipped"] == {NOT_FAILED: 1, OTHER_REASON: 1}
    assert summary["rerun"].startswith("rerun-")
    assert drain(stack) == 2
    assert [status(stack, key) for key in down] == [("succeeded", None)] * 2
    assert status(stack, "incoming/mixed/broken.jpg") == ("failed", "image_undecodable")
    assert stack.proxy.inference_calls() == calls_before + 2


def test_only_failed_runs_again_a_failure_that_idempotency_remembers(ingest_stack: StackFactory) -> None:
    """GIVEN an object that failed for good (`object_too_large`: the function returned, so idempotency
    remembers the version as done) WHEN the limit is raised (no change of fingerprint) THEN a plain
    backfill is answered from the idempotency table and changes nothing, while `--only-failed` (its rerun
    token is part of the idempotency key) runs the object again and it succeeds, once."""
    small = ingest_stack(MAX_OBJECT_BYTES="1000")
    key = small.upload("large.jpg", samples.sample_jpeg("astronaut"))
    assert small.invoke(small.receive(1)) == set()
    assert status(small, key) == ("failed", "object_too_large")

    raised = ingest_stack(MAX_OBJECT_BYTES=str(50 * 1024 * 1024))  # redeployed (same moto state)
    assert backfill_cli(raised)["sent"] == 1
    assert drain(raised) == 1
    assert status(raised, key) == ("failed", "object_too_large")
    assert raised.proxy.inference_calls() == 0

    assert backfill_cli(raised, "--only-failed", "--reason", "object_too_large")["sent"] == 1
    assert drain(raised) == 1
    assert status(raised, key) == ("succeeded", None)
    assert raised.proxy.inference_calls() == 1
    assert backfill_cli(raised, "--only-failed")["sent"] == 0


def test_s3kp_redrive_without_a_running_stack_says_so() -> None:
    from tests.conftest import free_port

    command = [
        sys.executable,
        "-m",
        "s3kp.cli",
        "redrive",
        "--endpoint-url",
        f"http://127.0.0.1:{free_port()}",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "no local stack answers" in done.stderr
    assert "--queue-url" in done.stderr
    assert "Traceback" not in done.stderr


# --- the whole offline stack ---------------------------------------------------------------------------


@pytest.fixture
def running_stack(tmp_path: Path) -> Iterator[RunningStack]:
    running = start_stack(tmp_path)
    yield running
    if running.process.poll() is None:
        os.killpg(running.process.pid, signal.SIGINT)
        try:
            running.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(running.process.pid, signal.SIGKILL)
            running.process.wait()


@pytest.mark.slow
def test_after_an_outage_redrive_and_only_failed_bring_every_upload_to_succeeded_on_s3kp_up(
    running_stack: RunningStack,
) -> None:
    """GIVEN `s3kp up` (its Lambda workers polling the queue) and two uploads an outage failed before the
    fix, one with its message in the DLQ and one whose message is gone WHEN the operator runs
    `s3kp redrive` and then `s3kp backfill --only-failed --reason inference_unavailable` THEN the stack
    processes both and both results read `succeeded` in the HTTP API; the DLQ is empty."""
    running_stack.read_until(r"^Ready\.", READY_TIMEOUT)
    bucket = running_stack.printed(r"^\s*bucket\s+(\S+)$").group(1)
    api_url = running_stack.printed(r"^\s*HTTP API\s+(http://\S+)").group(1)
    endpoint = f"http://127.0.0.1:{running_stack.ports['aws']}"
    session = local_session()
    s3, sqs = (session.client(name, endpoint_url=endpoint) for name in ("s3", "sqs"))
    table = session.resource("dynamodb", endpoint_url=endpoint).Table("s3kp-local-results")
    dlq_url = sqs.get_queue_url(QueueName="s3kp-local-ingest-dlq")["QueueUrl"]

    # Uploaded while the notification was off, so the stack has not processed them on its own.
    saved = s3.get_bucket_notification_configuration(Bucket=bucket)
    saved.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    keys = [f"incoming/outage/{name}.jpg" for name in ("dead-lettered", "message-gone")]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=samples.sample_jpeg("astronaut"))
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=saved)
    store = DynamoDBResultsStore(table, s3, predictions_prefix="predictions/")
    for key in keys:
        head = s3.head_object(Bucket=bucket, Key=key)
        source = SourceObject(
            bucket=bucket, key=key, etag=head["ETag"].strip('"'), size=head["ContentLength"]
        )
        body = s3_notification(source, head["LastModified"])
        write_outage_failure(store, body, "faces/2", None)
        if key.endswith("dead-lettered.jpg"):
            sqs.send_message(QueueUrl=dlq_url, MessageBody=body)

    redriven = s3kp_json("redrive", "--endpoint-url", endpoint)
    images, videos = redriven["queues"]
    assert (images["queue"], images["method"], images["moved"]) == (IMAGES, BY_HAND, 1)
    assert (videos["queue"], videos["moved"]) == (VIDEOS, 0)
    assert poll_status(api_url, bucket, keys[0], "succeeded")["source"]["key"] == keys[0]

    rerun = s3kp_json("backfill", f"s3://{bucket}/incoming/", "--endpoint-url", endpoint,
                      "--only-failed", "--reason", "inference_unavailable")  # fmt: skip
    assert rerun["sent"] == 1
    assert poll_status(api_url, bucket, keys[1], "succeeded")["detections"] >= 1
    assert redrive_messages_in(sqs, dlq_url) == 0


def s3_notification(source: SourceObject, last_modified: datetime) -> str:
    """The message S3 (here moto) puts in the queue for an upload: no replay marker."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": last_modified.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "UploadBucketNotification",
            "bucket": {"name": source.bucket, "arn": f"arn:aws:s3:::{source.bucket}"},
            "object": {"key": quote_plus(source.key), "size": source.size, "eTag": source.etag},
        },
    }
    return json.dumps({"Records": [record]})


def s3kp_json(*arguments: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "s3kp.cli", *arguments, "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def poll_status(api_url: str, bucket: str, key: str, wanted: str) -> dict[str, Any]:
    """The result once the HTTP API shows it with status `wanted`."""
    url = f"{api_url}/results/{result_id_for(bucket, key)}"
    deadline = time.monotonic() + RESULT_TIMEOUT
    while time.monotonic() < deadline:
        result = dict(requests.get(url, timeout=30).json())
        if result.get("status") == wanted:
            return result
        time.sleep(0.25)
    raise AssertionError(f"{key} never became {wanted}: {result}")
