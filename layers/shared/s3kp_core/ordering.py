"""The order of S3 events for one key, and the names of one event's outputs: pure functions.

S3 delivers events at least once and out of order. Each result is written with `event_order`, a token
whose string order is the events' order (S3's `sequencer`, left-padded because sequencers of one key may
differ in length; moto sends none, so then the event time); the results store refuses a write whose token
is older than the stored one. `event_token` names the outputs of one event (its drawing, its spilled
predictions), so two events of one key never write the same object.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from s3kp_core.results import SourceObject
from s3kp_core.results_schema import format_timestamp

SEQUENCER_WIDTH = 64


def event_order(sequencer: str | None, event_time: datetime | None, fallback: datetime) -> str:
    """A token whose string order is the order of S3 events for one key.

    Sequencer tokens (`s#…`) sort after time tokens (`t#…`), so within one deployment (one event source)
    the comparison is always like for like; a mixed pair resolves in favour of the sequencer.
    """
    if sequencer:
        return "s#" + sequencer.strip().upper().rjust(SEQUENCER_WIDTH, "0")
    return "t#" + format_timestamp(event_time or fallback)


def event_token(order: str, source: SourceObject) -> str:
    """16 hex digits naming one event's outputs (its drawing, its spilled predictions): two events of one
    key never share an output object, so neither can clobber the other's."""
    return hashlib.sha256(f"{order}|{source.version_id}|{source.etag}".encode()).hexdigest()[:16]
