"""The pool the ingest handler runs a batch's records in: Powertools' partial batch response from
parallel threads, X-Ray subsegments nested per record, and one holder per key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from record_pool import ConcurrentBatchProcessor, KeyedLocks

from tests.conftest import ROOT

PATIENCE = 30.0


def sqs_records(count: int) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"message-{n}",
                "receiptHandle": f"handle-{n}",
                "body": str(n),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
                "awsRegion": "us-east-1",
            }
            for n in range(count)
        ]
    }


def wait_until(condition: Callable[[], bool]) -> None:
    done = threading.Event()
    timer = threading.Timer(PATIENCE, done.set)
    timer.start()
    try:
        while not condition():
            assert not done.wait(0.005), "the condition never became true"
    finally:
        timer.cancel()


def test_records_run_at_once_and_the_failures_are_exactly_the_records_that_raised() -> None:
    """GIVEN six records that all wait for each other (so only a parallel run gets past the barrier),
    two of which raise THEN the partial batch response lists exactly those two."""
    barrier = threading.Barrier(6)
    threads: set[str] = set()

    def handle(record: SQSRecord) -> None:
        threads.add(threading.current_thread().name)
        barrier.wait(timeout=PATIENCE)
        if record.body in ("1", "4"):
            raise RuntimeError(f"record {record.body} failed")

    processor = ConcurrentBatchProcessor(EventType.SQS, max_workers=6, raise_on_entire_batch_failure=False)
    response = process_partial_response(event=sqs_records(6), record_handler=handle, processor=processor)

    failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
    assert sorted(failed) == ["message-1", "message-4"]  # in the order they finished
    assert len(threads) == 6


def test_one_worker_runs_the_records_in_turn_in_the_calling_thread() -> None:
    seen: list[tuple[str, str]] = []

    def handle(record: SQSRecord) -> None:
        seen.append((record.body, threading.current_thread().name))

    processor = ConcurrentBatchProcessor(EventType.SQS, max_workers=1)
    process_partial_response(event=sqs_records(3), record_handler=handle, processor=processor)

    assert seen == [(str(n), threading.current_thread().name) for n in range(3)]


def test_a_key_has_one_holder_at_a_time_and_other_keys_do_not_wait() -> None:
    locks = KeyedLocks()
    inside: list[str] = []
    other_done = threading.Event()

    def hold(key: str, name: str, then: Callable[[], None] = lambda: None) -> threading.Thread:
        def run() -> None:
            with locks.hold(key):
                inside.append(name)
                then()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    with locks.hold("version-1"):
        second = hold("version-1", "second copy")
        wait_until(lambda: locks.users("version-1") == 2)  # the second copy waits for the first
        hold("version-2", "another object", other_done.set)
        assert other_done.wait(PATIENCE)
        assert inside == ["another object"]
    second.join(PATIENCE)

    assert inside == ["another object", "second copy"]
    assert len(locks) == 0


# Runs in a fresh interpreter: the Tracer patches process-wide. A recorder whose emitter keeps every
# document; the whole segment is sent at its end (no streaming), so its tree is in one document.
TRACE_SCENARIO = textwrap.dedent(
    """
    import json, threading
    from aws_xray_sdk.core import xray_recorder
    from aws_xray_sdk.core.context import Context
    from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
    from s3kp_core.observability import tracer
    from record_pool import ConcurrentBatchProcessor
    from tests.unit.functions.ingest.test_record_pool import sqs_records

    documents = []

    class Emitter:
        def send_entity(self, entity):
            documents.append(entity.serialize())

        def set_daemon_address(self, address):
            pass

    xray_recorder.configure(context=Context(), emitter=Emitter(), sampling=False, streaming_threshold=1000)
    barrier = threading.Barrier(4)

    @tracer.capture_method(capture_response=False)
    def record_work(body):
        barrier.wait(timeout=30)
        with tracer.provider.in_subsegment("inner") as inner:
            inner.put_annotation("body", body)

    processor = ConcurrentBatchProcessor(EventType.SQS, max_workers=4, recorder=tracer.provider)
    xray_recorder.begin_segment("invocation")
    with xray_recorder.in_subsegment("## lambda_handler"):
        response = process_partial_response(
            event=sqs_records(4), record_handler=lambda record: record_work(record.body), processor=processor
        )
    xray_recorder.end_segment()
    print(json.dumps({"response": response, "documents": documents}))
    """
)


def test_each_records_subsegments_nest_under_the_handlers() -> None:
    """GIVEN four records in parallel threads, each traced (a method subsegment and one inside it)
    THEN the trace has one `## lambda_handler` subsegment holding the four records' subsegments, each
    with its own inner subsegment, none lost or attached elsewhere."""
    environment = os.environ | {
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "functions" / "ingest"), str(ROOT / "layers" / "shared"), str(ROOT)]
        ),
        # What makes Powertools' Tracer enable itself (as in Lambda).
        "LAMBDA_TASK_ROOT": str(ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": "s3kp-ingest-trace-test",
        "POWERTOOLS_TRACE_DISABLED": "false",
        "POWERTOOLS_SERVICE_NAME": "s3kp-ingest",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }
    completed = subprocess.run(
        [sys.executable, "-c", TRACE_SCENARIO],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])

    assert report["response"] == {"batchItemFailures": []}
    (document,) = report["documents"]
    segment = json.loads(document)
    (handler,) = segment["subsegments"]
    assert handler["name"] == "## lambda_handler"
    records = handler["subsegments"]
    assert [record["name"] for record in records] == ["## __main__.record_work"] * 4
    bodies = sorted(inner["annotations"]["body"] for record in records for inner in record["subsegments"])
    assert bodies == ["0", "1", "2", "3"]
