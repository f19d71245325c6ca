"""The ingest handler with the records of a batch in parallel (RECORD_CONCURRENCY) on the real local
pieces: moto server with the template's resources, the project's inference server behind the counting
proxy, the handler invoked with the SQS events the bucket notification produced."""

# The fixtures come from the sibling module (there is no ingest conftest): parameters "redefine" them.
# ruff: noqa: F811

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from s3kp import samples
from tests.integration.test_ingest_pipeline import (  # noqa: F401
    FULL_RANGE_FACES,
    Fault,
    StackFactory,
    ingest_stack,
    proxy,
)

# Ten uploads, one batch: photos, unusual but valid images, and inputs that fail for good.
BATCH: dict[str, Callable[[], bytes]] = {
    "faces_2x2.jpg": lambda: samples.sample_jpeg("faces_2x2"),
    "side by side.jpg": lambda: samples.sample_jpeg("people_side_by_side"),
    "astronaut 2000.jpg": lambda: samples.upscaled_jpeg("astronaut", 2000),
    "rotated.jpg": samples.exif_rotated_jpeg,
    "cmyk.jpg": samples.cmyk_jpeg,
    "alpha.png": samples.rgba_png,
    "animated.gif": samples.animated_gif,
    "empty.jpg": lambda: b"",
    "truncated.jpg": samples.truncated_jpeg,
    "bomb.png": samples.decompression_bomb_png,
}
DECODABLE = 7  # the first seven reach the endpoint


def recorded(record: dict[str, Any] | None) -> tuple[Any, ...]:
    """What a result says, without what differs between two runs (times, drawing keys, the server's
    random detection ids)."""
    assert record is not None
    predictions = [
        {name: value for name, value in prediction.items() if name != "detection_id"}
        for prediction in record.get("predictions") or []
    ]
    return (
        record["status"],
        (record.get("reason") or {}).get("code"),
        record.get("image"),
        json.dumps(predictions, sort_keys=True),
    )


def test_a_batch_in_parallel_records_every_object_exactly_as_in_sequence(ingest_stack: StackFactory) -> None:
    """GIVEN the same ten uploads processed as one batch with RECORD_CONCURRENCY=10 and with 1 THEN no
    message is failed either way, the endpoint is called once per decodable image, and every object's
    recorded state (status, reason, size, every prediction and keypoint) is the same."""
    results: dict[str, dict[str, tuple[Any, ...]]] = {}
    for concurrency in ("10", "1"):
        stack = ingest_stack(model_id=FULL_RANGE_FACES, RECORD_CONCURRENCY=concurrency)
        assert stack.handler.batch_processor.max_workers == int(concurrency)
        keys = {name: stack.upload(f"run-{concurrency}/{name}", make()) for name, make in BATCH.items()}

        assert stack.invoke(stack.receive(len(BATCH))) == set()

        assert stack.proxy.inference_calls() == DECODABLE
        results[concurrency] = {name: recorded(stack.result(key)) for name, key in keys.items()}

    assert results["10"] == results["1"]
    statuses = [state[0] for state in results["10"].values()]
    assert statuses == ["succeeded"] * DECODABLE + ["failed"] * (len(BATCH) - DECODABLE)
    assert results["10"]["faces_2x2.jpg"][3].count('"class_name": "face"') == 4


def test_an_outage_in_the_middle_of_a_parallel_batch_fails_no_message(ingest_stack: StackFactory) -> None:
    """GIVEN a batch of five in parallel and an endpoint answering 503 (one attempt each) THEN the circuit
    opens and every message waits for the endpoint (sent again, delayed): none is failed or recorded, and
    the endpoint got at most one call per message."""
    stack = ingest_stack(INFERENCE_MAX_ATTEMPTS="1", RECORD_CONCURRENCY="5")
    stack.proxy.faults.extend([Fault(503)] * 5)
    for index in range(5):
        stack.upload(f"outage/{index}.jpg", samples.sample_jpeg("astronaut"))

    assert stack.invoke(stack.receive(5)) == set()

    assert 1 <= stack.proxy.inference_calls() <= 5
    assert stack.results_count() == 0
    assert stack.queued_messages()["delayed"] == 5
