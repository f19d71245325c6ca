"""Result events: what downstream pipelines are told when an object reaches a final state.

One event per state change of a result, put on the stack's EventBridge bus with source `s3-keypoints` and
detail-type `Keypoint Result`. The detail is the result's summary (`ResultEventDetail`, its JSON Schema is
docs/schemas/keypoint-result-detail.schema.json): never the API key, never the full predictions (they are
behind `api_path`, or in S3 at `predictions` when the result keeps them out of line).

The publisher is a port (`EventPublisher`) with one adapter (`result_events_eventbridge`); the ingest
flow calls it only after the result is recorded. A put that keeps failing raises `TransientError`, so the
message is retried like any transient failure: the recorded result is never rolled back, and the event
goes out on a later delivery (the results store remembers that it is still owed; see `results_store`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from s3kp_core.results import ObjectRef, ResultRecord, Status

EVENT_SOURCE: Final = "s3-keypoints"
DETAIL_TYPE: Final = "Keypoint Result"
SCHEMA_VERSION: Final = "1"
SCHEMA_ID: Final = (
    "https://github.com/s3-keypoints/s3-keypoints/docs/schemas/keypoint-result-detail.schema.json"
)
# EventBridge's limit for one entry (detail, source, detail-type and resources together) is 256 KB; a
# detail is a few KB at most (its largest part, `counts`, is bounded by the 400 KB item it comes from,
# and a result over the item limit is recorded with empty counts).
MAX_ENTRY_BYTES: Final = 256 * 1024


class EventReason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="stable snake_case reason code, e.g. `image_undecodable`")
    message: str = Field(description="for people; never holds a secret")


class EventSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: str
    key: str = Field(description="the decoded object key")
    version_id: str | None = Field(default=None, description="set when the bucket is versioned")
    etag: str | None = None
    size: int | None = Field(default=None, description="bytes")


class EventLocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bucket: str
    key: str


class EventImage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(description="pixels, after EXIF orientation")
    height: int


class ResultEventDetail(BaseModel):
    """The `detail` of a `Keypoint Result` event (schema version 1)."""

    model_config = ConfigDict(extra="forbid", title="Keypoint Result detail")

    schema_version: Literal["1"] = Field(
        default=SCHEMA_VERSION, description="a new major version is a breaking change"
    )
    result_id: str = Field(pattern=r"^[0-9a-f]{32}$", description="first 32 hex of SHA-256(bucket/key)")
    status: Status
    reason: EventReason | None = Field(description="why the result is not `succeeded`; null when it is")
    source: EventSource
    model_id: str = Field(description="the model as project/version")
    fingerprint: str | None = Field(
        description="digest of the model and the inference settings that produced the result"
    )
    detections: int = Field(ge=0)
    keypoints: int = Field(ge=0, description="keypoints over all detections")
    counts: dict[str, int] = Field(description="detections per class")
    image: EventImage | None = Field(description="original size; null when the image was not decoded")
    annotated: EventLocation | None = Field(description="the annotated JPEG; null when there is none")
    predictions: EventLocation | None = Field(
        description="the predictions document when the result keeps them in S3 (large results); otherwise "
        "null: read them from `api_path`"
    )
    created_at: datetime = Field(description="when the object first got a result (ISO-8601 UTC)")
    updated_at: datetime = Field(description="when this state was recorded (ISO-8601 UTC)")
    api_path: str = Field(description="the result in the results API: GET {ApiUrl}{api_path}")


def result_event_detail(record: ResultRecord) -> ResultEventDetail:
    """The event detail of a recorded result (as stored: predictions moved out of line are pointed at)."""
    source = record.source
    return ResultEventDetail(
        result_id=record.result_id,
        status=record.status,
        reason=EventReason(code=record.reason.code, message=record.reason.message) if record.reason else None,
        source=EventSource(
            bucket=source.bucket,
            key=source.key,
            version_id=source.version_id,
            etag=source.etag,
            size=source.size,
        ),
        model_id=record.model_id,
        fingerprint=record.fingerprint,
        detections=record.detections,
        keypoints=record.keypoints,
        counts=dict(record.counts),
        image=EventImage(width=record.image.width, height=record.image.height) if record.image else None,
        annotated=_location(record.annotated),
        predictions=_location(record.predictions_ref),
        created_at=record.created_at,
        updated_at=record.updated_at,
        api_path=f"/results/{record.result_id}",
    )


def detail_json(detail: ResultEventDetail) -> str:
    """The detail as EventBridge receives it; `counts` is emptied in the (pathological) case of a detail
    over the entry limit (tens of thousands of classes): the totals stay, the API has the rest."""
    text = detail.model_dump_json()
    if len(text.encode()) + len(EVENT_SOURCE) + len(DETAIL_TYPE) > MAX_ENTRY_BYTES:
        text = detail.model_copy(update={"counts": {}}).model_dump_json()
    return text


def detail_json_schema() -> dict[str, Any]:
    """The JSON Schema of the detail (draft 2020-12), as committed under docs/schemas/."""
    schema = ResultEventDetail.model_json_schema(mode="serialization")
    schema["description"] = (
        "The `detail` of an EventBridge event with source `s3-keypoints` and detail-type "
        "`Keypoint Result`: one per state change of a result (docs/events.md)."
    )
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def _location(ref: ObjectRef | None) -> EventLocation | None:
    return EventLocation(bucket=ref.bucket, key=ref.key) if ref is not None else None


# --------------------------------------------------------------------------------------------- publishing


class EventPublisher(Protocol):
    """Where result events go. `publish` returns once the event is accepted, or raises TransientError."""

    def publish(self, detail: ResultEventDetail) -> None: ...
