"""The ingest Lambda end to end on real local servers: moto (S3 -> SQS, DynamoDB, Secrets Manager) created
from template.yaml, the project's inference server, and the handler invoked in-process with the SQS events
the bucket notification produced.

The harness here (an upload -> receive -> invoke -> read loop, a counting proxy in front of the inference
server) is shared with test_ingest_faults.py.
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any

import boto3
import pytest
import requests
from s3kp_core.results import result_id_for

from s3kp import samples
from s3kp.local.lambda_runtime import LambdaContext, failed_message_ids, sqs_event
from s3kp.local.resources import LocalResources, create_resources, ingest_environment
from tests.conftest import MODEL_SERVER_API_KEY

MODEL_ID = "faces/1"
FULL_RANGE_FACES = "faces/2"
HANDLER_MODULES = (
    "ingest_handler",
    "ingest_dependencies",
    "ingest_settings",
    "s3_events",
    "sqs_retries",
    "record_pool",
)


# --- a proxy in front of the inference server: counts requests, injects faults -----------------------


@dataclass
class Fault:
    """What the proxy answers instead of forwarding: a status (with headers), or a stall of `delay` s."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class InferenceProxy:
    """Forwards to the real server unless a scripted fault is queued; records every request it gets."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.requests: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy._lock:
                    proxy.requests.append(self.path)
                    fault = proxy.faults.pop(0) if proxy.faults else None
                if fault is not None and fault.delay:
                    time.sleep(fault.delay)
                if fault is not None and fault.status is not None:
                    self._reply(fault.status, json.dumps({"message": "injected"}).encode(), fault.headers)
                    return
                upstream = requests.post(
                    proxy.upstream + self.path,
                    data=body,
                    headers={"Content-Type": self.headers.get("Content-Type", "")},
                    timeout=60,
                )
                self._reply(upstream.status_code, upstream.content, {})

            def _reply(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout we injected)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def inference_calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- the stack ------------------------------------------------------------------------------------


@dataclass
class IngestStack:
    resources: LocalResources
    handler: ModuleType
    proxy: InferenceProxy

    def __post_init__(self) -> None:
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.table = boto3.resource("dynamodb").Table(self.resources.results_table)

    def key_for(self, name: str) -> str:
        return f"{self.resources.input_prefix}{name}"

    def upload(self, name: str, data: bytes) -> str:
        key = self.key_for(name)
        self.s3.put_object(Bucket=self.resources.bucket, Key=key, Body=data)
        return key

    def receive(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """`count` messages from the ingest queue, as Lambda's event source mapping would receive them."""
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            messages += self.sqs.receive_message(
                QueueUrl=self.resources.queue_url,
                MaxNumberOfMessages=min(10, count - len(messages)),
                MessageSystemAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
        assert len(messages) == count, f"expected {count} messages, got {len(messages)}"
        return messages

    def queued_messages(self) -> dict[str, int]:
        """The ingest queue's approximate counts: visible, delayed (deferred copies) and in flight."""
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.resources.queue_url, AttributeNames=["All"])[
            "Attributes"
        ]
        return {
            "visible": int(attributes["ApproximateNumberOfMessages"]),
            "delayed": int(attributes["ApproximateNumberOfMessagesDelayed"]),
            "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        }

    def make_visible_again(self, messages: list[dict[str, Any]]) -> None:
        """What a failed invocation leads to: the messages reappear for another receive."""
        for message in messages:
            self.sqs.change_message_visibility(
                QueueUrl=self.resources.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )

    def invoke(self, messages: list[dict[str, Any]], timeout_seconds: float = 120.0) -> set[str]:
        """Run the handler on one SQS batch; returns the ids it reported as failed."""
        event = sqs_event(messages, self.resources.queue_arn)
        response = self.handler.lambda_handler(event, LambdaContext(timeout_seconds=timeout_seconds))
        return failed_message_ids(response)

    def result(self, key: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"result_id": result_id_for(self.resources.bucket, key)}).get("Item")
        return json.loads(json.dumps(item, default=float)) if item else None

    def results_count(self) -> int:
        return int(self.table.scan(Select="COUNT")["Count"])

    def annotated(self, record: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        response = self.s3.get_object(Bucket=record["annotated"]["bucket"], Key=record["annotated"]["key"])
        return response["Body"].read(), response


@pytest.fixture(scope="module")
def proxy(model_server_url: str) -> Iterator[InferenceProxy]:
    server = InferenceProxy(model_server_url)
    yield server
    server.close()


StackFactory = Callable[..., IngestStack]


@pytest.fixture
def ingest_stack(
    fresh_aws: str, proxy: InferenceProxy, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StackFactory]:
    """Build resources from the template and (re)import the handler with its environment: settings are
    read at import, as on a cold start. Keyword arguments override environment variables."""

    def build(
        *,
        api_key: str = MODEL_SERVER_API_KEY,
        model_id: str = MODEL_ID,
        inference_url: str | None = None,
        **overrides: str,
    ) -> IngestStack:
        """`inference_url` (with `inference_backend="builtin"`): another endpoint than the proxy's."""
        from aws_lambda_powertools.utilities import parameters

        resources = create_resources(fresh_aws, api_key=api_key, visibility_timeout=30)
        environment = ingest_environment(
            resources, inference_url=inference_url or proxy.url, model_id=model_id, **overrides
        )
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        parameters.clear_caches()  # the secret's value is cached per process, like in a warm container
        for name in HANDLER_MODULES:
            sys.modules.pop(name, None)
        handler = importlib.import_module("ingest_handler")
        proxy.faults.clear()
        proxy.requests.clear()
        return IngestStack(resources, handler, proxy)

    before = {name: sys.modules.get(name) for name in HANDLER_MODULES}
    yield build
    # Put back what was imported before (classes collected earlier, e.g. VideoSettings deriving from
    # IngestSettings, resolve their annotations through these modules), drop what the test imported.
    for name, module in before.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


def face_keypoints(record: dict[str, Any]) -> list[tuple[float, float]]:
    return [(k["x"], k["y"]) for p in record["predictions"] for k in p["keypoints"]]


def reference_keypoints(model_server_url: str, image: bytes, model_id: str) -> list[tuple[float, float]]:
    """The inference server's own answer on the full-resolution image, without the pipeline."""
    import base64

    response = requests.post(
        f"{model_server_url}/{model_id}",
        params={"api_key": MODEL_SERVER_API_KEY, "confidence": 0.4, "overlap": 0.3},
        data=base64.b64encode(image),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=60,
    )
    response.raise_for_status()
    return [(k["x"], k["y"]) for p in response.json()["predictions"] for k in p["keypoints"]]


# --- tests ----------------------------------------------------------------------------------------


def test_sample_images_get_results_and_annotated_copies_with_the_right_keypoints(
    ingest_stack: StackFactory, model_server_url: str
) -> None:
    """GIVEN four faces on one image and a 2000-px photo (downscaled to 1024 px before inference)
    WHEN their notifications are processed THEN each has a `succeeded` result whose keypoints match the
    server's answer on the full-resolution image, and an annotated JPEG linking back to its source.
    (`faces/2`, the full-range face model: the short-range one misses faces a quarter of the picture wide.)"""
    stack = ingest_stack(model_id=FULL_RANGE_FACES)
    images = {
        "group/four faces.jpg": samples.sample_jpeg("faces_2x2"),
        "big/astronaut 2000.jpg": samples.upscaled_jpeg("astronaut", 2000),
    }
    keys = {name: stack.upload(name, data) for name, data in images.items()}

    assert stack.invoke(stack.receive(len(images))) == set()

    four = stack.result(keys["group/four faces.jpg"])
    assert four["status"] == "succeeded"
    assert four["detections"] == 4
    assert four["counts"] == {"face": 4}
    big = stack.result(keys["big/astronaut 2000.jpg"])
    assert big["status"] == "succeeded"
    assert big["image"] == {"width": 2000, "height": 2000}
    expected = reference_keypoints(model_server_url, images["big/astronaut 2000.jpg"], FULL_RANGE_FACES)
    got = face_keypoints(big)
    assert len(got) == len(expected) > 0
    worst = max(abs(a - c) + abs(b - d) for (a, b), (c, d) in zip(sorted(got), sorted(expected), strict=True))
    assert worst < 0.01 * 2000, f"keypoints {worst:.1f} px away from the full-resolution answer"

    body, response = stack.annotated(big)
    assert response["ContentType"] == "image/jpeg"
    assert response["Metadata"]["source-key"] == "incoming/big/astronaut%202000.jpg"  # URL-safe
    assert response["Metadata"]["result-id"] == big["result_id"]
    assert big["annotated"]["key"].startswith("annotated/big/astronaut 2000.jpg.")
    assert body[:2] == b"\xff\xd8"
    assert {"download", "decode", "resize", "encode", "inference", "annotate", "put", "total"} <= set(
        big["timings_ms"]
    )


def test_one_message_delivered_three_times_runs_inference_once(ingest_stack: StackFactory) -> None:
    """GIVEN a message redelivered (e.g. after a timeout) twice more WHEN each delivery is processed
    THEN the endpoint is called once and one result exists, unchanged by the duplicates."""
    stack = ingest_stack()
    key = stack.upload("once.jpg", samples.sample_jpeg("astronaut"))
    messages = stack.receive(1)
    assert stack.invoke(messages) == set()
    first = stack.result(key)

    for delivery in (2, 3):
        stack.make_visible_again(messages)
        messages = stack.receive(1)
        assert messages[0]["Attributes"]["ApproximateReceiveCount"] == str(delivery)
        assert stack.invoke(messages) == set()

    assert stack.proxy.inference_calls() == 1
    assert stack.results_count() == 1
    assert stack.result(key) == first
    # The idempotency decorator is applied at the first call, to the function itself: its records keep
    # the name they had when it decorated the function at import (a deploy does not orphan them).
    idempotency = boto3.resource("dynamodb").Table(stack.resources.idempotency_table)
    (record,) = idempotency.scan()["Items"]
    assert ".ingest_handler.process_once#" in str(record["id"])  # {function name}.{module}.{function}#


def test_a_duplicate_s3_event_for_the_same_version_does_no_second_inference(
    ingest_stack: StackFactory,
) -> None:
    stack = ingest_stack()
    stack.upload("dup.jpg", samples.sample_jpeg("astronaut"))
    (message,) = stack.receive(1)
    stack.sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody=message["Body"])

    assert stack.invoke([message, *stack.receive(1)]) == set()

    assert stack.proxy.inference_calls() == 1
    assert stack.results_count() == 1


def test_a_new_upload_of_the_same_key_is_processed_again(ingest_stack: StackFactory) -> None:
    stack = ingest_stack(model_id=FULL_RANGE_FACES)
    key = stack.upload("again.jpg", samples.sample_jpeg("astronaut"))
    stack.invoke(stack.receive(1))
    stack.upload("again.jpg", samples.sample_jpeg("faces_2x2"))

    stack.invoke(stack.receive(1))

    assert stack.proxy.inference_calls() == 2
    record = stack.result(key)
    assert record["detections"] == 4
    assert record["created_at"] < record["updated_at"]


BAD_INPUT_REASONS = {
    "zero_byte": "object_empty",
    "truncated_jpeg": "image_undecodable",
    "pdf_named_jpg": "image_undecodable",
    "decompression_bomb": "image_too_large",
    "one_pixel": "image_too_small",
}


def test_every_bad_or_unusual_input_ends_in_exactly_one_recorded_state(ingest_stack: StackFactory) -> None:
    """GIVEN each bad input and each unusual-but-valid image, plus a key with spaces and unicode, in
    batches together WHEN processed THEN bad inputs are `failed` with a clear reason, the valid ones
    `succeeded`, and no message is reported failed (nothing is retried)."""
    stack = ingest_stack()
    keys: dict[str, str] = {}
    for name, (file_name, make) in {**samples.BAD_INPUTS, **samples.UNUSUAL_IMAGES}.items():
        keys[name] = stack.upload(f"mixed/{file_name}", make())
    keys["unicode_key"] = stack.upload("mixed/été + friends 📷 (1).jpg", samples.sample_jpeg("astronaut"))
    messages = stack.receive(len(keys))

    for batch_start in range(0, len(messages), 10):
        assert stack.invoke(messages[batch_start : batch_start + 10]) == set()

    assert stack.results_count() == len(keys)
    for name, key in keys.items():
        record = stack.result(key)
        assert record is not None, name
        if name in BAD_INPUT_REASONS:
            assert record["status"] == "failed", name
            assert record["reason"]["code"] == BAD_INPUT_REASONS[name], record["reason"]
            assert record["reason"]["message"], name
            assert "annotated" not in record
        else:
            assert record["status"] == "succeeded", (name, record.get("reason"))
            assert stack.annotated(record)[0][:2] == b"\xff\xd8"
    # Everything but the 16-bit and grey+alpha camera pictures shows the astronaut's face.
    for name in ("cmyk_jpeg", "palette_transparency", "rgba", "animated_gif", "exif_rotated", "unicode_key"):
        assert stack.result(keys[name])["detections"] >= 1, name


def test_an_exif_rotated_photo_gets_keypoints_on_the_upright_picture(ingest_stack: StackFactory) -> None:
    """GIVEN the astronaut stored rotated with EXIF orientation 6, and the upright astronaut
    THEN both results have the same keypoints (the rotation was applied before inference)."""
    stack = ingest_stack()
    upright = stack.upload("upright.jpg", samples.sample_jpeg("astronaut"))
    rotated = stack.upload("rotated.jpg", samples.exif_rotated_jpeg())
    stack.invoke(stack.receive(2))

    expected, got = face_keypoints(stack.result(upright)), face_keypoints(stack.result(rotated))
    assert len(got) == len(expected) > 0
    assert max(abs(a - c) + abs(b - d) for (a, b), (c, d) in zip(got, expected, strict=True)) < 8


def test_an_annotated_copy_does_not_trigger_processing(ingest_stack: StackFactory) -> None:
    """The template's notification listens on the input prefix only; outputs produce no message."""
    stack = ingest_stack()
    stack.upload("loop.jpg", samples.sample_jpeg("astronaut"))
    stack.invoke(stack.receive(1))
    leftover = stack.sqs.receive_message(QueueUrl=stack.resources.queue_url, WaitTimeSeconds=0)
    assert leftover.get("Messages", []) == []


def test_a_message_that_is_not_an_s3_notification_is_dropped_not_retried(ingest_stack: StackFactory) -> None:
    stack = ingest_stack()
    stack.sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody="this is not json")
    stack.upload("fine.jpg", samples.sample_jpeg("astronaut"))

    assert stack.invoke(stack.receive(2)) == set()

    assert stack.results_count() == 1


def test_a_direct_s3_event_is_processed_too(ingest_stack: StackFactory) -> None:
    """`sam local invoke` passes the S3 notification itself, without SQS."""
    stack = ingest_stack()
    key = stack.upload("direct.jpg", samples.sample_jpeg("astronaut"))
    (message,) = stack.receive(1)

    response = stack.handler.lambda_handler(json.loads(message["Body"]), LambdaContext())

    assert response == {"processed": 1}
    assert stack.result(key)["status"] == "succeeded"


def test_the_s3_test_event_is_ignored(ingest_stack: StackFactory) -> None:
    stack = ingest_stack()
    response = stack.handler.lambda_handler(
        {"Service": "Amazon S3", "Event": "s3:TestEvent"}, LambdaContext()
    )
    assert response == {"processed": 0}
    assert stack.results_count() == 0
