"""Where ResultRecords are written: the port the per-object flow writes through.

A store keeps two promises (the DynamoDB adapter, `results_store_dynamodb`, explains how):
- Ordering. A write carries the event's `order` (`s3kp_core.ordering.event_order`) and is refused when
  a newer result is stored, so a stale event never overwrites a newer result; equal orders may overwrite
  (a redelivery of the same event must be able to succeed).
- Events owed. `write` tells whether the result's event is owed (a state change, or an event an earlier
  delivery could not publish); `settle` forgets it once published.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

from s3kp_core.results import ResultRecord


@dataclass(frozen=True)
class StoredState:
    """What a new write needs to know about the result already stored for the same object."""

    event_order: str | None
    created_at: datetime | None


@dataclass(frozen=True)
class Write:
    """What a write did: `record` is the result as stored (predictions moved out of line, a too-large
    result turned into a failure); `event_owed` when its event must be published (then `settle`)."""

    written: bool
    record: ResultRecord
    order: str
    event_owed: bool = False


def event_state(record: ResultRecord) -> str:
    """A digest of what a result event says: equal digests mean no state change worth an event."""
    source = record.source
    state = [
        record.status.value,
        record.reason.code if record.reason else None,
        source.bucket,
        source.key,
        source.version_id,
        source.etag,
        record.model_id,
        record.fingerprint,
        record.detections,
        record.keypoints,
        sorted(record.counts.items()),
    ]
    return hashlib.sha256(json.dumps(state, separators=(",", ":")).encode()).hexdigest()[:32]


class ResultsStore(ABC):
    @abstractmethod
    def stored_state(self, result_id: str) -> StoredState | None:
        """The stored result's ordering token and creation time, or None when there is none."""

    @abstractmethod
    def save(self, record: ResultRecord, *, order: str) -> bool:
        """Write the record unless a newer one is stored; True when written, False when stale."""

    def write(self, record: ResultRecord, *, order: str, track_event: bool = False) -> Write:
        """`save`, telling whether the result's event is owed. Stores that cannot tell owe one per write."""
        written = self.save(record, order=order)
        return Write(written=written, record=record, order=order, event_owed=written and track_event)

    def settle(self, write: Write) -> None:  # noqa: B027 - optional: stores that track nothing keep it
        """The event owed by `write` went out (or none was): forget that it is owed."""
