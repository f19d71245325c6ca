"""The result of processing one source object: one definition shared by the ingest and API functions.

Every uploaded object ends in exactly one recorded state: `succeeded`, `failed` (with a reason) or
`skipped` (with a reason). The item is keyed by `result_id`, derived from bucket + key, so a lookup by
source object is a single GetItem and a newer version of the same key replaces the older result.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Status(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class Reason(BaseModel):
    """Why a result is not `succeeded`: a stable machine code and a human message (never a secret)."""

    code: str = Field(examples=["image_undecodable"])
    message: str = Field(examples=["the object is not an image Pillow can read: cannot identify image file"])


class Keypoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    x: float
    y: float
    confidence: float
    class_id: int = Field(description="the keypoint's slot in the model's skeleton")
    name: str = Field(description="the keypoint's label, e.g. `left_eye`")


class Prediction(BaseModel):
    """One detection in original-image pixels: box centre and size, class, confidence, keypoints."""

    model_config = ConfigDict(frozen=True)

    x: float
    y: float
    width: float
    height: float
    confidence: float
    class_name: str = Field(description="the detected class, e.g. `person`")
    class_id: int
    detection_id: str | None = None
    keypoints: tuple[Keypoint, ...] = ()


class ImageSize(BaseModel):
    width: int
    height: int


class ObjectRef(BaseModel):
    bucket: str
    key: str
    version_id: str | None = None


class SourceObject(BaseModel):
    bucket: str
    key: str = Field(description="the decoded object key")
    version_id: str | None = None
    etag: str | None = None
    size: int | None = Field(default=None, description="bytes")
    sequencer: str | None = Field(default=None, description="S3's event sequencer: orders events of one key")


class ResultSummary(BaseModel):
    """A result without its predictions (which can be large): what a listing returns."""

    result_id: str
    status: Status
    reason: Reason | None = None
    source: SourceObject
    model_id: str
    fingerprint: str | None = Field(
        default=None,
        description="digest of the model and the inference settings that produced the result "
        "(s3kp_core.fingerprint); absent on results recorded before fingerprints existed",
    )
    image: ImageSize | None = Field(default=None, description="original size after EXIF orientation")
    counts: dict[str, int] = Field(default_factory=dict, description="detections per class")
    detections: int = 0
    keypoints: int = Field(default=0, description="keypoints over all detections")
    timings_ms: dict[str, float] = Field(default_factory=dict)
    annotated: ObjectRef | None = None
    created_at: datetime
    updated_at: datetime


class ResultRecord(ResultSummary):
    """The whole result of one source object, as stored."""

    predictions: tuple[Prediction, ...] | None = Field(
        default=None, description="None when stored out of line (see predictions_ref)"
    )
    predictions_ref: ObjectRef | None = Field(
        default=None, description="S3 JSON document holding the predictions when the item would exceed 400 KB"
    )


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
