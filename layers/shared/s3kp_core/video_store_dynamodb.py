"""The DynamoDB implementation of `video_store.VideoStore`: one conditional write per step.

The video's item is the results table's item (same keys and indexes, `s3kp_core.results_schema`), plus
`video_run` (the run it belongs to) and, while `processing`, `video_segments` (a map of the segments
recorded so far). A segment is recorded with one UpdateItem that sets its entry and adds one to
`video.segments_done`, conditional on the run, the status and the entry's absence, returning the item as
written: the writer that sees every segment recorded is the one that finishes the video. The final state is
a PutItem conditional on the run and `processing`; it drops `video_segments` and carries the same event
bookkeeping as an image's result (`event_state`, `event_pending`; see `results_store_dynamodb`).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import msgspec

from s3kp_core.results import ObjectRef, ResultRecord, Status
from s3kp_core.results_schema import PARTITION_KEY, from_dynamodb, from_item, to_dynamodb, to_item
from s3kp_core.results_store import Write, event_state
from s3kp_core.results_store_dynamodb import EVENT_PENDING_ATTRIBUTE, EVENT_STATE_ATTRIBUTE, ORDER_ATTRIBUTE
from s3kp_core.video_store import SegmentSummary, SegmentWrite, Start, VideoState, VideoStore

RUN_ATTRIBUTE = "video_run"
SEGMENTS_ATTRIBUTE = "video_segments"
# Replaces any result of an older upload, or of another run of this upload (a reprocess, a rerun), but
# neither a newer upload's nor this run's own (a retried planner must not reset its segments).
_STARTABLE = (
    "attribute_not_exists(#pk) OR attribute_not_exists(#order) OR #order < :order"
    " OR (#order = :order AND (attribute_not_exists(#run) OR #run <> :run))"
)
_OPEN_FOR = "#run = :run AND #status = :processing"


class DynamoDBVideoStore(VideoStore):
    def __init__(self, table: Any, s3_client: Any) -> None:
        """`table`: the results table as a boto3 Table resource; `s3_client` deletes replaced outputs."""
        self._table = table
        self._s3 = s3_client
        self._conflict = table.meta.client.exceptions.ConditionalCheckFailedException

    def start(self, record: ResultRecord, *, order: str, run: str) -> Start:
        item = to_item(record) | {ORDER_ATTRIBUTE: order, RUN_ATTRIBUTE: run, SEGMENTS_ATTRIBUTE: {}}
        try:
            response = self._table.put_item(
                Item=item,
                ConditionExpression=_STARTABLE,
                ExpressionAttributeNames={
                    "#pk": PARTITION_KEY,
                    "#order": ORDER_ATTRIBUTE,
                    "#run": RUN_ATTRIBUTE,
                },
                ExpressionAttributeValues={":order": order, ":run": run},
                ReturnValues="ALL_OLD",
            )
        except self._conflict:
            state = self.read(record.result_id)
            if state is None or not state.belongs_to(run):
                return Start.STALE
            return Start.RUNNING if state.processing else Start.FINISHED
        self._delete_outputs(response.get("Attributes") or {})
        return Start.STARTED

    def read(self, result_id: str) -> VideoState | None:
        item = self._table.get_item(Key={PARTITION_KEY: result_id}, ConsistentRead=True).get("Item")
        return None if item is None else _state(item)

    def record_segment(
        self, result_id: str, *, run: str, index: int, summary: SegmentSummary
    ) -> tuple[SegmentWrite, VideoState | None]:
        try:
            response = self._table.update_item(
                Key={PARTITION_KEY: result_id},
                UpdateExpression="SET #segments.#index = :summary, #video.#done = #video.#done + :one",
                ConditionExpression=f"{_OPEN_FOR} AND attribute_not_exists(#segments.#index)",
                ExpressionAttributeNames={
                    "#segments": SEGMENTS_ATTRIBUTE,
                    "#index": str(index),
                    "#video": "video",
                    "#done": "segments_done",
                    "#run": RUN_ATTRIBUTE,
                    "#status": "status",
                },
                ExpressionAttributeValues={
                    ":summary": to_dynamodb(msgspec.to_builtins(summary)),
                    ":one": 1,
                    ":run": run,
                    ":processing": Status.PROCESSING.value,
                },
                ReturnValues="ALL_NEW",
            )
        except self._conflict:
            return SegmentWrite.NOT_RECORDED, self.read(result_id)
        return SegmentWrite.RECORDED, _state(response["Attributes"])

    def finish(self, record: ResultRecord, *, order: str, run: str, track_event: bool) -> Write:
        item = to_item(record) | {ORDER_ATTRIBUTE: order, RUN_ATTRIBUTE: run}
        if track_event:
            state = event_state(record)
            item |= {EVENT_STATE_ATTRIBUTE: state, EVENT_PENDING_ATTRIBUTE: state}
        try:
            self._table.put_item(
                Item=item,
                ConditionExpression=_OPEN_FOR,
                ExpressionAttributeNames={"#run": RUN_ATTRIBUTE, "#status": "status"},
                ExpressionAttributeValues={":run": run, ":processing": Status.PROCESSING.value},
            )
        except self._conflict:
            return Write(written=False, record=record, order=order)
        return Write(written=True, record=record, order=order, event_owed=track_event)

    def settle(self, write: Write) -> None:
        with suppress(self._conflict):  # a newer write owns the marker now: nothing to do
            self._table.update_item(
                Key={PARTITION_KEY: write.record.result_id},
                UpdateExpression="REMOVE #pending",
                ConditionExpression="#order = :order AND #pending = :state",
                ExpressionAttributeNames={"#order": ORDER_ATTRIBUTE, "#pending": EVENT_PENDING_ATTRIBUTE},
                ExpressionAttributeValues={":order": write.order, ":state": event_state(write.record)},
            )

    def _delete_outputs(self, replaced: dict[str, Any]) -> None:
        """Best effort: the replaced result's drawing and documents (an orphan costs storage only)."""
        if not replaced:
            return
        old = from_item(replaced)
        refs: list[ObjectRef | None] = [old.annotated, old.predictions_ref]
        if old.video is not None:
            refs.append(old.video.frames_ref)
        for ref in refs:
            if ref is not None:
                with suppress(Exception):
                    self._s3.delete_object(Bucket=ref.bucket, Key=ref.key)


def _state(item: dict[str, Any]) -> VideoState:
    segments = from_dynamodb(item.get(SEGMENTS_ATTRIBUTE) or {})
    return VideoState(
        record=from_item(item),
        run=item.get(RUN_ATTRIBUTE),
        order=item.get(ORDER_ATTRIBUTE),
        segments={
            int(index): msgspec.convert(summary, SegmentSummary) for index, summary in segments.items()
        },
        event_owed=EVENT_PENDING_ATTRIBUTE in item,
    )
