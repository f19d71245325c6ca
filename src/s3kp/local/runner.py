"""The queue runner: what Lambda's SQS event source mapping does, against the local queue.

Faithful to the mapping with `ReportBatchItemFailures`:
- long-polls (`WaitTimeSeconds` up to 20) for up to `batch_size` messages with all system attributes;
- builds the Lambda SQS event from the received messages and a context whose remaining time starts at
  the function timeout;
- on success deletes every message except those listed in `batchItemFailures`; those, like the whole
  batch when the handler raises, times out or returns an invalid failure list, stay on the queue and
  reappear when their visibility expires (moto's real SQS visibility: a handler that moves it with
  `ChangeMessageVisibility`, as the ingest handler's lease and backoff do, is honoured as in AWS) — the
  queue's redrive policy then moves a message that keeps failing to the DLQ (moto applies
  `maxReceiveCount` on receive, as SQS does);
- runs at most `concurrency` batches at once (the mapping's `MaximumConcurrency`), one poller each.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from s3kp.local.lambda_runtime import LambdaContext, sqs_event

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 20  # SQS's long-polling maximum, and what the event source mapping uses
_SQS_BATCH_LIMIT = 10  # ReceiveMessage/DeleteMessageBatch take at most 10 entries
_ERROR_BACKOFF_SECONDS = 1.0
_FILL_INTERVAL_SECONDS = 0.1


class Handler(Protocol):
    def __call__(self, event: dict[str, Any], context: LambdaContext) -> Any: ...


@dataclass(frozen=True)
class RunnerSettings:
    queue_url: str
    queue_arn: str
    region: str = "us-east-1"
    function_name: str = "s3kp-ingest"
    timeout_seconds: float = 60.0
    memory_mb: int = 1024
    batch_size: int = 10
    concurrency: int = 1
    wait_seconds: int = MAX_WAIT_SECONDS
    batching_window_seconds: float = 0.0  # MaximumBatchingWindowInSeconds: time to fill a batch
    # The template's logical id of the function fed (e.g. `VideoFunction`): named in the pollers' threads,
    # so what a poller does is told apart by function (logs, the IAM proof's recorder).
    logical_id: str = ""


@dataclass(frozen=True)
class BatchOutcome:
    """What became of one batch: message ids deleted and kept for retry, and the error if it failed whole."""

    received: tuple[str, ...]
    deleted: tuple[str, ...]
    retried: tuple[str, ...]
    duration_ms: float
    error: str | None = None


class QueueRunner:
    """Polls the queue and invokes the handler; `start()` runs pollers in threads, `stop()` joins them.

    `handlers` holds one handler per poller (a Lambda worker each, so batches never share a sandbox);
    `sqs` is a boto3 SQS client. `on_batch` is told about every batch (progress output, tests).
    """

    def __init__(
        self,
        sqs: Any,
        settings: RunnerSettings,
        handlers: list[Handler],
        on_batch: Callable[[BatchOutcome], None] | None = None,
    ) -> None:
        if len(handlers) != settings.concurrency:
            raise ValueError(f"need one handler per poller: {settings.concurrency}, got {len(handlers)}")
        self._sqs = sqs
        self.settings = settings
        self._handlers = handlers
        self._on_batch = on_batch
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index, handler in enumerate(self._handlers):
            # Daemon: `join()` is how they end; one stuck in a call must not keep the process alive at exit.
            thread = threading.Thread(
                target=self._poll_forever,
                args=(handler,),
                name=f"sqs-poller-{self.settings.logical_id or self.settings.function_name}-{index}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def request_stop(self) -> None:
        """Let pollers finish their current batch and stop (a pending long poll ends within `wait_seconds`,
        or at once when the AWS endpoint goes away)."""
        self._stopping.set()

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)
        self._threads = [thread for thread in self._threads if thread.is_alive()]

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _poll_forever(self, handler: Handler) -> None:
        while not self._stopping.is_set():
            try:
                outcome = self.poll_once(handler)
            except (BotoCoreError, ClientError) as error:
                if self._stopping.is_set():
                    return  # the endpoint is shutting down under us
                log.warning("receiving from the queue failed: %s", error)
                self._stopping.wait(_ERROR_BACKOFF_SECONDS)
                continue
            if outcome is not None and self._on_batch is not None:
                self._on_batch(outcome)

    def poll_once(self, handler: Handler) -> BatchOutcome | None:
        """One long poll and, if messages came, one invocation. None when the poll returned nothing."""
        response = self._sqs.receive_message(
            QueueUrl=self.settings.queue_url,
            MaxNumberOfMessages=min(self.settings.batch_size, _SQS_BATCH_LIMIT),
            WaitTimeSeconds=self.settings.wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return None
        messages += self._fill_batch(self.settings.batch_size - len(messages))
        return self.process(messages, handler)

    def _fill_batch(self, room: int) -> list[dict[str, Any]]:
        """More messages until the batch is full or the batching window has passed, as the mapping does."""
        extra: list[dict[str, Any]] = []
        deadline = time.monotonic() + self.settings.batching_window_seconds
        while len(extra) < room and time.monotonic() < deadline and not self._stopping.is_set():
            response = self._sqs.receive_message(
                QueueUrl=self.settings.queue_url,
                MaxNumberOfMessages=min(room - len(extra), _SQS_BATCH_LIMIT),
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            extra += response.get("Messages", [])
            self._stopping.wait(_FILL_INTERVAL_SECONDS)
        return extra

    def process(self, messages: list[dict[str, Any]], handler: Handler) -> BatchOutcome:
        """Invoke `handler` on `messages` as one batch and settle them (delete or leave for retry)."""
        ids = tuple(message["MessageId"] for message in messages)
        event = sqs_event(messages, self.settings.queue_arn, self.settings.region)
        context = LambdaContext(
            function_name=self.settings.function_name,
            memory_limit_in_mb=self.settings.memory_mb,
            timeout_seconds=self.settings.timeout_seconds,
            region=self.settings.region,
        )
        started = time.perf_counter()
        try:
            result = handler(event, context)
        except Exception as error:  # any failure of the invocation fails the whole batch, as in Lambda
            return BatchOutcome(ids, (), ids, _ms_since(started), error=f"{type(error).__name__}: {error}")
        failed, problem = _failed_items(result, ids)
        if problem is not None:
            return BatchOutcome(ids, (), ids, _ms_since(started), error=problem)
        done = [message for message in messages if message["MessageId"] not in failed]
        self._delete(done)
        deleted = tuple(message["MessageId"] for message in done)
        retried = tuple(message_id for message_id in ids if message_id in failed)
        return BatchOutcome(ids, deleted, retried, _ms_since(started))

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), _SQS_BATCH_LIMIT):
            chunk = messages[start : start + _SQS_BATCH_LIMIT]
            response = self._sqs.delete_message_batch(
                QueueUrl=self.settings.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in response.get("Failed", []):
                log.warning("could not delete a processed message: %s", failure.get("Message"))


def _failed_items(result: Any, batch_ids: tuple[str, ...]) -> tuple[set[str], str | None]:
    """The message ids to retry, or a reason why the response fails the whole batch.

    Lambda treats a `batchItemFailures` entry that is missing, empty or not in the batch as a failure
    of the whole batch; a response without `batchItemFailures` (or `None`) means every message succeeded.
    """
    if not isinstance(result, dict) or result.get("batchItemFailures") is None:
        return set(), None
    failures = result["batchItemFailures"]
    if not isinstance(failures, list):
        return set(batch_ids), "batchItemFailures is not a list"
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in batch_ids:
            return set(batch_ids), f"invalid batchItemFailures entry {item!r}"
        failed.add(identifier)
    return failed, None


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
