"""S3 event notifications -> the objects to process, from AWS's shape and moto's.

AWS records carry `object.sequencer`, `userIdentity`, `requestParameters` and `responseElements`; moto's
carry none of them (and URL-encode `/` in keys), which makes Powertools' `S3Model` reject them and its
data classes raise `KeyError` on `sequencer`. So records are read here as plain mappings, tolerating every
optional field.

Decisions:
- Only `ObjectCreated:*` records become work. Other event names (e.g. `ObjectRemoved:*`, when the bucket
  notification is configured wider than the template's) are *ignored*, not recorded as `skipped`: a
  result for a deleted object would be misleading. They are returned so the handler can log them.
- `s3:TestEvent` (sent once when the notification is configured) is recognised and ignored.
- A body that is not an S3 notification raises `MalformedNotification`: there is no object to record a
  state against, so the handler logs it with a metric and drops it (a retry cannot fix it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

OBJECT_CREATED_PREFIX = "ObjectCreated:"
TEST_EVENT = "s3:TestEvent"
# One object version under one fingerprint (model + inference settings) is one unit of work (Powertools
# Idempotency key over an ObjectCreated's fields): a new model processes the same version again.
IDEMPOTENCY_KEY_JMESPATH = "[bucket, key, version_id, etag, fingerprint]"
# `s3.configurationId` of the notifications `s3kp backfill` sends (S3 puts its notification's id there).
REPLAY_CONFIGURATION_ID = "s3kp-backfill"


class MalformedNotification(ValueError):
    """The message is not an S3 event notification this function understands."""


@dataclass(frozen=True)
class ObjectCreated:
    """One `ObjectCreated:*` record, with the key decoded."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    sequencer: str | None
    event_time: datetime | None
    event_name: str
    # Sent by `s3kp backfill` (not S3): the object's current version, with no S3 sequencer.
    replay: bool = False
    # What will process it (set by the handler): part of the idempotency key.
    fingerprint: str | None = None


@dataclass(frozen=True)
class Notification:
    objects: tuple[ObjectCreated, ...] = ()
    ignored_event_names: tuple[str, ...] = ()
    is_test_event: bool = False


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
    objects: list[ObjectCreated] = []
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


def _object_created(record: Mapping[str, Any], event_name: str) -> ObjectCreated:
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
    return ObjectCreated(
        bucket=bucket,
        key=key,
        version_id=obj.get("versionId") or None,
        etag=(str(obj["eTag"]).strip('"') or None) if obj.get("eTag") else None,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        sequencer=obj.get("sequencer") or None,
        event_time=_parse_time(record.get("eventTime")),
        event_name=event_name,
        replay=s3.get("configurationId") == REPLAY_CONFIGURATION_ID,
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
