"""The DynamoDB implementation of `results_store.ResultsStore`.

Two guarantees beyond a plain PutItem:
- Ordering. S3 delivers events at least once and out of order, so each item carries `event_order`, a
  sortable token from the event (S3's `sequencer`, left-padded because sequencers of one key may differ
  in length; moto sends none, so then the event time). A write is conditional on the stored token being
  absent or not newer, so a stale event never overwrites a newer result. Equal tokens may overwrite: a
  redelivery of the same event (e.g. a DLQ redrive after a recorded `failed`) must be able to succeed.
- Events owed. Each write records `event_state`, a digest of the state a result event describes
  (status, reason code, object version, fingerprint, counts), and, when the caller publishes events,
  `event_pending` until `settle` removes it after the event went out. The PutItem returns the old item,
  so `write` tells whether this is a state change (another `event_state`) or an event is still owed
  from an earlier delivery (`event_pending` was there); a redelivery that changes nothing owes nothing.
- Size. An item never exceeds DynamoDB's 400 KB: its size is measured with DynamoDB's sizing rules and,
  when too large, the predictions go to an S3 JSON document and the item keeps `predictions_ref`. A
  reason message is cut to `MAX_REASON_CHARS`. A result over 400 KB even without its predictions (only
  a pathological `counts` map can be: tens of thousands of class names) is recorded as `failed` with
  reason `result_too_large` instead, so the object always gets a state rather than a failing write.
  Likewise when S3 refuses the predictions document (a 4xx: `output_write_refused`): the result is
  recorded as `failed` without its predictions; a passing failure raises `output_write_failed`.
"""

from __future__ import annotations

import json
from contextlib import suppress
from datetime import datetime
from decimal import Decimal
from typing import Any

from msgspec.structs import replace

from s3kp_core.errors import RESULT_TOO_LARGE, PermanentError
from s3kp_core.objects_s3 import write_failure
from s3kp_core.ordering import event_token
from s3kp_core.results import ObjectRef, Reason, ResultRecord, Status
from s3kp_core.results_schema import PARTITION_KEY, to_item, to_plain
from s3kp_core.results_store import ResultsStore, StoredState, Write, event_state

ORDER_ATTRIBUTE = "event_order"
EVENT_STATE_ATTRIBUTE = "event_state"
EVENT_PENDING_ATTRIBUTE = "event_pending"
DYNAMODB_ITEM_LIMIT = 400 * 1024
# The size estimate follows AWS's published rules; the margin covers rounding in number sizes.
DEFAULT_ITEM_BUDGET = 350 * 1024
MAX_REASON_CHARS = 1000
"""The result is over the item budget even without its predictions: recorded as `failed`."""
_NOT_NEWER_STORED = "attribute_not_exists(#pk) OR attribute_not_exists(#order) OR #order <= :order"
_DOCUMENT_FIELDS = ("result_id", "source", "model_id", "image", "predictions")


def item_size(item: dict[str, Any]) -> int:
    """The size DynamoDB charges for an item (attribute names + values), in bytes."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: Any) -> int:
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, int | float | Decimal):
        digits = len(Decimal(str(value)).normalize().as_tuple().digits)
        return min(21, (digits + 1) // 2 + 1)
    if isinstance(value, dict):
        return 3 + sum(1 + len(str(k).encode()) + _value_size(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return 3 + sum(1 + _value_size(v) for v in value)
    raise TypeError(f"cannot size a {type(value).__name__} DynamoDB value")


def predictions_document(record: ResultRecord) -> bytes:
    """The out-of-line predictions: the same shape the item would have held, plus what they belong to."""
    payload = {name: to_plain(getattr(record, name)) for name in _DOCUMENT_FIELDS}
    return json.dumps(payload, separators=(",", ":")).encode()


class DynamoDBResultsStore(ResultsStore):
    def __init__(
        self,
        table: Any,
        s3_client: Any,
        *,
        predictions_prefix: str,
        predictions_bucket: str | None = None,
        item_budget: int = DEFAULT_ITEM_BUDGET,
    ) -> None:
        """`table` is a boto3 DynamoDB Table resource; predictions go to `predictions_bucket` (default:
        the source object's bucket) under `predictions_prefix` when an item would exceed `item_budget`."""
        self._table = table
        self._s3 = s3_client
        self._predictions_prefix = predictions_prefix
        self._predictions_bucket = predictions_bucket
        self._item_budget = item_budget

    def stored_state(self, result_id: str) -> StoredState | None:
        response = self._table.get_item(
            Key={PARTITION_KEY: result_id},
            ProjectionExpression="#order, created_at",
            ExpressionAttributeNames={"#order": ORDER_ATTRIBUTE},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return None
        created = item.get("created_at")
        return StoredState(
            event_order=item.get(ORDER_ATTRIBUTE),
            created_at=datetime.fromisoformat(created) if isinstance(created, str) else None,
        )

    def save(self, record: ResultRecord, *, order: str) -> bool:
        return self.write(record, order=order).written

    def write(self, record: ResultRecord, *, order: str, track_event: bool = False) -> Write:
        record = _with_bounded_reason(record)
        spilled: ObjectRef | None = None
        item = self._item(record, order, track_event)
        if record.predictions and item_size(item) > self._item_budget:
            try:
                spilled = self._spill_predictions(record, order)
            except PermanentError as error:  # a TransientError goes up: the message is retried
                # S3 refused the document for good: record that, rather than fail on every delivery.
                record = replace(record, status=Status.FAILED, reason=error.reason(), predictions=None)
            else:
                record = replace(record, predictions=None, predictions_ref=spilled)
            item = self._item(record, order, track_event)
        if item_size(item) > DYNAMODB_ITEM_LIMIT:
            if spilled is not None:  # the failed record will not point at it
                self._s3.delete_object(Bucket=spilled.bucket, Key=spilled.key)
                spilled = None
            record = _too_large(record, item_size(item))
            item = self._item(record, order, track_event)
        if item_size(item) > DYNAMODB_ITEM_LIMIT:  # cannot happen: every remaining field is bounded
            raise ValueError(f"result {record.result_id} is {item_size(item)} bytes even as a failure")
        try:
            response = self._table.put_item(
                Item=item,
                ConditionExpression=_NOT_NEWER_STORED,
                ExpressionAttributeNames={"#pk": PARTITION_KEY, "#order": ORDER_ATTRIBUTE},
                ExpressionAttributeValues={":order": order},
                # The item this write replaced: tells a state change from a redelivery that changes nothing,
                # and which of its outputs (drawing, spilled predictions) no result points at any more.
                ReturnValues="ALL_OLD",
            )
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            if spilled is not None:  # nothing points at it: do not leave an orphan behind
                self._s3.delete_object(Bucket=spilled.bucket, Key=spilled.key)
            return Write(written=False, record=record, order=order)
        old = response.get("Attributes") or {}
        self._delete_superseded(old, item)
        if not track_event:
            return Write(written=True, record=record, order=order)
        owed = old.get(EVENT_STATE_ATTRIBUTE) != item[EVENT_STATE_ATTRIBUTE] or EVENT_PENDING_ATTRIBUTE in old
        written = Write(written=True, record=record, order=order, event_owed=owed)
        if not owed:
            self.settle(written)  # this write marked an event as owed; the state had no change
        return written

    def settle(self, write: Write) -> None:
        """Remove `event_pending` unless a newer write (another order or state) has replaced the item."""
        with suppress(self._table.meta.client.exceptions.ConditionalCheckFailedException):
            # Fails when a newer write owns the marker now: then there is nothing to do.
            self._table.update_item(
                Key={PARTITION_KEY: write.record.result_id},
                UpdateExpression="REMOVE #pending",
                ConditionExpression="#order = :order AND #pending = :state",
                ExpressionAttributeNames={"#order": ORDER_ATTRIBUTE, "#pending": EVENT_PENDING_ATTRIBUTE},
                ExpressionAttributeValues={":order": write.order, ":state": event_state(write.record)},
            )

    def _item(self, record: ResultRecord, order: str, track_event: bool) -> dict[str, Any]:
        item = to_item(record) | {ORDER_ATTRIBUTE: order}
        if track_event:
            state = event_state(record)
            item |= {EVENT_STATE_ATTRIBUTE: state, EVENT_PENDING_ATTRIBUTE: state}
        return item

    def _delete_superseded(self, replaced: dict[str, Any], item: dict[str, Any]) -> None:
        """Remove the outputs only the replaced item pointed at (an older event's drawing and spilled
        predictions: each event has its own, see `event_token`). Best effort: an orphan costs storage."""
        for name in ("annotated", "predictions_ref"):
            old = replaced.get(name)
            if not isinstance(old, dict) or old == item.get(name):
                continue
            with suppress(Exception):  # nothing to undo: the new result is already stored
                self._s3.delete_object(Bucket=str(old["bucket"]), Key=str(old["key"]))

    def _spill_predictions(self, record: ResultRecord, order: str) -> ObjectRef:
        # One document per event, so a stale write can never clobber the newer result's document.
        bucket = self._predictions_bucket or record.source.bucket
        key = f"{self._predictions_prefix}{record.result_id}/{event_token(order, record.source)}.json"
        try:
            self._s3.put_object(
                Bucket=bucket, Key=key, Body=predictions_document(record), ContentType="application/json"
            )
        except Exception as error:
            raise write_failure(error, f"s3://{bucket}/{key}") from None
        return ObjectRef(bucket=bucket, key=key)


def _with_bounded_reason(record: ResultRecord) -> ResultRecord:
    reason = record.reason
    if reason is None or len(reason.message) <= MAX_REASON_CHARS:
        return record
    message = reason.message[: MAX_REASON_CHARS - 1] + "…"
    return replace(record, reason=Reason(code=reason.code, message=message))


def _too_large(record: ResultRecord, size: int) -> ResultRecord:
    """The record as a failure: what made it too large (counts, with the predictions) is dropped and the
    totals go into the message; the annotated copy, already written, stays linked."""
    message = (
        f"the result is {size} bytes even without its predictions, over the {DYNAMODB_ITEM_LIMIT}-byte "
        f"DynamoDB item limit ({len(record.counts)} classes, {record.detections} detections)"
    )
    return replace(
        record,
        status=Status.FAILED,
        reason=Reason(code=RESULT_TOO_LARGE, message=message),
        predictions=None,
        predictions_ref=None,
        counts={},
        detections=0,
        keypoints=0,
    )
