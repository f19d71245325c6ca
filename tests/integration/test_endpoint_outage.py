"""An inference endpoint outage many times longer than a message's old life, through the real offline
stack: the endpoint refuses connections while uploads arrive, then comes back. Every upload succeeds on its
own, nothing is failed and the dead-letter queue stays empty (issue 19); `s3kp up`'s output shows the
circuit opening and closing.

Before issue 19 a message gave up after its MaxReceiveCount deliveries and their backoffs: about a minute
with the template's 15 s base delay. This test shortens that base delay to 3 s (an old life of at most
~10 s: 3 deliveries, backoffs of 1.5-3 s and 3-6 s) so an outage of a bit over a minute proves the same
thing as a three-minute one with the template's delays, in a third of the time."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from s3kp_core.results import result_id_for

from s3kp import samples
from s3kp.local.stack import LocalStack, StackOptions
from tests.conftest import MODEL_SERVER_API_KEY, free_port, running_model_server

OUTAGE_SECONDS = 65.0  # over 6 old lives (see the module doc), and 3 deferral caps
UPLOADS = 6
RECOVERY_TIMEOUT = 120.0
# A shorter probe interval, deferral cap and retry base delay than the template's (15 s, 60 s, 15 s) keep
# the test short; the mechanism is the same.
OVERRIDES = (
    ("CIRCUIT_PROBE_SECONDS", "5"),
    ("OUTAGE_MAX_DEFER_SECONDS", "20"),
    ("RETRY_BASE_DELAY_SECONDS", "3"),
)


def statuses(table: Any, bucket: str, keys: list[str]) -> dict[str, str | None]:
    found = {}
    for key in keys:
        item = table.get_item(Key={"result_id": result_id_for(bucket, key)}).get("Item")
        found[key] = None if item is None else str(item["status"])
    return found


def dead_letters(sqs: Any, dlq_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.mark.slow
def test_uploads_made_during_an_outage_six_times_a_messages_old_life_all_succeed_once_it_is_back(
    tmp_path: Path,
) -> None:
    endpoint_port = free_port()  # nothing listens there yet: connection refused
    options = StackOptions(
        aws_port=free_port(),
        inference_port=free_port(),
        api_port=free_port(),
        inference_url=f"http://127.0.0.1:{endpoint_port}",
        api_key=MODEL_SERVER_API_KEY,
        model_id="faces/1",
        log_dir=tmp_path / "logs",
        ingest_overrides=OVERRIDES,
    )
    printed: list[str] = []
    environment = dict(os.environ)
    with LocalStack(options, echo=printed.append, report_batches=False) as stack:
        s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint, region_name="us-east-1")
        sqs = boto3.client("sqs", endpoint_url=stack.aws_endpoint, region_name="us-east-1")
        table = boto3.resource("dynamodb", endpoint_url=stack.aws_endpoint, region_name="us-east-1").Table(
            stack.resources.results_table
        )
        bucket = stack.resources.bucket
        keys = [f"{stack.resources.input_prefix}outage/{n}.jpg" for n in range(UPLOADS)]
        outage_started = time.monotonic()
        for key in keys:
            s3.put_object(Bucket=bucket, Key=key, Body=samples.sample_jpeg("astronaut"))

        # GIVEN the endpoint refuses connections for longer than a message used to live.
        while time.monotonic() - outage_started < OUTAGE_SECONDS:
            assert set(statuses(table, bucket, keys).values()) == {None}  # waiting: never failed
            assert dead_letters(sqs, stack.resources.dlq_url) == 0
            time.sleep(10)

        # WHEN it comes back on the same address.
        with running_model_server(port=endpoint_port):
            recovered = time.monotonic()
            while time.monotonic() - recovered < RECOVERY_TIMEOUT:
                if set(statuses(table, bucket, keys).values()) == {"succeeded"}:
                    break
                time.sleep(1)
            drained_in = time.monotonic() - recovered

            # THEN every upload succeeded by itself, nothing reached the dead-letter queue.
            assert statuses(table, bucket, keys) == dict.fromkeys(keys, "succeeded"), (
                f"after {drained_in:.0f} s"
            )
            assert dead_letters(sqs, stack.resources.dlq_url) == 0
            deadline = time.monotonic() + 10
            while not any("circuit CLOSED" in line for line in printed) and time.monotonic() < deadline:
                time.sleep(0.5)

    assert dict(os.environ) == environment  # later tests must not talk to the stack's (stopped) moto
    opened = [line for line in printed if "circuit OPEN" in line]
    closed = [line for line in printed if "circuit CLOSED" in line]
    assert opened, printed
    assert "inference endpoint unreachable: connection refused" in opened[0]
    assert closed, printed
