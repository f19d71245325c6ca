"""Small in-memory stand-ins for the processing flow's collaborators (no AWS, no HTTP), and for what the
adapters are given: a structured log that records its lines, a recorder of the request signers built."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from s3kp_core import errors
from s3kp_core.objects import ObjectInfo, ObjectStore
from s3kp_core.predictor import InferenceResult
from s3kp_core.request_signing import RequestSigner
from s3kp_core.results import Prediction, ResultRecord
from s3kp_core.results_store import ResultsStore, StoredState


@dataclass
class PutObject:
    body: bytes
    content_type: str
    metadata: dict[str, str]


class FakeObjectStore(ObjectStore):
    def __init__(self, objects: Mapping[tuple[str, str], bytes] | None = None) -> None:
        self.objects = dict(objects or {})
        self.puts: dict[tuple[str, str], PutObject] = {}
        self.gets: list[tuple[str, str, str | None, str | None]] = []
        self.deleted: list[tuple[str, str]] = []

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectInfo:
        data = self._find(bucket, key)
        return ObjectInfo(size=len(data), etag=None, content_type=None)

    def get(
        self, bucket: str, key: str, *, version_id: str | None = None, etag: str | None = None, max_bytes: int
    ) -> bytes:
        self.gets.append((bucket, key, version_id, etag))
        return self._find(bucket, key)

    def put(
        self, bucket: str, key: str, body: bytes, *, content_type: str, metadata: Mapping[str, str]
    ) -> None:
        self.puts[(bucket, key)] = PutObject(body, content_type, dict(metadata))

    def delete(self, bucket: str, key: str) -> None:
        self.deleted.append((bucket, key))
        self.puts.pop((bucket, key), None)

    def _find(self, bucket: str, key: str) -> bytes:
        try:
            return self.objects[(bucket, key)]
        except KeyError:
            raise errors.Skipped(errors.OBJECT_MISSING, f"s3://{bucket}/{key} no longer exists") from None


@dataclass
class FakePredictor:
    """Answers with fixed predictions (in sent-image pixels), or runs `behaviour` to raise."""

    predictions: tuple[Prediction, ...] = ()
    behaviour: Callable[[], None] | None = None
    calls: list[tuple[bytes, float | None]] = field(default_factory=list)

    def predict(
        self,
        jpeg: bytes,
        *,
        deadline: float | None = None,
        max_attempts: int | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> InferenceResult:
        self.calls.append((jpeg, deadline))
        if self.behaviour is not None:
            self.behaviour()
        return InferenceResult(
            predictions=self.predictions,
            image_width=0,
            image_height=0,
            inference_id="fake",
            server_time_ms=5.0,
            bytes_sent=len(jpeg),
            attempts=1,
            elapsed_ms=7.0,
        )


class InMemoryResultsStore(ResultsStore):
    """The DynamoDB store's contract (conditional on event order) over a dict."""

    def __init__(self) -> None:
        self.items: dict[str, tuple[ResultRecord, str]] = {}

    def stored_state(self, result_id: str) -> StoredState | None:
        if result_id not in self.items:
            return None
        stored, order = self.items[result_id]
        return StoredState(event_order=order, created_at=stored.created_at)

    def save(self, record: ResultRecord, *, order: str) -> bool:
        current = self.items.get(record.result_id)
        if current is not None and current[1] > order:
            return False
        self.items[record.result_id] = (record, order)
        return True

    def only(self) -> ResultRecord:
        (record,) = (stored for stored, _ in self.items.values())
        return record


class SteppingClock:
    """A monotonic clock that advances 10 ms per reading, so every stage has a positive duration."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.01
        return self.now


def fixed_now() -> datetime:
    return datetime(2026, 11, 27, 9, 0, tzinfo=UTC) + timedelta(seconds=1)


@dataclass
class RecordingLog:
    """Powertools' `Logger` as the circuit breaker and `sqs_retries` use it: (level, message, fields)."""

    lines: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def info(self, msg: str, **fields: Any) -> None:
        self.lines.append(("info", msg, fields))

    def warning(self, msg: str, **fields: Any) -> None:
        self.lines.append(("warning", msg, fields))

    def messages(self) -> list[str]:
        return [msg for _, msg, _ in self.lines]


def record_signers(monkeypatch: pytest.MonkeyPatch) -> list[RequestSigner]:
    """Every `RequestSigner` created from now on (until `monkeypatch` undoes it), in order."""
    signers: list[RequestSigner] = []
    original = RequestSigner.__init__

    def recording(self: RequestSigner, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        signers.append(self)

    monkeypatch.setattr(RequestSigner, "__init__", recording)
    return signers
