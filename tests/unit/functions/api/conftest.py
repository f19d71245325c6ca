"""The API handler with its collaborators replaced by in-memory fakes (no AWS at all)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from s3kp_core.cursors import CursorCodec
from s3kp_core.results import (
    SUMMARY_FIELDS,
    ImageSize,
    Keypoint,
    ObjectRef,
    Prediction,
    Reason,
    ResultRecord,
    ResultSummary,
    SourceObject,
    Status,
    result_id_for,
    summarize,
)
from s3kp_core.results_query import FramePage, ListFilters, NoFramesError, Page
from s3kp_core.video_frames import FrameLine

from s3kp.local.apigw import http_api_event, http_response
from s3kp.local.lambda_runtime import LambdaContext

UNIT_ENV = {"RESULTS_TABLE": "results", "CURSOR_SECRET": "unit-test-cursor-secret", "CORS_ALLOW_ORIGIN": "*"}


def make_record(
    key: str,
    *,
    status: Status = Status.SUCCEEDED,
    bucket: str = "uploads",
    minutes: int = 0,
    classes: tuple[str, ...] = ("person",),
) -> ResultRecord:
    moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    predictions = (
        tuple(
            Prediction(
                x=10.5,
                y=20.25,
                width=30,
                height=40,
                confidence=0.875,
                class_name=name,
                class_id=0,
                keypoints=(Keypoint(x=1.5, y=2.5, confidence=0.5, class_id=0, name="nose"),),
            )
            for name in classes
        )
        if status is Status.SUCCEEDED
        else None
    )
    counts, detections, keypoints = summarize(predictions or ())
    result_id = result_id_for(bucket, key)
    return ResultRecord(
        result_id=result_id,
        status=status,
        reason=None
        if status is Status.SUCCEEDED
        else Reason(code="image_undecodable", message="not an image"),
        source=SourceObject(bucket=bucket, key=key, size=1234),
        model_id="pose/1",
        image=ImageSize(width=640, height=480) if status is Status.SUCCEEDED else None,
        predictions=predictions,
        counts=counts,
        detections=detections,
        keypoints=keypoints,
        timings_ms={"inference": 12.5},
        annotated=ObjectRef(bucket=bucket, key=f"annotated/{result_id}.jpg")
        if status is Status.SUCCEEDED
        else None,
        created_at=moment,
        updated_at=moment,
    )


@dataclass
class FakeReader:
    """ResultsReader over a list of records; records what listings were asked for."""

    records: list[ResultRecord] = field(default_factory=list)
    listings: list[tuple[ListFilters, int, str | None]] = field(default_factory=list)
    frame_lines: dict[str, list[FrameLine]] = field(default_factory=dict)  # by result id: a video's frames
    codec: CursorCodec = field(default_factory=lambda: CursorCodec(b"fake-reader-cursor-key"))

    def get(self, result_id: str) -> ResultRecord | None:
        return next((r for r in self.records if r.result_id == result_id), None)

    def get_by_source(self, bucket: str, key: str) -> ResultRecord | None:
        return next((r for r in self.records if (r.source.bucket, r.source.key) == (bucket, key)), None)

    def list_results(self, filters: ListFilters, limit: int, cursor: str | None) -> Page:
        self.listings.append((filters, limit, cursor))
        if cursor is not None:
            self.codec.decode(cursor, filters.fingerprint())
        items = [ResultSummary(**{n: getattr(r, n) for n in SUMMARY_FIELDS}) for r in self.records[:limit]]
        return Page(items=items, next_cursor=self.codec.encode("next", filters.fingerprint()))

    def frames(self, result_id: str, offset: int, limit: int) -> FramePage | None:
        record = self.get(result_id)
        if record is None:
            return None
        if result_id not in self.frame_lines:
            raise NoFramesError(f"result {result_id} is an image: it has no frames")
        lines = self.frame_lines[result_id]
        page = lines[offset : offset + limit]
        next_offset = offset + limit if offset + limit < len(lines) else None
        return FramePage(items=page, next_offset=next_offset, frames=len(lines))


class FakePresigner:
    def url(self, ref: ObjectRef) -> str:
        return f"https://presigned.example/{ref.bucket}/{ref.key}?X-Amz-Expires=300"


@dataclass
class ApiCall:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class UnitApi:
    module: ModuleType
    reader: FakeReader

    def get(self, path: str, query: str = "", headers: dict[str, str] | None = None) -> ApiCall:
        event = http_api_event("GET", path, query, headers or {}, b"")
        status, header_list, body = http_response(self.module.lambda_handler(event, LambdaContext()))
        return ApiCall(status, {name.lower(): value for name, value in header_list}, body)


def import_api_handler() -> ModuleType:
    """A fresh import: settings are read at import time, as at a cold start."""
    import api_dependencies

    api_dependencies.reset()
    sys.modules.pop("api_handler", None)
    return importlib.import_module("api_handler")


@pytest.fixture
def unit_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[UnitApi]:
    for name, value in UNIT_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CURSOR_SECRET_ARN", raising=False)
    module = import_api_handler()
    import api_dependencies

    reader = FakeReader()
    module.app.dependency_overrides[api_dependencies.results_reader] = lambda: reader
    module.app.dependency_overrides[api_dependencies.presigner] = FakePresigner
    yield UnitApi(module, reader)
    module.app.dependency_overrides.clear()


@pytest.fixture
def record_factory() -> Any:
    return make_record
