"""The result of processing one source object: one definition shared by the ingest and API functions.

Every uploaded object ends in exactly one recorded state: `succeeded`, `failed` (with a reason) or
`skipped` (with a reason). The item is keyed by `result_id`, derived from bucket + key, so a lookup by
source object is a single GetItem and a newer version of the same key replaces the older result.

The types are frozen standard-library dataclasses, not pydantic models: the ingest function never pays
pydantic's import (see docs/ingest-cold-start.md). Nothing here validates: values come from our own code,
and the boundaries that read foreign data validate into these types (`results_schema.from_item` with
msgspec; the API with pydantic, which reads the `description`/`examples` in each field's metadata into
its OpenAPI schema).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


def doc(description: str | None = None, **extra: Any) -> dict[str, Any]:
    """A field's documentation as dataclass metadata (pydantic reads `description` and `examples`)."""
    return {"description": description, **extra} if description is not None else dict(extra)


class Status(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, kw_only=True, slots=True)
class Reason:
    """Why a result is not `succeeded`: a stable machine code and a human message (never a secret)."""

    code: str = field(metadata=doc(examples=["image_undecodable"]))
    message: str = field(
        metadata=doc(examples=["the object is not an image Pillow can read: cannot identify image file"])
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Keypoint:
    x: float
    y: float
    confidence: float
    class_id: int = field(metadata=doc("the keypoint's slot in the model's skeleton"))
    name: str = field(metadata=doc("the keypoint's label, e.g. `left_eye`"))


@dataclass(frozen=True, kw_only=True, slots=True)
class Prediction:
    """One detection in original-image pixels: box centre and size, class, confidence, keypoints."""

    x: float
    y: float
    width: float
    height: float
    confidence: float
    class_name: str = field(metadata=doc("the detected class, e.g. `person`"))
    class_id: int
    detection_id: str | None = None
    keypoints: tuple[Keypoint, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageSize:
    width: int
    height: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ObjectRef:
    bucket: str
    key: str
    version_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceObject:
    bucket: str
    key: str = field(metadata=doc("the decoded object key"))
    version_id: str | None = None
    etag: str | None = None
    size: int | None = field(default=None, metadata=doc("bytes"))
    sequencer: str | None = field(
        default=None, metadata=doc("S3's event sequencer: orders events of one key")
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class ResultSummary:
    """A result without its predictions (which can be large): what a listing returns."""

    result_id: str
    status: Status
    reason: Reason | None = None
    source: SourceObject
    model_id: str
    fingerprint: str | None = field(
        default=None,
        metadata=doc(
            "digest of the model and the inference settings that produced the result "
            "(s3kp_core.fingerprint); absent on results recorded before fingerprints existed"
        ),
    )
    image: ImageSize | None = field(default=None, metadata=doc("original size after EXIF orientation"))
    counts: dict[str, int] = field(default_factory=dict, metadata=doc("detections per class"))
    detections: int = 0
    keypoints: int = field(default=0, metadata=doc("keypoints over all detections"))
    timings_ms: dict[str, float] = field(default_factory=dict)
    annotated: ObjectRef | None = None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class ResultRecord(ResultSummary):
    """The whole result of one source object, as stored."""

    predictions: tuple[Prediction, ...] | None = field(
        default=None, metadata=doc("None when stored out of line (see predictions_ref)")
    )
    predictions_ref: ObjectRef | None = field(
        default=None,
        metadata=doc("S3 JSON document holding the predictions when the item would exceed 400 KB"),
    )


SUMMARY_FIELDS: tuple[str, ...] = tuple(ResultSummary.__dataclass_fields__)
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
