"""The result of processing one source object: one definition shared by the ingest and API functions.

Every uploaded object ends in exactly one recorded state: `succeeded`, `failed` (with a reason) or
`skipped` (with a reason). The item is keyed by `result_id`, derived from bucket + key, so a lookup by
source object is a single GetItem and a newer version of the same key replaces the older result.

The types are frozen msgspec Structs, not pydantic models or standard-library dataclasses: a Struct
class is defined in C in a few microseconds, where a dataclass compiles its generated methods (~0.8 ms a
class on CPython 3.12, most of what our code added to the API's cold start), and neither function pays
pydantic's import for them (docs/ingest-cold-start.md). Nothing here validates on construction: values
come from our own code, and the boundaries that read foreign data validate into these types: msgspec in
`results_schema.from_plain`; pydantic in the API, through `results_pydantic`, which this module imports
only when pydantic asks for a type's schema and which carries each field's `description`/`examples`
from its `doc()` annotation into the OpenAPI document.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec


def doc(description: str | None = None, *, examples: list[Any] | None = None) -> msgspec.Meta:
    """A field's documentation, as `Annotated` metadata (msgspec's and, via `results_pydantic`, the API's
    JSON Schema read it)."""
    return msgspec.Meta(description=description, examples=examples)


class ResultType(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the result types: frozen, keyword-only, and described to pydantic on demand."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        # Only the API asks (its validation and OpenAPI document); the import of the bridge, and of
        # pydantic with it, happens there and never in the ingest function.
        from s3kp_core.results_pydantic import core_schema_of

        return core_schema_of(cls, handler)


class Status(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    # A video whose segments are still outstanding (docs/videos.md); images never have it.
    PROCESSING = "processing"


FINAL_STATUSES: frozenset[Status] = frozenset({Status.SUCCEEDED, Status.FAILED, Status.SKIPPED})
MediaType = Literal["image", "video"]


class Reason(ResultType, frozen=True, kw_only=True):
    """Why a result is not `succeeded`: a stable machine code and a human message (never a secret)."""

    code: Annotated[str, doc(examples=["image_undecodable"])]
    message: Annotated[
        str, doc(examples=["the object is not an image Pillow can read: cannot identify image file"])
    ]


class Keypoint(ResultType, frozen=True, kw_only=True):
    x: float
    y: float
    confidence: float
    class_id: Annotated[int, doc("the keypoint's slot in the model's skeleton")]
    name: Annotated[str, doc("the keypoint's label, e.g. `left_eye`")]


class Prediction(ResultType, frozen=True, kw_only=True):
    """One detection in original-image pixels: box centre and size, class, confidence, keypoints."""

    x: float
    y: float
    width: float
    height: float
    confidence: float
    class_name: Annotated[str, doc("the detected class, e.g. `person`")]
    class_id: int
    detection_id: str | None = None
    keypoints: tuple[Keypoint, ...] = ()


class ImageSize(ResultType, frozen=True, kw_only=True):
    width: int
    height: int


class ObjectRef(ResultType, frozen=True, kw_only=True):
    bucket: str
    key: str
    version_id: str | None = None


class VideoSummary(ResultType, frozen=True, kw_only=True):
    """What a video result adds: its sampling, its size as displayed, and where its frames are."""

    duration_seconds: Annotated[float, doc("the video stream's duration")]
    fps_sampled: Annotated[float, doc("frames sampled per second of video (VideoFps)")]
    frames: Annotated[
        int, doc("sampled frames: planned while `processing`, then those recorded with their predictions")
    ]
    width: Annotated[int, doc("pixels, as displayed (rotation metadata applied)")]
    height: int
    segments: Annotated[int, doc("parts processed by separate invocations (VideoSegmentSeconds each)")] = 1
    segments_done: int = 0
    frames_ref: Annotated[
        ObjectRef | None,
        doc("gzip JSON Lines, one sampled frame a line with its predictions (GET /results/{id}/frames)"),
    ] = None


class SourceObject(ResultType, frozen=True, kw_only=True):
    bucket: str
    key: Annotated[str, doc("the decoded object key")]
    version_id: str | None = None
    etag: str | None = None
    size: Annotated[int | None, doc("bytes")] = None
    sequencer: Annotated[str | None, doc("S3's event sequencer: orders events of one key")] = None


class ResultSummary(ResultType, frozen=True, kw_only=True):
    """A result without its predictions (which can be large): what a listing returns."""

    result_id: str
    status: Status
    reason: Reason | None = None
    source: SourceObject
    model_id: str
    fingerprint: Annotated[
        str | None,
        doc(
            "digest of the model and the inference settings that produced the result, for a video "
            "also its sampling rate (s3kp_core.fingerprint); absent on results recorded before "
            "fingerprints existed"
        ),
    ] = None
    image: Annotated[ImageSize | None, doc("original size after EXIF orientation")] = None
    media_type: Annotated[MediaType, doc("`video` for the uploads the video function processes")] = "image"
    video: Annotated[VideoSummary | None, doc("a video's sampling and size; null for images")] = None
    counts: Annotated[dict[str, int], doc("detections per class (over every sampled frame of a video)")] = (
        msgspec.field(default_factory=dict)
    )
    detections: int = 0
    keypoints: Annotated[int, doc("keypoints over all detections")] = 0
    timings_ms: dict[str, float] = msgspec.field(default_factory=dict)
    annotated: ObjectRef | None = None
    created_at: datetime
    updated_at: datetime


class ResultRecord(ResultSummary, frozen=True, kw_only=True):
    """The whole result of one source object, as stored."""

    predictions: Annotated[
        tuple[Prediction, ...] | None, doc("None when stored out of line (see predictions_ref)")
    ] = None
    predictions_ref: Annotated[
        ObjectRef | None, doc("S3 JSON document holding the predictions when the item would exceed 400 KB")
    ] = None


SUMMARY_FIELDS: tuple[str, ...] = ResultSummary.__struct_fields__
"""The attributes of a summary, in declaration order (what a listing reads of an item)."""


def result_id_for(bucket: str, key: str) -> str:
    """A stable, URL-safe id for a source object: the first 128 bits of SHA-256(bucket/key) in hex."""
    return hashlib.sha256(f"{bucket}/{key}".encode()).hexdigest()[:32]


def utc_now() -> datetime:
    return datetime.now(UTC)


def summarize(predictions: tuple[Prediction, ...] | list[Prediction]) -> tuple[dict[str, int], int, int]:
    """Per-class counts, detection count and keypoint count of a prediction list."""
    counts: dict[str, int] = {}
    keypoint_total = 0
    for prediction in predictions:
        counts[prediction.class_name] = counts.get(prediction.class_name, 0) + 1
        keypoint_total += len(prediction.keypoints)
    return counts, len(predictions), keypoint_total
