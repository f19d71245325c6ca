"""`s3kp backfill`: how fast it sends, and how fast what it sends is processed end to end.

- Sending: `run_backfill` against moto server (its own process) with SEND_OBJECTS small objects:
  objects/s listed and sent (SendMessageBatch of 10), one batch at a time vs SEND_CONCURRENCY batches in
  flight (the ratio), and with `--only-missing` (one BatchGetItem per 100 objects).
- End to end: the offline stack (`LocalStack`: moto server, the inference server, the queue runner and
  MaximumConcurrency ingest workers) on free ports. E2E_OBJECTS images are uploaded with the bucket
  notification on (the baseline: S3's own events) and then as many with it off and sent by backfill;
  figure = objects / seconds from the first message to the last result, and the ratio between the two.
The machine is shared and loaded while these run: absolute figures are noisy; the ratio is the figure
to trust.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import boto3

from benchmarks.servers import aws_environment, moto_server
from s3kp import backfill, samples
from s3kp.backfill import KeyFilter, Plan, run_backfill
from s3kp.local.ports import port_is_free

SEND_OBJECTS = 1000
E2E_OBJECTS = 40
MODEL_ID = "faces/1"


def run() -> str:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    send = _sending()
    e2e = _end_to_end()
    return _markdown(send, e2e)


def _sending() -> dict[str, float]:
    with moto_server() as aws, aws_environment(aws.url):
        from s3kp.local.resources import create_resources

        resources = create_resources(aws.url, name_prefix="bench-backfill")
        s3, sqs = boto3.client("s3"), boto3.client("sqs")
        s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration={})
        for index in range(SEND_OBJECTS):
            s3.put_object(Bucket=resources.bucket, Key=f"incoming/b/{index:05d}.jpg", Body=b"x" * 64)
        figures: dict[str, float] = {}
        for label, plan, concurrency in (
            ("one_at_a_time", Plan(KeyFilter.from_template()), 1),
            ("plain", Plan(KeyFilter.from_template()), backfill.SEND_CONCURRENCY),
            ("only_missing", Plan(KeyFilter.from_template(), only_missing=True), backfill.SEND_CONCURRENCY),
        ):
            summary = run_backfill(
                s3=s3,
                sqs=sqs,
                dynamodb=boto3.client("dynamodb"),
                bucket=resources.bucket,
                prefix="incoming/",
                # A queue per run: moto, like SQS, allows one PurgeQueue a minute.
                queue_url=sqs.create_queue(QueueName=f"bench-backfill-{label.replace('_', '-')}")["QueueUrl"],
                results_table=resources.results_table,
                region="us-east-1",
                plan=plan,
                concurrency=concurrency,
            )
            assert summary.sent == SEND_OBJECTS, summary
            figures[label] = summary.rate()
        return figures


def _end_to_end() -> dict[str, float]:
    from s3kp.local.stack import LocalStack, StackOptions

    ports = _free_ports(3)
    log_dir = Path(".cache") / "bench-backfill-logs"
    options = StackOptions(
        aws_port=ports[0], inference_port=ports[1], api_port=ports[2], model_id=MODEL_ID,
        name_prefix="bench-e2e", log_dir=log_dir,
    )  # fmt: skip
    with LocalStack(options, echo=lambda line: None, report_batches=False) as stack:
        resources = stack.resources
        session = boto3.session.Session(region_name="us-east-1")
        s3 = session.client("s3", endpoint_url=stack.aws_endpoint)
        table = session.resource("dynamodb", endpoint_url=stack.aws_endpoint).Table(resources.results_table)
        image = samples.sample_jpeg("astronaut")

        started = time.monotonic()
        for index in range(E2E_OBJECTS):
            s3.put_object(Bucket=resources.bucket, Key=f"incoming/live/{index:03d}.jpg", Body=image)
        notified = E2E_OBJECTS / _wait_for_results(table, E2E_OBJECTS, started)

        saved = s3.get_bucket_notification_configuration(Bucket=resources.bucket)
        saved.pop("ResponseMetadata", None)
        s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration={})
        for index in range(E2E_OBJECTS):
            s3.put_object(Bucket=resources.bucket, Key=f"incoming/old/{index:03d}.jpg", Body=image)
        s3.put_bucket_notification_configuration(Bucket=resources.bucket, NotificationConfiguration=saved)
        time.sleep(3)  # moto's s3:TestEvent after re-enabling is dropped by the handler
        started = time.monotonic()
        summary = run_backfill(
            s3=s3,
            sqs=session.client("sqs", endpoint_url=stack.aws_endpoint),
            dynamodb=session.client("dynamodb", endpoint_url=stack.aws_endpoint),
            bucket=resources.bucket,
            prefix="incoming/old/",
            queue_url=resources.queue_url,
            results_table=resources.results_table,
            region="us-east-1",
            plan=Plan(KeyFilter.from_template(), only_missing=True),
        )
        assert summary.sent == E2E_OBJECTS, summary
        backfilled = E2E_OBJECTS / _wait_for_results(table, 2 * E2E_OBJECTS, started)
        concurrency = len(stack._ingest_workers)
    return {"notified": notified, "backfilled": backfilled, "concurrency": float(concurrency)}


def _wait_for_results(table: Any, count: int, started: float, timeout: float = 600.0) -> float:
    while time.monotonic() - started < timeout:
        if int(table.scan(Select="COUNT")["Count"]) >= count:
            return time.monotonic() - started
        time.sleep(0.25)
    raise TimeoutError(f"fewer than {count} results after {timeout} s")


def _free_ports(count: int) -> list[int]:
    import socket

    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in ports and port_is_free("127.0.0.1", port):
            ports.append(port)
    return ports


def _markdown(send: dict[str, float], e2e: dict[str, float]) -> str:
    ratio = e2e["backfilled"] / e2e["notified"] if e2e["notified"] else float("nan")
    return "\n".join(
        [
            "## Backfill",
            "",
            "| what | figure |",
            "|---|---|",
            f"| sent, {SEND_OBJECTS} objects listed and sent to the queue (moto), one batch at a time "
            f"| {send['one_at_a_time']:.0f} objects/s |",
            f"| the same, {backfill.SEND_CONCURRENCY} batches in flight (the default) "
            f"| {send['plain']:.0f} objects/s (×{send['plain'] / send['one_at_a_time']:.1f}) |",
            f"| sent with `--only-missing` (one BatchGetItem per 100) "
            f"| {send['only_missing']:.0f} objects/s |",
            f"| processed end to end, {E2E_OBJECTS} images, `{MODEL_ID}`, {e2e['concurrency']:.0f} ingest "
            f"workers: S3 notifications (baseline) | {e2e['notified']:.1f} objects/s |",
            f"| processed end to end, the same after `s3kp backfill` | {e2e['backfilled']:.1f} objects/s "
            f"(×{ratio:.2f} of the baseline) |",
            "",
            "End to end, the ingest workers (inference) are the limit, not the sending. moto's SQS is far "
            "slower per call than SQS; absolute figures on a shared, loaded 2-core machine are noisy.",
        ]
    )
