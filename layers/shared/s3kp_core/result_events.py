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
from typing import Annotated, Any, Final, Literal, Protocol

import msgspec

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


# msgspec Structs, not pydantic models: the detail is built on the ingest function's hot path and its JSON
# Schema generated from the same types (`detail_json_schema`), without pydantic's import on the cold start.
# `forbid_unknown_fields` keeps our own decoding of a detail closed (a test reading back what we publish
# fails on a field the types do not declare); the published schema is open (see `detail_json_schema`).
class EventReason(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(description="stable snake_case reason code, e.g. `image_undecodable`")]
    message: Annotated[str, msgspec.Meta(description="for people; never holds a secret")]


class EventSource(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    bucket: str
    key: Annotated[str, msgspec.Meta(description="the decoded object key")]
    version_id: Annotated[str | None, msgspec.Meta(description="set when the bucket is versioned")] = None
    etag: str | None = None
    size: Annotated[int | None, msgspec.Meta(description="bytes")] = None


class EventLocation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    bucket: str
    key: str


class EventImage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    width: Annotated[int, msgspec.Meta(description="pixels, after EXIF orientation")]
    height: int


class EventVideo(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    duration_seconds: float
    fps_sampled: Annotated[float, msgspec.Meta(description="frames sampled per second of video")]
    frames: Annotated[int, msgspec.Meta(ge=0, description="sampled frames, each with its predictions")]
    width: Annotated[int, msgspec.Meta(description="pixels, as displayed (rotation metadata applied)")]
    height: int
    frames_document: Annotated[
        EventLocation | None,
        msgspec.Meta(description="gzip JSON Lines: one sampled frame a line with its predictions"),
    ] = None


class ResultEventDetail(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The `detail` of a `Keypoint Result` event (schema version 1)."""

    schema_version: Annotated[
        Literal["1"], msgspec.Meta(description="a new major version is a breaking change")
    ] = SCHEMA_VERSION
    result_id: Annotated[
        str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$", description="first 32 hex of SHA-256(bucket/key)")
    ]
    status: Annotated[
        Status, msgspec.Meta(description="a final state: events are never put for a video still `processing`")
    ]
    reason: Annotated[
        EventReason | None, msgspec.Meta(description="why the result is not `succeeded`; null when it is")
    ]
    source: EventSource
    model_id: Annotated[str, msgspec.Meta(description="the model as project/version")]
    fingerprint: Annotated[
        str | None,
        msgspec.Meta(
            description="digest of the model and the inference settings that produced the result, "
            "for a video also its sampling rate"
        ),
    ]
    detections: Annotated[int, msgspec.Meta(ge=0)]
    keypoints: Annotated[int, msgspec.Meta(ge=0, description="keypoints over all detections")]
    counts: Annotated[dict[str, int], msgspec.Meta(description="detections per class")]
    image: Annotated[
        EventImage | None, msgspec.Meta(description="original size; null when the image was not decoded")
    ]
    annotated: Annotated[
        EventLocation | None, msgspec.Meta(description="the annotated JPEG; null when there is none")
    ]
    predictions: Annotated[
        EventLocation | None,
        msgspec.Meta(
            description="the predictions document when the result keeps them in S3 (large results); "
            "otherwise null: read them from `api_path`"
        ),
    ]
    created_at: Annotated[
        datetime, msgspec.Meta(tz=True, description="when the object first got a result (ISO-8601 UTC)")
    ]
    updated_at: Annotated[
        datetime, msgspec.Meta(tz=True, description="when this state was recorded (ISO-8601 UTC)")
    ]
    api_path: Annotated[
        str, msgspec.Meta(description="the result in the results API: GET {ApiUrl}{api_path}")
    ]
    media_type: Annotated[
        Literal["image", "video"], msgspec.Meta(description="`video`: one event per video, when it completes")
    ] = "image"
    video: Annotated[
        EventVideo | None, msgspec.Meta(description="a video's sampling and size; null for images")
    ] = None


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
        media_type=record.media_type,
        video=_video(record),
    )


def detail_json(detail: ResultEventDetail) -> str:
    """The detail as EventBridge receives it; `counts` is emptied in the (pathological) case of a detail
    over the entry limit (tens of thousands of classes): the totals stay, the API has the rest."""
    data = msgspec.json.encode(detail)
    if len(data) + len(EVENT_SOURCE) + len(DETAIL_TYPE) > MAX_ENTRY_BYTES:
        data = msgspec.json.encode(msgspec.structs.replace(detail, counts={}))
    return data.decode()


def detail_json_schema() -> dict[str, Any]:
    """The JSON Schema of the detail (draft 2020-12), as committed under docs/schemas/: msgspec's schema
    with the detail itself at the root rather than behind a `$ref`, and open: fields may be added within
    a schema version (docs/events.md), so a consumer validating with it must not reject them."""
    generated: dict[str, Any] = msgspec.json.schema(ResultEventDetail)
    definitions: dict[str, Any] = generated["$defs"]
    for shape in definitions.values():
        if shape.get("additionalProperties") is False:  # from `forbid_unknown_fields`, ours only
            del shape["additionalProperties"]
    root: dict[str, Any] = definitions.pop(ResultEventDetail.__name__)
    root["title"] = "Keypoint Result detail"
    root["description"] = (
        "The `detail` of an EventBridge event with source `s3-keypoints` and detail-type "
        "`Keypoint Result`: one per state change of a result (docs/events.md)."
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **root,
        "$defs": definitions,
    }


def _video(record: ResultRecord) -> EventVideo | None:
    video = record.video
    if video is None:
        return None
    return EventVideo(
        duration_seconds=video.duration_seconds,
        fps_sampled=video.fps_sampled,
        frames=video.frames,
        width=video.width,
        height=video.height,
        frames_document=_location(video.frames_ref),
    )


def _location(ref: ObjectRef | None) -> EventLocation | None:
    return EventLocation(bucket=ref.bucket, key=ref.key) if ref is not None else None


# --------------------------------------------------------------------------------------------- publishing


class EventPublisher(Protocol):
    """Where result events go. `publish` returns once the event is accepted, or raises TransientError."""

    def publish(self, detail: ResultEventDetail) -> None: ...
