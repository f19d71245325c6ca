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


def test_a_wrong_api_key_is_a_recorded_failure_without_retries(ingest_stack: StackFactory) -> None:
    """GIVEN a key the server refuses (401) THEN one call, a `failed` result naming the cause, no retry
    of the message, and the key appears nowhere in the stored reason."""
    wrong_key = "definitely-not-the-key-0123"
    stack = ingest_stack(api_key=wrong_key)
    key = stack.upload("denied.jpg", samples.sample_jpeg("astronaut"))

    assert stack.invoke(stack.receive(1)) == set()

    record = stack.result(key)
    assert record["status"] == "failed"
    assert record["reason"]["code"] == "inference_unauthorized"
    assert wrong_key not in str(record)
    assert stack.proxy.inference_calls() == 1


def test_after_the_key_is_fixed_the_same_event_is_processed_again(ingest_stack: StackFactory) -> None:
    """GIVEN objects that failed with 401 (say a fresh deploy's placeholder key) WHEN the key is fixed and
    the same event arrives again THEN the object is processed: idempotency remembers object failures, not
    configuration failures."""
    stack = ingest_stack(api_key="placeholder-key-0123", API_KEY_CACHE_SECONDS="0")
    key = stack.upload("early.jpg", samples.sample_jpeg("astronaut"))
    messages = stack.receive(1)
    assert stack.invoke(messages) == set()
    assert stack.result(key)["reason"]["code"] == "inference_unauthorized"

    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.resources.api_key_secret_arn, SecretString=MODEL_SERVER_API_KEY
    )
    stack.make_visible_again(messages)
    assert stack.invoke(stack.receive(1)) == set()

    assert stack.result(key)["status"] == "succeeded"
    assert stack.proxy.inference_calls() == 2


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


def test_an_endpoint_that_stays_down_fails_the_message_for_a_later_retry(ingest_stack: StackFactory) -> None:
    """GIVEN every attempt answers 503 on a delivery that is not the last THEN the message is reported
    failed (SQS retries it later) and no result is recorded yet; the next delivery succeeds."""
    stack = ingest_stack(**FAST)
    stack.proxy.faults.extend([Fault(503)] * 4)
    key = stack.upload("later.jpg", samples.sample_jpeg("astronaut"))
    messages = stack.receive(1)

    assert stack.invoke(messages) == {messages[0]["MessageId"]}
    assert stack.result(key) is None

    stack.make_visible_again(messages)
    assert stack.invoke(stack.receive(1)) == set()
    assert stack.result(key)["status"] == "succeeded"


def test_on_the_last_delivery_an_unavailable_endpoint_is_recorded_before_the_dlq(
    ingest_stack: StackFactory,
) -> None:
    """GIVEN MAX_RECEIVE_COUNT=1 (this delivery is the last before the dead-letter queue) and an endpoint
    that stays down THEN the object is recorded `failed` with `inference_unavailable`, and the message is
    still reported failed so it reaches the DLQ for a redrive."""
    stack = ingest_stack(MAX_RECEIVE_COUNT="1", **FAST)
    stack.proxy.faults.extend([Fault(503)] * 4)
    key = stack.upload("gave-up.jpg", samples.sample_jpeg("astronaut"))
    messages = stack.receive(1)

    assert stack.invoke(messages) == {messages[0]["MessageId"]}

    record = stack.result(key)
    assert record["status"] == "failed"
    assert record["reason"]["code"] == "inference_unavailable"
    assert MODEL_SERVER_API_KEY not in record["reason"]["message"]


def test_one_failing_message_does_not_fail_the_rest_of_the_batch(ingest_stack: StackFactory) -> None:
    stack = ingest_stack(INFERENCE_MAX_ATTEMPTS="1")
    stack.proxy.faults.append(Fault(503))  # only the first request of the batch fails
    keys = [stack.upload(f"batch-{index}.jpg", samples.sample_jpeg("astronaut")) for index in range(3)]
    messages = stack.receive(3)

    failed = stack.invoke(messages)

    assert len(failed) == 1
    assert sorted(stack.result(k) is not None for k in keys) == [False, True, True]


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
