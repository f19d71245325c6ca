"""The ingest handler with the records of a batch in parallel (RECORD_CONCURRENCY): every per-message
guarantee holds as in sequence.

The handler runs in this process against the moto server (resources from template.yaml: queue, tables,
secret, bucket) with its real collaborators, except the inference endpoint: a fake behind the real
circuit breaker, which answers per image (each upload is a solid colour whose red value names it) and
holds every call until all the batch's calls are in flight (a barrier), so a batch that did not run in
parallel would fail the test instead of passing it by luck.
"""

from __future__ import annotations

import importlib
import io
import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
from PIL import Image
from s3kp_core import errors
from s3kp_core.circuit import GuardedPredictor
from s3kp_core.memory import MemoryBudget
from s3kp_core.predictor import InferenceResult
from s3kp_core.results import Prediction, result_id_for

from s3kp import samples
from s3kp.local.lambda_runtime import LambdaContext, failed_message_ids, sqs_event
from s3kp.local.resources import LocalResources, create_resources, ingest_environment

# Imported afresh for each test, as on a cold start: the handler's modules, and the Powertools objects
# (they read POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE when created).
HANDLER_MODULES = (
    "ingest_handler",
    "ingest_dependencies",
    "ingest_settings",
    "s3_events",
    "sqs_retries",
    "record_pool",
    "s3kp_core.observability",
)
PATIENCE = 30.0  # seconds before a blocked thread fails the test (never an expected wait)
FACE = Prediction(x=32.0, y=32.0, width=20.0, height=20.0, confidence=0.9, class_name="face", class_id=0)


def solid(index: int, side: int = 64) -> bytes:
    """A small JPEG whose red value (20 × index) tells the fake endpoint which upload it is."""
    return samples.encode(Image.new("RGB", (side, side), (20 * index, 0, 0)))


def key_of(message: dict[str, Any]) -> str:
    """The object key an S3 notification message is about (notifications URL-encode it)."""
    return unquote_plus(json.loads(message["Body"])["Records"][0]["s3"]["object"]["key"])


def index_of(jpeg: bytes) -> int:
    red = Image.open(io.BytesIO(jpeg)).convert("RGB").getpixel((8, 8))[0]  # type: ignore[index]
    return round(red / 20)


@dataclass
class FakeEndpoint:
    """Answers one face per image unless `failures[index]` says what to raise; `together` calls wait for
    each other first."""

    together: int = 0
    failures: dict[int, Exception] = field(default_factory=dict)
    calls: list[int] = field(default_factory=list)
    on_call: Callable[[int], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _barrier: threading.Barrier | None = None

    def __post_init__(self) -> None:
        self._barrier = threading.Barrier(self.together) if self.together > 1 else None

    def predict(
        self,
        jpeg: bytes,
        *,
        deadline: float | None = None,
        max_attempts: int | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> InferenceResult:
        index = index_of(jpeg)
        with self._lock:
            self.calls.append(index)
        if self.on_call is not None:
            self.on_call(index)
        if self._barrier is not None:
            self._barrier.wait(timeout=PATIENCE)  # broken (an error) unless the batch runs in parallel
        if index in self.failures:
            raise self.failures[index]
        return InferenceResult(
            predictions=(FACE,),
            image_width=64,
            image_height=64,
            inference_id=f"fake-{index}",
            server_time_ms=1.0,
            bytes_sent=len(jpeg),
            attempts=1,
            elapsed_ms=1.0,
        )


@dataclass
class Ingest:
    resources: LocalResources
    handler: ModuleType
    dependencies: ModuleType

    def __post_init__(self) -> None:
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.table = boto3.resource("dynamodb").Table(self.resources.results_table)

    def use(self, endpoint: FakeEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
        """The real collaborators, with `endpoint` behind the real circuit breaker."""
        real = self.dependencies.collaborators

        def with_fake_endpoint(settings: Any, api_key: str) -> Any:
            deps = real(settings, api_key)
            breaker = self.dependencies.guarded_inference.breaker(settings.circuit_settings())
            return replace(deps, predictor=GuardedPredictor(endpoint, breaker))

        monkeypatch.setattr(self.handler, "collaborators", with_fake_endpoint)

    def upload(self, name: str, data: bytes) -> str:
        key = f"{self.resources.input_prefix}{name}"
        self.s3.put_object(Bucket=self.resources.bucket, Key=key, Body=data)
        return key

    def receive(self, count: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        for _ in range(50):
            if len(messages) == count:
                break
            messages += self.sqs.receive_message(
                QueueUrl=self.resources.queue_url,
                MaxNumberOfMessages=min(10, count - len(messages)),
                MessageSystemAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
        assert len(messages) == count
        return messages

    def invoke(self, messages: list[dict[str, Any]]) -> set[str]:
        response = self.handler.lambda_handler(
            sqs_event(messages, self.resources.queue_arn), LambdaContext(timeout_seconds=120)
        )
        return failed_message_ids(response)

    def status(self, key: str) -> str | None:
        item = self.table.get_item(Key={"result_id": result_id_for(self.resources.bucket, key)}).get("Item")
        return str(item["status"]) if item else None

    def delayed_copies(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.resources.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesDelayed"])


@pytest.fixture
def ingest(fresh_aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Ingest]]:
    """The handler imported afresh (a cold start) with the template's environment and `overrides`. The
    modules loaded before are put back afterwards: classes imported from them elsewhere (the video
    function's settings extend `ingest_settings.IngestSettings`) resolve their annotations through
    `sys.modules`, and would find nothing there."""
    previous = {name: sys.modules[name] for name in HANDLER_MODULES if name in sys.modules}

    def build(**overrides: str) -> Ingest:
        from aws_lambda_powertools.utilities import parameters

        resources = create_resources(fresh_aws, visibility_timeout=30)
        environment = ingest_environment(
            resources, inference_url="http://127.0.0.1:9", model_id="faces/1", **overrides
        )
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        parameters.clear_caches()
        for name in HANDLER_MODULES:
            sys.modules.pop(name, None)
        handler = importlib.import_module("ingest_handler")
        return Ingest(resources, handler, sys.modules["ingest_dependencies"])

    yield build
    for name in HANDLER_MODULES:
        sys.modules.pop(name, None)
    sys.modules.update(previous)


@contextmanager
def captured_log(logger: Any) -> Iterator[io.StringIO]:
    """Where the Powertools `logger` writes meanwhile (from any thread): one JSON object a line."""
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)
    try:
        yield stream
    finally:
        logger.registered_handler.setStream(previous)


def logged(stream: io.StringIO, message: str) -> list[dict[str, Any]]:
    lines = (json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("message") == message]


def wait_until(condition: Callable[[], bool]) -> None:
    done = threading.Event()
    timer = threading.Timer(PATIENCE, done.set)
    timer.start()
    try:
        while not condition():
            assert not done.wait(0.005), "the condition never became true"
    finally:
        timer.cancel()


# --- tests ------------------------------------------------------------------------------------------


def test_the_template_default_runs_a_whole_batch_at_once(ingest: Callable[..., Ingest]) -> None:
    stack = ingest()
    assert stack.handler.settings.record_concurrency == 10
    assert stack.handler.batch_processor.max_workers == 10


def test_exactly_the_messages_that_failed_are_reported_and_the_others_are_recorded(
    ingest: Callable[..., Ingest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a batch of seven in parallel: three images the endpoint answers, two it fails transiently
    (a timeout after its retries), an empty object and a message that is not an S3 notification
    THEN exactly the two transient ones are reported failed; the three are `succeeded`, the empty one
    `failed` for good (not retried), the malformed one dropped."""
    stack = ingest()
    timeout = errors.TransientError(errors.INFERENCE_UNAVAILABLE, "inference endpoint did not answer in time")
    endpoint = FakeEndpoint(together=5, failures={4: timeout, 5: timeout})
    stack.use(endpoint, monkeypatch)
    keys = {index: stack.upload(f"batch/{index}.jpg", solid(index)) for index in (1, 2, 3, 4, 5)}
    empty = stack.upload("batch/empty.jpg", b"")
    stack.sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody="not a notification")
    messages = stack.receive(7)
    message_of = {key_of(message): message for message in messages if message["Body"].startswith("{")}

    failed = stack.invoke(messages)

    assert failed == {message_of[keys[4]]["MessageId"], message_of[keys[5]]["MessageId"]}
    assert sorted(endpoint.calls) == [1, 2, 3, 4, 5]
    assert [stack.status(keys[index]) for index in (1, 2, 3)] == ["succeeded"] * 3
    assert [stack.status(keys[index]) for index in (4, 5)] == [None, None]  # retried, nothing recorded yet
    assert stack.status(empty) == "failed"


def test_each_record_logs_with_its_own_correlation_id_and_message_id(
    ingest: Callable[..., Ingest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN four uploads in flight at once WHEN each record logs (a line from inside the endpoint call,
    and the `object processed` line) THEN every line carries its own record's message id, object key and
    correlation id: no key leaks from one thread into another."""
    stack = ingest()
    logger = stack.handler.logger
    endpoint = FakeEndpoint(together=4, on_call=lambda index: logger.info("endpoint called", upload=index))
    stack.use(endpoint, monkeypatch)
    keys = {index: stack.upload(f"logs/{index}.jpg", solid(index)) for index in (1, 2, 3, 4)}
    messages = stack.receive(4)
    message_ids = {key_of(message): message["MessageId"] for message in messages}

    with captured_log(logger) as log_stream:
        assert stack.invoke(messages) == set()

    called = logged(log_stream, "endpoint called")
    assert sorted(line["upload"] for line in called) == [1, 2, 3, 4]
    for line in called:
        key = keys[line["upload"]]
        assert (line["correlation_id"], line["object_key"], line["message_id"]) == (
            key,
            key,
            message_ids[key],
        )
    processed = logged(log_stream, "object processed")
    assert sorted(line["object_key"] for line in processed) == sorted(keys.values())
    for line in processed:
        assert (line["correlation_id"], line["message_id"]) == (
            line["object_key"],
            message_ids[line["object_key"]],
        )


def test_an_endpoint_outage_defers_each_message_of_a_parallel_batch_on_its_own(
    ingest: Callable[..., Ingest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN four uploads in flight at once when the endpoint goes down WHEN each call fails THEN the
    circuit opens and every message is deferred (sent again, delayed) on its own: none is failed, none is
    lost, none deferred twice."""
    stack = ingest()
    down = errors.EndpointUnavailable(errors.INFERENCE_UNAVAILABLE, "inference endpoint unreachable")
    endpoint = FakeEndpoint(together=4, failures={index: down for index in (1, 2, 3, 4)})
    stack.use(endpoint, monkeypatch)
    for index in (1, 2, 3, 4):
        stack.upload(f"outage/{index}.jpg", solid(index))
    messages = stack.receive(4)

    with captured_log(stack.handler.logger) as log_stream:
        assert stack.invoke(messages) == set()

    deferred = logged(log_stream, "message deferred")
    assert sorted(line["message_id"] for line in deferred) == sorted(m["MessageId"] for m in messages)
    assert all(line["why"] == "waiting for the endpoint: inference_unavailable" for line in deferred)
    assert stack.delayed_copies() == 4
    breaker = stack.dependencies.guarded_inference.breaker(stack.handler.settings.circuit_settings())
    assert breaker.admit().allowed is False


def test_two_messages_about_one_object_version_run_it_once_without_a_deferral(
    ingest: Callable[..., Ingest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN the same S3 event twice in one batch (S3 delivers at least once) WHEN both run in parallel
    THEN the second waits for the first instead of meeting its in-progress idempotency record (which
    would defer it for minutes): one inference, one result, both messages done, nothing delayed."""
    stack = ingest()
    started = threading.Semaphore(0)
    handle = stack.handler.handle_sqs_record

    def counting(record: Any, lambda_context: Any) -> None:
        started.release()
        handle(record, lambda_context)

    monkeypatch.setattr(stack.handler, "handle_sqs_record", counting)
    # The first call waits until both messages have started, so the second one meets it in flight.
    endpoint = FakeEndpoint(on_call=lambda _: [started.acquire(timeout=PATIENCE) for _ in range(2)])
    stack.use(endpoint, monkeypatch)
    key = stack.upload("twice.jpg", solid(1))
    (message,) = stack.receive(1)
    stack.sqs.send_message(QueueUrl=stack.resources.queue_url, MessageBody=message["Body"])

    assert stack.invoke([message, *stack.receive(1)]) == set()

    assert endpoint.calls == [1]
    assert stack.status(key) == "succeeded"
    assert stack.delayed_copies() == 0
    assert len(stack.handler._one_copy_at_a_time) == 0


def test_records_in_parallel_share_the_containers_pixel_budget(
    ingest: Callable[..., Ingest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a pixel budget for two decoded images and three uploads of that size in one batch WHEN
    they run in parallel THEN the third waits for room (the budget never holds more than it allows), and
    all three are processed."""
    stack = ingest()
    side = 1000  # decoded RGB: 4 MB each (Pillow pads RGB to 4 bytes); kept whole for the annotated copy
    budget = MemoryBudget(2 * side * side * 4, name="pixels")
    monkeypatch.setattr(stack.dependencies, "pixel_budget", lambda: budget)
    # The two records holding the budget stay in flight until the third is seen waiting for it.
    stack.use(FakeEndpoint(on_call=lambda _: wait_until(lambda: budget.waits >= 1)), monkeypatch)
    keys = [stack.upload(f"budget/{index}.jpg", solid(index, side)) for index in (1, 2, 3)]

    assert stack.invoke(stack.receive(3)) == set()

    assert [stack.status(key) for key in keys] == ["succeeded"] * 3
    assert budget.waits == 1
    assert budget.peak == 2 * side * side * 4
    assert budget.held == 0
