"""S3 event notifications -> the domain's `ObjectEvent`s, from AWS's shape and moto's.

AWS records carry `object.sequencer`, `userIdentity`, `requestParameters` and `responseElements`; moto's
carry none of them (and URL-encode `/` in keys), which makes Powertools' `S3Model` reject them and its
data classes raise `KeyError` on `sequencer`. So records are read here as plain mappings, tolerating every
optional field.

Decisions:
- Only `ObjectCreated:*` records become work. Other event names (e.g. `ObjectRemoved:*`, when the bucket
  notification is configured wider than the template's) are *ignored*, not recorded as `skipped`: a
  result for a deleted object would be misleading. They are returned so the handler can log them.
- `s3:TestEvent` (sent once when the notification is configured) is recognised and ignored.
- A replay (`s3kp backfill`, marked by `s3.configurationId`) may carry a rerun token (`s3kp.rerun`, sent
  by `--only-failed`): it becomes part of the idempotency key, so the object runs again even when its
  failure was remembered. S3's own records never carry one, and a token on a non-replay is ignored.
- A body that is not an S3 notification raises `MalformedNotification`: there is no object to record a
  state against, so the handler logs it with a metric and drops it (a retry cannot fix it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias
from urllib.parse import unquote_plus

from s3kp_core.processing import ObjectEvent
from s3kp_core.results import SourceObject

OBJECT_CREATED_PREFIX = "ObjectCreated:"
TEST_EVENT = "s3:TestEvent"
# One object version under one fingerprint (model + inference settings) is one unit of work (Powertools
# Idempotency key over `work_unit()`): a new model processes the same version again. Stored idempotency
# records were keyed on exactly these fields: changing them would run every object version once more.
# A rerun (`s3kp backfill --only-failed`) adds its token, so a failure idempotency remembers (a permanent
# one: the function returned) is run again; without a token the expression yields the same list as before.
IDEMPOTENCY_KEY_JMESPATH = (
    "rerun && [bucket, key, version_id, etag, fingerprint, rerun]"
    " || [bucket, key, version_id, etag, fingerprint]"
)
# `s3.configurationId` of the notifications `s3kp backfill` sends (S3 puts its notification's id there).
REPLAY_CONFIGURATION_ID = "s3kp-backfill"
# Where a backfill record carries its rerun token: `{"s3kp": {"rerun": "<token>"}}` beside S3's fields.
RERUN_FIELD = "s3kp"
MAX_RERUN_CHARS = 64
# The data the idempotency key is taken from: the fields IDEMPOTENCY_KEY_JMESPATH names.
WorkUnit: TypeAlias = dict[str, str | None]


class MalformedNotification(ValueError):
    """The message is not an S3 event notification this function understands."""


@dataclass(frozen=True)
class Notification:
    objects: tuple[ObjectEvent, ...] = ()  # one per `ObjectCreated:*` record, in order
    ignored_event_names: tuple[str, ...] = ()
    is_test_event: bool = False


def work_unit(event: ObjectEvent, fingerprint: str | None) -> WorkUnit:
    """What the idempotency key is taken from (`IDEMPOTENCY_KEY_JMESPATH`): the object version and what
    processes it. A replay (`s3kp backfill`) of a version is the same unit as S3's own event for it; a
    rerun is a unit of its own (one per token: its own redeliveries are still duplicates)."""
    source = event.source
    return {
        "bucket": source.bucket,
        "key": source.key,
        "version_id": source.version_id,
        "etag": source.etag,
        "fingerprint": fingerprint,
        "rerun": event.rerun,
    }


def decode_key(encoded: str) -> str:
    """S3 URL-encodes keys in notifications (`+` for a space, `%2B` for `+`, UTF-8 percent-escapes)."""
    return unquote_plus(encoded, encoding="utf-8", errors="strict")


def parse_json_notification(body: str) -> Notification:
    """An SQS message body holding an S3 notification (JSON text)."""
    try:
        document = json.loads(body)
    except (TypeError, ValueError) as error:
        raise MalformedNotification(f"message body is not JSON: {error}") from None
    if not isinstance(document, Mapping):
        raise MalformedNotification("message body is not a JSON object")
    return parse_notification(document)


def parse_notification(document: Mapping[str, Any]) -> Notification:
    """An S3 notification document: `{"Records": [...]}` or the test event."""
    if document.get("Event") == TEST_EVENT:
        return Notification(is_test_event=True)
    records = document.get("Records")
    if not isinstance(records, Sequence) or isinstance(records, str | bytes):
        raise MalformedNotification("notification has no `Records` list")
    objects: list[ObjectEvent] = []
    ignored: list[str] = []
    for record in records:
        if not isinstance(record, Mapping):
            raise MalformedNotification("a record is not a JSON object")
        event_name = str(record.get("eventName", ""))
        if not event_name.startswith(OBJECT_CREATED_PREFIX):
            ignored.append(event_name)
            continue
        objects.append(_object_created(record, event_name))
    return Notification(objects=tuple(objects), ignored_event_names=tuple(ignored))


def _object_created(record: Mapping[str, Any], event_name: str) -> ObjectEvent:
    try:
        s3 = record["s3"]
        bucket = str(s3["bucket"]["name"])
        obj = s3["object"]
        encoded_key = str(obj["key"])
        key = decode_key(encoded_key)
    except (KeyError, TypeError):
        raise MalformedNotification(f"{event_name} record lacks s3.bucket.name or s3.object.key") from None
    except UnicodeDecodeError:
        raise MalformedNotification(f"{event_name} record's key is not URL-encoded UTF-8") from None
    size = obj.get("size")
    replay = s3.get("configurationId") == REPLAY_CONFIGURATION_ID
    return ObjectEvent(
        source=SourceObject(
            bucket=bucket,
            key=key,
            version_id=obj.get("versionId") or None,
            etag=(str(obj["eTag"]).strip('"') or None) if obj.get("eTag") else None,
            size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            sequencer=obj.get("sequencer") or None,
        ),
        event_time=_parse_time(record.get("eventTime")),
        event_name=event_name,
        replay=replay,
        rerun=_rerun_token(record) if replay else None,
    )


def _rerun_token(record: Mapping[str, Any]) -> str | None:
    """The token of a backfill rerun; anything else there (not a short string) is ignored, not trusted."""
    extra = record.get(RERUN_FIELD)
    token = extra.get("rerun") if isinstance(extra, Mapping) else None
    return token if isinstance(token, str) and 0 < len(token) <= MAX_RERUN_CHARS else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
