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
IDEMPOTENCY_KEY_JMESPATH = "[bucket, key, version_id, etag, fingerprint]"
# `s3.configurationId` of the notifications `s3kp backfill` sends (S3 puts its notification's id there).
REPLAY_CONFIGURATION_ID = "s3kp-backfill"
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
    processes it. A replay (`s3kp backfill`) of a version is the same unit as S3's own event for it."""
    source = event.source
    return {
        "bucket": source.bucket,
        "key": source.key,
        "version_id": source.version_id,
        "etag": source.etag,
        "fingerprint": fingerprint,
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
        replay=s3.get("configurationId") == REPLAY_CONFIGURATION_ID,
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
