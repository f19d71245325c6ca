"""The records of one SQS batch, processed in a bounded pool of threads (RECORD_CONCURRENCY).

Most of a record's time is the wait for the inference endpoint's answer, billed at the function's whole
memory; in parallel the waits overlap. Why threads and how:

- **Powertools' BatchProcessor, with `process()` overridden.** Each record still goes through the
  processor's own `_process_record`, which reports its failure for `batchItemFailures` exactly as in
  sequence. Powertools for Python has no parallel batch processor (its feature request, aws-powertools/
  powertools-lambda-python#2500, was closed without one; the Java and TypeScript versions have one).
- **Not `AsyncBatchProcessor`.** Every client here is synchronous (boto3, requests, Pillow): an async
  record handler would hand each record to a thread anyway (`asyncio.to_thread`, on the event loop's
  default executor), and the async processor gathers all records at once with no bound of its own.
- **Trace context.** X-Ray keeps the current segment per thread: each worker thread is given the
  invocation's entity (the handler's subsegment) and clears it afterwards, as the X-Ray SDK documents for
  a ThreadPoolExecutor, so every record's subsegments nest under the handler's.
- **One copy of an object version at a time.** Two messages of one batch about the same object version
  (a duplicate S3 event) would otherwise run side by side: the second would find the first's idempotency
  record in progress and be deferred for minutes. `KeyedLocks` makes it wait for the first to finish, and
  then idempotency answers it from the table, as in sequence.

What threads must not share implicitly is the handler's to keep per record: its log keys are Powertools'
thread-local keys, its metrics go through a lock, and everything it builds once per container is built
before the pool starts (`ingest_dependencies.build_shared`).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType


class TraceRecorder(Protocol):
    """What is needed of the X-Ray recorder (Powertools' `tracer.provider`)."""

    def get_trace_entity(self) -> Any: ...
    def set_trace_entity(self, trace_entity: Any) -> None: ...
    def clear_trace_entities(self) -> None: ...


class ConcurrentBatchProcessor(BatchProcessor):
    """`BatchProcessor` running up to `max_workers` records at once (1: in sequence, in this thread)."""

    def __init__(
        self,
        event_type: EventType,
        *,
        max_workers: int,
        recorder: TraceRecorder | None = None,
        raise_on_entire_batch_failure: bool = True,
    ) -> None:
        super().__init__(event_type=event_type, raise_on_entire_batch_failure=raise_on_entire_batch_failure)
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        self._recorder = recorder

    def process(self) -> list[tuple[Any, ...]]:
        workers = min(self.max_workers, len(self.records))
        if workers <= 1:
            return super().process()
        recorder = self._recorder
        parent = recorder.get_trace_entity() if recorder is not None else None

        def run(record: dict[str, Any]) -> tuple[Any, ...]:
            if recorder is None or parent is None:
                return self._process_record(record)
            recorder.set_trace_entity(parent)
            try:
                return self._process_record(record)
            finally:
                recorder.clear_trace_entities()  # a pool thread may run another record next

        # Results in the records' order; a record's exception is its failure (`_process_record` catches).
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest-record") as pool:
            return list(pool.map(run, self.records))


class KeyedLocks:
    """One holder at a time per key; the lock of a key exists only while someone holds or awaits it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def users(self, key: Hashable) -> int:
        """How many hold or await `key` right now."""
        with self._guard:
            return self._locks.get(key, (None, 0))[1]

    def __len__(self) -> int:
        """Keys held or awaited right now."""
        with self._guard:
            return len(self._locks)
