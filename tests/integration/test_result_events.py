"""Result events, backfill and reprocessing through the offline stack's pieces: moto with the resources
of template.yaml (the results bus included), the project's inference server, the ingest handler invoked
with the messages the bucket notification (or `s3kp backfill`) put in the queue, and a downstream
consumer written exactly as docs/events.md says: a rule `{"detail-type": ["Keypoint Result"]}` on the
bus, targeting its own queue.
"""

# The fixtures come from the sibling module (there is no ingest conftest): parameters "redefine" them.
# ruff: noqa: F811

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import jsonschema
from s3kp_core.fingerprint import inference_fingerprint

from s3kp import samples
from s3kp.backfill import KeyFilter, Plan, run_backfill
from tests.conftest import MODEL_SERVER_API_KEY, ROOT
from tests.integration.test_ingest_pipeline import (  # noqa: F401
    FULL_RANGE_FACES,
    MODEL_ID,
    Fault,
    IngestStack,
    StackFactory,
    ingest_stack,
    proxy,
)

SCHEMA = json.loads((ROOT / "docs" / "schemas" / "keypoint-result-detail.schema.json").read_text())
DOCUMENTED_PATTERN = {"detail-type": ["Keypoint Result"]}
FAST = {"INFERENCE_MAX_ATTEMPTS": "1"}


class Consumer:
    """A downstream system: its own rule (the documented pattern) and queue on the results bus."""

    def __init__(self, bus: str, name: str = "downstream") -> None:
        self.events = boto3.client("events")
        self.sqs = boto3.client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.events.put_rule(Name=name, EventBusName=bus, EventPattern=json.dumps(DOCUMENTED_PATTERN))
        self.events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])

    def received(self) -> list[dict[str, Any]]:
        """Every event delivered so far (deleted once read), each checked against the committed schema."""
        events: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return events
            for message in messages:
                assert MODEL_SERVER_API_KEY not in message["Body"]
                event = json.loads(message["Body"])
                jsonschema.validate(event["detail"], SCHEMA)
                events.append(event)
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def keys_of(events: list[dict[str, Any]]) -> list[str]:
    return sorted(event["detail"]["source"]["key"] for event in events)


# --- result events --------------------------------------------------------------------------------


def test_one_event_per_upload_matching_the_documented_pattern_and_none_for_duplicates(
    ingest_stack: StackFactory,
) -> None:
    stack = ingest_stack(model_id=FULL_RANGE_FACES)
    consumer = Consumer(stack.resources.event_bus_name)
    keys = {
        "faces": stack.upload("events/four faces.jpg", samples.sample_jpeg("faces_2x2")),
        "astronaut": stack.upload("events/astronaut.jpg", samples.sample_jpeg("astronaut")),
        "broken": stack.upload("events/broken.jpg", b"not an image at all"),
    }
    messages = stack.receive(3)

    assert stack.invoke(messages) == set()

    events = consumer.received()
    assert keys_of(events) == sorted(keys.values())
    by_key = {event["detail"]["source"]["key"]: event for event in events}
    faces = by_key[keys["faces"]]
    assert (faces["source"], faces["detail-type"]) == ("s3-keypoints", "Keypoint Result")
    detail = faces["detail"]
    stored = stack.result(keys["faces"])
    assert detail["result_id"] == stored["result_id"]
    assert (detail["status"], detail["detections"], detail["counts"]) == ("succeeded", 4, {"face": 4})
    assert detail["keypoints"] == 24
    assert detail["model_id"] == FULL_RANGE_FACES
    assert detail["fingerprint"] == stored["fingerprint"]
    # The event points at this result's own drawing: `annotated/<relative key>.<event token>.jpg`.
    assert detail["annotated"] == stored["annotated"]
    assert detail["annotated"]["bucket"] == stack.resources.bucket
    assert re.fullmatch(r"annotated/events/four faces\.jpg\.[0-9a-f]{16}\.jpg", detail["annotated"]["key"])
    assert detail["api_path"] == f"/results/{stored['result_id']}"
    assert detail["predictions"] is None  # inline in the item: read them from api_path
    broken = by_key[keys["broken"]]["detail"]
    assert (broken["status"], broken["reason"]["code"]) == ("failed", "image_undecodable")

    # Redelivered messages and a duplicate S3 event: nothing changes, nothing is published.
    stack.make_visible_again(messages)
    redelivered = stack.receive(3)
    stack.sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody=messages[0]["Body"])
    assert stack.invoke([*redelivered, *stack.receive(1)]) == set()
    assert consumer.received() == []


def test_running_an_object_again_without_a_change_of_state_publishes_nothing_new(
    ingest_stack: StackFactory,
) -> None:
    """Idempotency does not cover everything: a failure caused by the deployment (a wrong key, recorded here
    because the message is too old to wait for the key: the ordinary path) is not remembered, so the
    re-sent event runs the object again. Same state again: no second event; once the key is fixed and the
    object succeeds, one more."""
    stack = ingest_stack(
        api_key="placeholder-key-0123",
        API_KEY_CACHE_SECONDS="0",
        MAX_RECEIVE_COUNT="1",
        MESSAGE_RETENTION_SECONDS="60",
        OUTAGE_MAX_DEFER_SECONDS="60",
        CIRCUIT_PROBE_SECONDS="1",
    )
    consumer = Consumer(stack.resources.event_bus_name)
    key = stack.upload("early.jpg", samples.sample_jpeg("astronaut"))
    messages = stack.receive(1)
    assert len(stack.invoke(messages)) == 1  # recorded failed on its last delivery, on to the DLQ
    for _ in range(2):
        time.sleep(1.1)  # past the probe interval: each run is the circuit's probe, and calls the endpoint
        stack.sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody=messages[0]["Body"])
        assert len(stack.invoke(stack.receive(1))) == 1
    assert stack.proxy.inference_calls() == 3
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.resources.api_key_secret_arn, SecretString=MODEL_SERVER_API_KEY
    )
    time.sleep(1.1)
    stack.sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody=messages[0]["Body"])
    assert stack.invoke(stack.receive(1)) == set()

    statuses = [event["detail"]["status"] for event in consumer.received()]
    assert statuses == ["failed", "succeeded"]
    assert stack.result(key)["status"] == "succeeded"


def test_a_failure_recorded_on_the_last_delivery_then_a_success_on_redrive_publish_twice(
    ingest_stack: StackFactory,
) -> None:
    """(A message too old to wait for the endpoint: the ordinary path records the failure.)"""
    stack = ingest_stack(
        MAX_RECEIVE_COUNT="1",
        MESSAGE_RETENTION_SECONDS="60",
        OUTAGE_MAX_DEFER_SECONDS="60",
        CIRCUIT_PROBE_SECONDS="1",
        **FAST,
    )
    consumer = Consumer(stack.resources.event_bus_name)
    stack.proxy.faults.append(Fault(503))
    key = stack.upload("flaky.jpg", samples.sample_jpeg("astronaut"))
    messages = stack.receive(1)

    assert stack.invoke(messages) == {messages[0]["MessageId"]}  # to the DLQ, failure recorded
    time.sleep(1.1)  # the next probe may go
    stack.make_visible_again(messages)  # the redrive
    assert stack.invoke(stack.receive(1)) == set()

    statuses = [(event["detail"]["status"], (event["detail"]["reason"] or {}).get("code")) for event in
                consumer.received()]  # fmt: skip
    assert statuses == [("failed", "inference_unavailable"), ("succeeded", None)]
    assert stack.result(key)["status"] == "succeeded"


def test_a_bus_that_refuses_the_event_keeps_the_result_and_the_redelivery_publishes_it(
    ingest_stack: StackFactory,
) -> None:
    """GIVEN PutEvents failing on every attempt (here: a bus that does not exist) THEN the result is
    recorded, the message is reported failed; WHEN it is redelivered once the bus works THEN the event
    is published, although the redelivery changes nothing else."""
    stack = ingest_stack(RESULTS_EVENT_BUS="no-such-bus")
    key = stack.upload("owed.jpg", samples.sample_jpeg("astronaut"))
    messages = stack.receive(1)

    assert stack.invoke(messages) == {messages[0]["MessageId"]}
    assert stack.result(key)["status"] == "succeeded"  # not rolled back
    assert "event_pending" in stack.result(key)

    fixed = ingest_stack()  # the right bus (same moto state)
    consumer = Consumer(fixed.resources.event_bus_name)
    fixed.make_visible_again(messages)
    assert fixed.invoke(fixed.receive(1)) == set()

    assert keys_of(consumer.received()) == [key]
    assert "event_pending" not in fixed.result(key)


# --- backfill and reprocessing ---------------------------------------------------------------------


def backfill_cli(stack: IngestStack, *options: str) -> dict[str, Any]:
    """`s3kp backfill` as a user runs it against the local stack: no --queue-url, it finds the queue."""
    url = f"s3://{stack.resources.bucket}/{stack.resources.input_prefix}"
    endpoint = stack.resources.endpoint_url
    command = [sys.executable, "-m", "s3kp.cli", "backfill", url, "--endpoint-url", endpoint, "--json",
               *options]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def drain(stack: IngestStack) -> int:
    """Process everything in the ingest queue, in batches of ten; returns the number of messages."""
    total = 0
    while True:
        messages = stack.sqs.receive_message(
            QueueUrl=stack.resources.queue_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        if not messages:
            return total
        assert stack.invoke(messages) == set()
        total += len(messages)


def upload_without_notification(stack: IngestStack, count: int) -> list[str]:
    s3 = stack.s3
    saved = s3.get_bucket_notification_configuration(Bucket=stack.resources.bucket)
    saved.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=stack.resources.bucket, NotificationConfiguration={})
    keys = [
        stack.upload(f"before/{index} photo.jpg", samples.sample_jpeg("astronaut")) for index in range(count)
    ]
    stack.upload("before/notes.txt", b"not an image suffix")
    s3.put_bucket_notification_configuration(Bucket=stack.resources.bucket, NotificationConfiguration=saved)
    _discard_test_events(stack)
    return keys


def _discard_test_events(stack: IngestStack) -> None:
    assert drain(stack) <= 1  # moto's s3:TestEvent, dropped by the handler


def test_backfill_processes_objects_written_while_the_notification_was_off_once(
    ingest_stack: StackFactory,
) -> None:
    stack = ingest_stack()
    consumer = Consumer(stack.resources.event_bus_name)
    keys = upload_without_notification(stack, 4)
    assert stack.results_count() == 0

    first = backfill_cli(stack)
    assert (first["listed"], first["sent"]) == (5, 4)
    assert first["skipped"] == {"not matched by the bucket notification (prefix/suffix)": 1}
    assert drain(stack) == 4

    assert stack.proxy.inference_calls() == 4
    assert sorted(stack.result(key)["status"] for key in keys) == ["succeeded"] * 4
    assert keys_of(consumer.received()) == sorted(keys)
    for _ in range(2):
        again = backfill_cli(stack, "--only-missing")
        assert again["sent"] == 0
        assert drain(stack) == 0
    # Without --only-missing, idempotency turns the resent messages into no-ops: no inference, no event.
    assert backfill_cli(stack, "--limit", "2")["sent"] == 2
    assert drain(stack) == 2
    assert stack.proxy.inference_calls() == 4
    assert consumer.received() == []


def test_after_a_model_change_reprocess_sends_each_object_once_and_publishes_the_new_results(
    ingest_stack: StackFactory,
) -> None:
    old = ingest_stack(model_id=MODEL_ID)
    keys = [old.upload(f"group/{index}.jpg", samples.sample_jpeg("faces_2x2")) for index in range(3)]
    assert old.invoke(old.receive(3)) == set()
    old_fingerprint = old.result(keys[0])["fingerprint"]

    new = ingest_stack(model_id=FULL_RANGE_FACES)  # redeployed with another model (same moto state)
    consumer = Consumer(new.resources.event_bus_name)
    dry = backfill_cli(new, "--reprocess", "--model-id", FULL_RANGE_FACES, "--dry-run")
    assert (dry["would_send"], drain(new)) == (3, 0)
    sent = backfill_cli(new, "--reprocess", "--model-id", FULL_RANGE_FACES)
    assert sent["sent"] == 3
    assert drain(new) == 3

    expected = inference_fingerprint(
        FULL_RANGE_FACES, confidence=0.4, overlap=0.3, max_side_for_inference=1024
    )
    assert sent["fingerprint"] == expected != old_fingerprint
    for key in keys:
        result = new.result(key)
        assert (result["model_id"], result["fingerprint"], result["detections"]) == (
            FULL_RANGE_FACES,
            expected,
            4,
        )
    events = consumer.received()
    assert keys_of(events) == sorted(keys)
    assert {event["detail"]["model_id"] for event in events} == {FULL_RANGE_FACES}
    assert backfill_cli(new, "--reprocess", "--model-id", FULL_RANGE_FACES)["sent"] == 0
    # VideoFps is part of the videos' fingerprint only: a change of it leaves the images alone.
    after_fps_change = backfill_cli(new, "--reprocess", "--model-id", FULL_RANGE_FACES, "--video-fps", "2")
    assert (after_fps_change["sent"], after_fps_change["fingerprint"]) == (0, expected)


def test_backfill_in_process_reports_what_it_listed_and_sent(ingest_stack: StackFactory) -> None:
    """The library entry point the CLI wraps (here with an explicit queue URL, as against AWS)."""
    stack = ingest_stack()
    upload_without_notification(stack, 2)
    summary = run_backfill(
        s3=stack.s3,
        sqs=stack.sqs,
        dynamodb=boto3.client("dynamodb"),
        bucket=stack.resources.bucket,
        prefix="",
        queue_url=stack.resources.queue_url,
        results_table=stack.resources.results_table,
        region="us-east-1",
        plan=Plan(KeyFilter.from_template(), only_missing=True),
    )
    assert (summary.listed, summary.sent) == (3, 2)
    assert drain(stack) == 2


# --- `s3kp events` ---------------------------------------------------------------------------------


def test_s3kp_events_prints_each_event_and_removes_its_rule_and_queue(ingest_stack: StackFactory) -> None:
    stack = ingest_stack()
    bus = stack.resources.event_bus_name
    events_client = boto3.client("events")
    command = [sys.executable, "-m", "s3kp.cli", "events", "--endpoint-url", stack.resources.endpoint_url,
               "--json", "--count", "1", "--timeout", "90"]  # fmt: skip
    follower = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not events_client.list_rules(EventBusName=bus)["Rules"]:
            assert follower.poll() is None, follower.communicate()
            assert time.monotonic() < deadline, "s3kp events never added its rule"
            time.sleep(0.2)
        key = stack.upload("followed.jpg", samples.sample_jpeg("astronaut"))
        assert stack.invoke(stack.receive(1)) == set()
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()

    assert follower.returncode == 0, err
    (line,) = out.splitlines()
    event = json.loads(line)
    assert (event["detail"]["source"]["key"], event["detail"]["status"]) == (key, "succeeded")
    assert events_client.list_rules(EventBusName=bus)["Rules"] == []
    assert not [url for url in stack.sqs.list_queues().get("QueueUrls", []) if "s3kp-events-" in url]


def test_s3kp_backfill_without_a_running_stack_says_so(tmp_path: Path) -> None:
    from tests.conftest import free_port

    command = [sys.executable, "-m", "s3kp.cli", "backfill", "s3://bucket/incoming/", "--endpoint-url",
               f"http://127.0.0.1:{free_port()}"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "no local stack answers" in done.stderr
    assert "--queue-url" in done.stderr
