"""The ingest Lambda when the inference endpoint misbehaves: a proxy in front of the real inference server
answers 429/503 or stalls, then lets requests through; a wrong API key gets the server's real 401."""

# The fixtures come from the sibling module (there is no ingest conftest): parameters "redefine" them.
# ruff: noqa: F811

from __future__ import annotations

import json

import boto3
import pytest
from s3kp_core.errors import TransientError

from s3kp import samples
from s3kp.local.lambda_runtime import LambdaContext
from tests.conftest import MODEL_SERVER_API_KEY
from tests.integration.test_ingest_pipeline import Fault, StackFactory, ingest_stack, proxy  # noqa: F401

# Short timeouts and few attempts keep the tests fast; the retry policy itself is the client's.
FAST = {"INFERENCE_READ_TIMEOUT": "1", "INFERENCE_MAX_ATTEMPTS": "4"}


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param([Fault(429, {"Retry-After": "0"}), Fault(503)], id="429-then-503"),
        pytest.param([Fault(delay=1.5)], id="read-timeout"),
        pytest.param([Fault(502), Fault(504)], id="502-then-504"),
    ],
)
def test_the_endpoint_failing_then_recovering_ends_in_success(
    ingest_stack: StackFactory, faults: list[Fault]
) -> None:
    """GIVEN the endpoint fails transiently a few times WHEN the object is processed THEN the client
    retries within the same invocation and the result is `succeeded`."""
    stack = ingest_stack(**FAST)
    stack.proxy.faults.extend(faults)
    key = stack.upload("flaky.jpg", samples.sample_jpeg("astronaut"))

    assert stack.invoke(stack.receive(1)) == set()

    assert stack.result(key)["status"] == "succeeded"
    assert stack.proxy.inference_calls() == len(faults) + 1


def test_a_wrong_api_key_is_not_a_failure_the_upload_waits_for_the_key(ingest_stack: StackFactory) -> None:
    """GIVEN a key the server refuses (401) THEN one call, no result, and the message is not failed (no
    receive spent toward the DLQ): it is sent again with a delay, waiting for the operator to fix the key
    (issue 19). The key appears nowhere in the queue or the table."""
    wrong_key = "definitely-not-the-key-0123"
    stack = ingest_stack(api_key=wrong_key)
    key = stack.upload("denied.jpg", samples.sample_jpeg("astronaut"))

    assert stack.invoke(stack.receive(1)) == set()

    assert stack.result(key) is None
    assert stack.proxy.inference_calls() == 1
    assert stack.queued_messages() == {"visible": 0, "delayed": 1, "in_flight": 1}  # the copy; the original
    assert wrong_key not in str(stack.table.scan()["Items"])


def test_after_the_key_is_fixed_the_waiting_upload_is_processed(ingest_stack: StackFactory) -> None:
    """GIVEN an upload waiting because the key was refused (a fresh deploy's placeholder key) WHEN the key is
    fixed THEN the next probe (the waiting message's own copy) succeeds: the upload is processed and the
    circuit closes, with no manual step."""
    stack = ingest_stack(
        api_key="placeholder-key-0123",
        API_KEY_CACHE_SECONDS="0",
        CIRCUIT_PROBE_SECONDS="1",
        OUTAGE_MAX_DEFER_SECONDS="1",
    )
    key = stack.upload("early.jpg", samples.sample_jpeg("astronaut"))
    assert stack.invoke(stack.receive(1)) == set()
    assert stack.result(key) is None

    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.resources.api_key_secret_arn, SecretString=MODEL_SERVER_API_KEY
    )
    assert stack.invoke(stack.receive(1, timeout=15)) == set()  # the deferred copy, after its delay

    assert stack.result(key)["status"] == "succeeded"
    assert stack.proxy.inference_calls() == 2


@pytest.mark.off_template("OUTPUT_BUCKET names a missing bucket, which the template's !Ref cannot")
def test_an_output_write_s3_refuses_is_a_recorded_failure_and_the_same_event_runs_after_the_fix(
    ingest_stack: StackFactory,
) -> None:
    """GIVEN OUTPUT_BUCKET names a bucket that does not exist, so moto answers the annotated copy's write
    with 404 NoSuchBucket (as S3 answers a bucket policy's denial with 403) THEN the first delivery
    records `failed` with `output_write_refused` and the message is not retried; once the bucket exists,
    the same event sent again is processed (a refused write belongs to the deployment: not remembered)."""
    stack = ingest_stack(OUTPUT_BUCKET="s3kp-local-missing-outputs")
    key = stack.upload("refused.jpg", samples.sample_jpeg("astronaut"))
    messages = stack.receive(1)

    assert stack.invoke(messages) == set()

    record = stack.result(key)
    assert record["status"] == "failed"
    assert record["reason"]["code"] == "output_write_refused"
    assert "NoSuchBucket (HTTP 404)" in record["reason"]["message"]
    assert stack.proxy.inference_calls() == 1

    stack.s3.create_bucket(Bucket="s3kp-local-missing-outputs")
    stack.make_visible_again(messages)
    assert stack.invoke(stack.receive(1)) == set()
    assert stack.result(key)["status"] == "succeeded"


def test_an_endpoint_that_stays_down_defers_the_message_and_the_copy_succeeds_later(
    ingest_stack: StackFactory,
) -> None:
    """GIVEN every attempt answers 503 THEN the message is not failed and nothing is recorded: a copy is
    sent with a delay (receive count back to 1); once the endpoint answers, the copy succeeds."""
    stack = ingest_stack(CIRCUIT_PROBE_SECONDS="1", OUTAGE_MAX_DEFER_SECONDS="1", **FAST)
    stack.proxy.faults.extend([Fault(503)] * 4)
    key = stack.upload("later.jpg", samples.sample_jpeg("astronaut"))

    assert stack.invoke(stack.receive(1)) == set()
    assert stack.result(key) is None

    (copy,) = stack.receive(1, timeout=15)
    assert copy["Attributes"]["ApproximateReceiveCount"] == "1"
    assert stack.invoke([copy]) == set()
    assert stack.result(key)["status"] == "succeeded"


def test_on_the_last_delivery_a_waiting_upload_is_still_deferred_not_recorded(
    ingest_stack: StackFactory,
) -> None:
    """GIVEN MAX_RECEIVE_COUNT=1 (this delivery is the last before the DLQ) and an endpoint that stays down
    THEN the message still waits (it is young): no `failed` state, nothing for the DLQ."""
    stack = ingest_stack(MAX_RECEIVE_COUNT="1", **FAST)
    stack.proxy.faults.extend([Fault(503)] * 4)
    key = stack.upload("waits.jpg", samples.sample_jpeg("astronaut"))

    assert stack.invoke(stack.receive(1)) == set()

    assert stack.result(key) is None


def test_past_the_queues_retention_an_unavailable_endpoint_is_recorded_before_the_dlq(
    ingest_stack: StackFactory,
) -> None:
    """GIVEN a message that would outlive the queue's retention if deferred again (here a 60 s retention
    and a 60 s deferral cap) on its last delivery THEN the object is recorded `failed` with a short reason
    (no URL, no key) and the message is reported failed, so it reaches the DLQ for a redrive."""
    stack = ingest_stack(
        MAX_RECEIVE_COUNT="1", MESSAGE_RETENTION_SECONDS="60", OUTAGE_MAX_DEFER_SECONDS="60", **FAST
    )
    stack.proxy.faults.extend([Fault(503)] * 4)
    key = stack.upload("gave-up.jpg", samples.sample_jpeg("astronaut"))
    messages = stack.receive(1)

    assert stack.invoke(messages) == {messages[0]["MessageId"]}

    record = stack.result(key)
    assert record["status"] == "failed"
    assert record["reason"] == {
        "code": "inference_unavailable",
        "message": "inference endpoint unavailable (HTTP 503) (4 attempts)",
    }


def test_a_rate_limited_message_waits_without_holding_up_the_rest_of_the_batch(
    ingest_stack: StackFactory,
) -> None:
    """A 429 means the endpoint is up: it opens no circuit, so the other messages of the batch go on."""
    stack = ingest_stack(INFERENCE_MAX_ATTEMPTS="1")
    stack.proxy.faults.append(Fault(429, {"Retry-After": "0"}))  # only the first request of the batch
    keys = [stack.upload(f"batch-{index}.jpg", samples.sample_jpeg("astronaut")) for index in range(3)]
    messages = stack.receive(3)

    assert stack.invoke(messages) == set()

    assert sorted(stack.result(k) is not None for k in keys) == [False, True, True]
    assert stack.queued_messages()["delayed"] == 1


def test_a_direct_s3_event_reraises_a_transient_failure_for_lambdas_own_retry(
    ingest_stack: StackFactory,
) -> None:
    """`sam local invoke` / an S3 -> Lambda trigger has no queue: the error must surface so Lambda's
    asynchronous invocation retries the event, and nothing is recorded yet."""
    stack = ingest_stack(INFERENCE_MAX_ATTEMPTS="1")
    stack.proxy.faults.append(Fault(503))
    key = stack.upload("direct-flaky.jpg", samples.sample_jpeg("astronaut"))
    (message,) = stack.receive(1)

    with pytest.raises(TransientError, match="inference_unavailable"):
        stack.handler.lambda_handler(json.loads(message["Body"]), LambdaContext())

    assert stack.result(key) is None
