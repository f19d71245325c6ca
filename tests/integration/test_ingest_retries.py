"""How messages come back after a failure, and what a duplicate of an object in progress does: the ingest
handler against moto's real SQS visibility (the queue's timeout is 30 s here, 750 s in the template)."""

# The fixtures come from the sibling module (there is no ingest conftest): parameters "redefine" them.
# ruff: noqa: F811

from __future__ import annotations

import json
import threading
import time
from typing import Any

from s3kp import samples
from s3kp.local.lambda_runtime import LambdaContext
from tests.integration.test_ingest_pipeline import Fault, StackFactory, ingest_stack, proxy  # noqa: F401

FAST = {"INFERENCE_READ_TIMEOUT": "1", "INFERENCE_MAX_ATTEMPTS": "2", "RETRY_BASE_DELAY_SECONDS": "2"}
# A message the queue would not keep through one more deferral (retention 60 s, deferral cap 60 s) takes the
# ordinary path when the endpoint fails: reported failed, backed off, recorded on its last delivery. A
# one-second probe interval lets its retry through the circuit its first failure opened.
ORDINARY_PATH = {
    "MESSAGE_RETENTION_SECONDS": "60",
    "OUTAGE_MAX_DEFER_SECONDS": "60",
    "CIRCUIT_PROBE_SECONDS": "1",
}


def receive_within(stack: Any, seconds: float) -> list[dict[str, Any]]:
    """Whatever the queue hands out within `seconds` (long polls), with every attribute."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        wait = max(1, min(5, int(deadline - time.monotonic())))
        messages = stack.sqs.receive_message(
            QueueUrl=stack.resources.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if messages:
            return list(messages)
    return []


def test_a_failed_message_comes_back_after_a_short_backoff_not_the_visibility_timeout(
    ingest_stack: StackFactory,
) -> None:
    """GIVEN an endpoint down for the first delivery of a message too old to wait for it (the ordinary
    path) WHEN the message is reported failed THEN it is visible again after ~RETRY_BASE_DELAY_SECONDS (1-2 s
    here), long before the queue's 30 s timeout, and the retry succeeds."""
    stack = ingest_stack(**FAST, **ORDINARY_PATH)
    stack.proxy.faults.extend([Fault(503)] * 2)
    key = stack.upload("backoff.jpg", samples.sample_jpeg("astronaut"))
    messages = stack.receive(1)
    assert stack.invoke(messages) == {messages[0]["MessageId"]}
    failed_at = time.monotonic()

    again = receive_within(stack, 15)

    assert [m["MessageId"] for m in again] == [messages[0]["MessageId"]]
    assert time.monotonic() - failed_at < 15
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    assert stack.invoke(again) == set()
    assert stack.result(key)["status"] == "succeeded"


def test_a_contract_breaking_200_is_retried_and_recorded_only_on_the_last_delivery(
    ingest_stack: StackFactory,
) -> None:
    """GIVEN a gateway answering 200 `{"message": ...}` (no `predictions`) on every attempt, for a message too
    old to wait for the endpoint, THEN the first delivery is retried without a record; the last one
    records `inference_bad_response`."""
    stack = ingest_stack(MAX_RECEIVE_COUNT="2", **FAST, **ORDINARY_PATH)
    stack.proxy.faults.extend([Fault(200)] * 4)
    key = stack.upload("gateway.jpg", samples.sample_jpeg("astronaut"))
    messages = stack.receive(1)

    assert stack.invoke(messages) == {messages[0]["MessageId"]}
    assert stack.result(key) is None
    again = receive_within(stack, 15)
    assert stack.invoke(again) == {messages[0]["MessageId"]}

    record = stack.result(key)
    assert record["status"] == "failed"
    assert record["reason"]["code"] == "inference_bad_response"
    assert stack.proxy.inference_calls() == 3  # two attempts, then the open circuit's one-attempt probe


def test_a_crashed_invocation_leaves_its_messages_leased_for_its_timeout_only(
    ingest_stack: StackFactory,
) -> None:
    """GIVEN an invocation that never settles its messages (as when the worker is killed) THEN they come
    back when the invocation would have timed out plus a margin (9 s + 10 s here), not after the
    queue's timeout (30 s here, 750 s in the template)."""
    stack = ingest_stack(**FAST | {"RETRY_BASE_DELAY_SECONDS": "60"})
    stack.upload("crash.jpg", samples.sample_jpeg("astronaut"))
    messages = stack.receive(1)
    invoked_at = time.monotonic()
    # The handler runs and leases the message; nobody deletes it afterwards, as after a crash.
    stack.invoke(messages, timeout_seconds=9)

    again = receive_within(stack, 27 - (time.monotonic() - invoked_at))

    assert [m["MessageId"] for m in again] == [messages[0]["MessageId"]]
    assert 9 <= time.monotonic() - invoked_at < 27


def test_a_duplicate_of_an_object_in_progress_is_deferred_not_failed(ingest_stack: StackFactory) -> None:
    """GIVEN a first copy still running (a slow endpoint) WHEN a duplicate of the same event arrives THEN
    the duplicate is not a batch item failure (it would spend a receive on its way to the DLQ): it is
    sent again, delayed until the first copy's in-progress record expires, and then answered from the
    idempotency table, with one inference call in all."""
    stack = ingest_stack(**FAST | {"INFERENCE_READ_TIMEOUT": "10"})
    stack.proxy.faults.append(Fault(delay=3.0))  # the first copy's request is slow, then goes through
    key = stack.upload("twice.jpg", samples.sample_jpeg("astronaut"))
    (message,) = stack.receive(1)
    stack.sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody=message["Body"])
    (duplicate,) = stack.receive(1)

    # The first copy as a direct invocation with a 12 s budget: its in-progress record expires in ~12 s.
    first = threading.Thread(
        target=stack.handler.lambda_handler,
        args=(json.loads(message["Body"]), LambdaContext(timeout_seconds=12)),
    )
    first.start()
    time.sleep(1.0)
    assert stack.invoke([duplicate]) == set()
    deferred_at = time.monotonic()
    first.join(30)
    assert stack.result(key)["status"] == "succeeded"

    (deferred,) = receive_within(stack, 25)
    assert deferred["MessageId"] not in {message["MessageId"], duplicate["MessageId"]}
    assert deferred["Body"] == message["Body"]
    assert deferred["MessageAttributes"]["s3kp-deferrals"]["StringValue"] == "1"
    assert 6 <= time.monotonic() - deferred_at < 25  # ~the first copy's remaining time, not 30 s or more
    assert stack.invoke([deferred]) == set()
    assert stack.proxy.inference_calls() == 1
    assert stack.results_count() == 1


def test_look_alike_keys_keep_their_own_drawings_and_a_stale_event_never_replaces_a_newer_one(
    ingest_stack: StackFactory,
) -> None:
    """GIVEN `x.png` and `x.jpg`, `a//x.jpg` and `a/./x.jpg` (one drawing key each under the old scheme)
    THEN four results pointing at four drawings. GIVEN an older event of one key processed after a newer
    one (its notification delivered late) THEN the result and the drawing stay the newer event's."""
    stack = ingest_stack()
    names = ["x.png", "x.jpg", "a//x.jpg", "a/./x.jpg"]
    keys = [stack.upload(name, samples.sample_jpeg("astronaut")) for name in names]
    assert stack.invoke(stack.receive(len(names))) == set()
    drawings = {stack.result(key)["annotated"]["key"] for key in keys}
    assert len(drawings) == len(names)
    assert "annotated/x.png" in {d.rsplit(".", 2)[0] for d in drawings}
    for key in keys:  # each drawing exists and names its own source
        _, response = stack.annotated(stack.result(key))
        assert response["Metadata"]["source-key"] == key.replace(" ", "%20")

    stack.upload("late.jpg", samples.sample_jpeg("astronaut"))
    (first,) = stack.receive(1)
    stack.upload("late.jpg", samples.sample_jpeg("faces_2x2"))
    (second,) = stack.receive(1)
    assert stack.invoke([second]) == set()
    newer = stack.result(stack.key_for("late.jpg"))
    assert stack.invoke([first]) == set()  # the older event, delivered late

    assert stack.result(stack.key_for("late.jpg")) == newer
    body, _ = stack.annotated(newer)
    assert body[:2] == b"\xff\xd8"
    listed = stack.s3.list_objects_v2(Bucket=stack.resources.bucket, Prefix="annotated/late.jpg")
    assert [item["Key"] for item in listed["Contents"]] == [newer["annotated"]["key"]]
