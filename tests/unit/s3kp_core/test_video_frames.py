"""A video's frames document: parts joined by concatenation, read a page at a time, also by the API."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from s3kp_core.cursors import CursorCodec
from s3kp_core.results import (
    Keypoint,
    ObjectRef,
    Prediction,
    ResultRecord,
    SourceObject,
    Status,
    VideoSummary,
)
from s3kp_core.results_query import NoFramesError, PredictionsUnavailableError, ResultsQuery
from s3kp_core.results_schema import to_item
from s3kp_core.video_frames import FrameLine, encode_part, join_parts, read_frames

PERSON = Prediction(
    x=10.0, y=20.0, width=5.0, height=8.0, confidence=0.9, class_name="person", class_id=0,
    keypoints=(Keypoint(x=11.0, y=19.0, confidence=0.8, class_id=0, name="nose"),),
)  # fmt: skip
FRAMES_REF = ObjectRef(bucket="uploads", key="predictions/r/run/frames.jsonl.gz")


def line(n: int) -> FrameLine:
    return FrameLine(frame=n, time_seconds=n / 5, predictions=(PERSON,) if n % 2 else ())


def document(frames: int = 12, per_part: int = 5) -> bytes:
    parts = [
        encode_part(line(n) for n in range(start, min(frames, start + per_part)))
        for start in range(0, frames, per_part)
    ]
    return join_parts(parts)


def test_parts_joined_end_to_end_read_as_one_document_in_order() -> None:
    items, next_offset = read_frames(io.BytesIO(document()), offset=0, limit=100)
    assert [item.frame for item in items] == list(range(12))
    assert items[1].predictions == (PERSON,)
    assert next_offset is None


def test_pages_follow_next_offset_to_the_last_frame() -> None:
    data = document()
    seen, offset = [], 0
    while offset is not None:
        items, offset = read_frames(io.BytesIO(data), offset=offset, limit=5)
        seen += [item.frame for item in items]
    assert seen == list(range(12))
    assert read_frames(io.BytesIO(data), offset=10, limit=2) == ([line(10), line(11)], None)
    assert read_frames(io.BytesIO(data), offset=50, limit=2) == ([], None)


class Table:
    def __init__(self, *records: ResultRecord) -> None:
        self.items = [to_item(record) for record in records]

    def get_item(self, result_id: str) -> dict[str, Any] | None:
        return next((item for item in self.items if item["result_id"] == result_id), None)

    def query(self, request: dict[str, Any]) -> Any:
        raise NotImplementedError


class Documents:
    def __init__(self, data: bytes | None) -> None:
        self.data = data

    def read_json(self, ref: ObjectRef) -> Any:
        raise NotImplementedError

    def open(self, ref: ObjectRef) -> io.BytesIO:
        if self.data is None:
            raise FileNotFoundError(ref.key)
        return io.BytesIO(self.data)


def video_record(result_id: str, status: Status, frames_ref: ObjectRef | None) -> ResultRecord:
    moment = datetime(2026, 11, 27, tzinfo=UTC)
    video = VideoSummary(
        duration_seconds=2.4, fps_sampled=5, frames=12, width=64, height=48, frames_ref=frames_ref
    )
    return ResultRecord(
        result_id=result_id,
        status=status,
        source=SourceObject(bucket="uploads", key=f"incoming/{result_id}.mp4"),
        model_id="pose/1",
        media_type="video",
        video=video,
        created_at=moment,
        updated_at=moment,
    )


def query(*records: ResultRecord, data: bytes | None = b"") -> ResultsQuery:
    return ResultsQuery(Table(*records), Documents(data), CursorCodec(b"k" * 16), "results")


def test_the_reader_pages_a_succeeded_videos_frames() -> None:
    record = video_record("a" * 32, Status.SUCCEEDED, FRAMES_REF)
    page = query(record, data=document()).frames(record.result_id, 10, 5)
    assert page is not None
    assert ([item.frame for item in page.items], page.next_offset, page.frames) == ([10, 11], None, 12)
    assert query().frames("b" * 32, 0, 5) is None


def test_images_and_videos_without_frames_have_no_frames_and_an_unreadable_document_is_unavailable() -> None:
    processing = video_record("c" * 32, Status.PROCESSING, None)
    with pytest.raises(NoFramesError, match="has no frames \\(status processing\\)"):
        query(processing).frames(processing.result_id, 0, 5)
    image = ResultRecord(
        result_id="d" * 32,
        status=Status.SUCCEEDED,
        source=SourceObject(bucket="uploads", key="incoming/x.jpg"),
        model_id="pose/1",
        created_at=processing.created_at,
        updated_at=processing.updated_at,
    )
    with pytest.raises(NoFramesError, match="is an image"):
        query(image).frames(image.result_id, 0, 5)
    succeeded = video_record("e" * 32, Status.SUCCEEDED, FRAMES_REF)
    with pytest.raises(PredictionsUnavailableError):
        query(succeeded, data=None).frames(succeeded.result_id, 0, 5)
