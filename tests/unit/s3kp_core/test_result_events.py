"""Result events: the detail built from a recorded result, its committed JSON Schema, the publisher."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
from botocore.exceptions import ClientError
from msgspec.structs import replace
from s3kp_core import errors
from s3kp_core.result_events import (
    DETAIL_TYPE,
    EVENT_SOURCE,
    ResultEventDetail,
    detail_json,
    detail_json_schema,
    result_event_detail,
)
from s3kp_core.result_events_eventbridge import EventBridgePublisher
from s3kp_core.results import (
    ImageSize,
    Keypoint,
    ObjectRef,
    Prediction,
    Reason,
    ResultRecord,
    SourceObject,
    Status,
    VideoSummary,
    result_id_for,
)

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "docs" / "schemas" / "keypoint-result-detail.schema.json"
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
SOURCE = SourceObject(
    bucket="uploads", key="incoming/party photo.jpg", version_id="v2", etag="e1", size=1234, sequencer="00AB"
)
FACE = Prediction(
    x=10,
    y=20,
    width=30,
    height=40,
    confidence=0.9,
    class_name="face",
    class_id=0,
    keypoints=(Keypoint(x=11, y=21, confidence=0.8, class_id=0, name="right_eye"),),
)


def succeeded(**changes: Any) -> ResultRecord:
    record = ResultRecord(
        result_id=result_id_for(SOURCE.bucket, SOURCE.key),
        status=Status.SUCCEEDED,
        source=SOURCE,
        model_id="faces/2",
        fingerprint="0123456789abcdef",
        image=ImageSize(width=800, height=600),
        predictions=(FACE, FACE),
        counts={"face": 2},
        detections=2,
        keypoints=2,
        timings_ms={"total": 12.5},
        annotated=ObjectRef(bucket="uploads", key="annotated/party photo.jpg"),
        created_at=T0,
        updated_at=T0,
    )
    return replace(record, **changes)


def committed_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


# --- the detail -----------------------------------------------------------------------------------


def test_a_succeeded_result_becomes_its_summary_with_locations_and_api_path() -> None:
    detail = json.loads(detail_json(result_event_detail(succeeded())))

    assert detail == {
        "schema_version": "1",
        "result_id": result_id_for("uploads", "incoming/party photo.jpg"),
        "status": "succeeded",
        "reason": None,
        "source": {"bucket": "uploads", "key": "incoming/party photo.jpg", "version_id": "v2", "etag": "e1",
                   "size": 1234},
        "model_id": "faces/2",
        "fingerprint": "0123456789abcdef",
        "detections": 2,
        "keypoints": 2,
        "counts": {"face": 2},
        "image": {"width": 800, "height": 600},
        "annotated": {"bucket": "uploads", "key": "annotated/party photo.jpg"},
        "predictions": None,
        "created_at": "2026-11-27T09:00:00Z",
        "updated_at": "2026-11-27T09:00:00Z",
        "api_path": f"/results/{result_id_for('uploads', 'incoming/party photo.jpg')}",
        "media_type": "image",
        "video": None,
    }  # fmt: skip


def test_a_video_result_tells_its_sampling_and_where_its_frames_are() -> None:
    video = VideoSummary(
        duration_seconds=12.5, fps_sampled=5.0, frames=63, width=1080, height=1920, segments=1,
        segments_done=1, frames_ref=ObjectRef(bucket="uploads", key="predictions/abc/run/frames.jsonl.gz"),
    )  # fmt: skip
    record = succeeded(media_type="video", video=video, image=None, predictions=None)
    detail = json.loads(detail_json(result_event_detail(record)))
    assert detail["media_type"] == "video"
    assert detail["video"] == {
        "duration_seconds": 12.5, "fps_sampled": 5.0, "frames": 63, "width": 1080, "height": 1920,
        "frames_document": {"bucket": "uploads", "key": "predictions/abc/run/frames.jsonl.gz"},
    }  # fmt: skip
    jsonschema.validate(detail, committed_schema())


def test_the_published_json_decodes_back_to_the_detail_under_its_own_constraints() -> None:
    detail = result_event_detail(succeeded())

    assert msgspec.json.decode(detail_json(detail), type=ResultEventDetail) == detail
    with pytest.raises(msgspec.ValidationError, match="result_id"):
        msgspec.json.decode(detail_json(detail).replace(detail.result_id, "x"), type=ResultEventDetail)


def test_the_detail_never_carries_predictions_timings_or_the_sequencer_but_points_at_spilled_ones() -> None:
    spilled = ObjectRef(bucket="uploads", key="predictions/abc/0011.json")
    text = detail_json(result_event_detail(succeeded(predictions=None, predictions_ref=spilled)))

    assert json.loads(text)["predictions"] == {"bucket": "uploads", "key": "predictions/abc/0011.json"}
    for absent in ("right_eye", "timings_ms", "00AB", "sequencer", "confidence"):
        assert absent not in text


def test_a_failed_result_carries_its_reason_and_no_image_or_annotated_copy() -> None:
    record = succeeded(
        status=Status.FAILED,
        reason=Reason(code=errors.IMAGE_UNDECODABLE, message="not an image"),
        image=None,
        predictions=None,
        counts={},
        detections=0,
        keypoints=0,
        annotated=None,
    )
    detail = json.loads(detail_json(result_event_detail(record)))

    assert detail["reason"] == {"code": "image_undecodable", "message": "not an image"}
    assert (detail["image"], detail["annotated"], detail["detections"]) == (None, None, 0)


def test_a_detail_over_the_entry_limit_drops_its_counts_but_keeps_the_totals() -> None:
    counts = {f"class-{index:06d}-{'x' * 20}": 1 for index in range(12_000)}
    text = detail_json(result_event_detail(succeeded(counts=counts, detections=12_000)))

    assert len(text.encode()) < 256 * 1024
    assert json.loads(text)["counts"] == {}
    assert json.loads(text)["detections"] == 12_000


# --- the schema -----------------------------------------------------------------------------------


def test_the_committed_json_schema_is_the_one_the_code_describes() -> None:
    assert committed_schema() == detail_json_schema(), (
        "docs/schemas/keypoint-result-detail.schema.json is out of date; regenerate it with\n"
        "  .venv/bin/python -c 'import json; from s3kp_core.result_events import detail_json_schema; "
        "print(json.dumps(detail_json_schema(), indent=2, ensure_ascii=False))' "
        "> docs/schemas/keypoint-result-detail.schema.json"
    )


@pytest.mark.parametrize(
    "record",
    [
        succeeded(),
        succeeded(status=Status.SKIPPED, reason=Reason(code="output_prefix", message="ours"), annotated=None),
        succeeded(fingerprint=None, source=SourceObject(bucket="b", key="k")),
    ],
    ids=["succeeded", "skipped", "minimal"],
)
def test_every_detail_validates_against_the_committed_schema(record: ResultRecord) -> None:
    jsonschema.validate(json.loads(detail_json(result_event_detail(record))), committed_schema())


def test_the_schema_rejects_what_a_consumer_must_not_receive() -> None:
    """Wrong values and missing fields. (An added field is allowed within a version, see the test below;
    that the detail never carries the predictions themselves is checked on what we publish, above.)"""
    detail = json.loads(detail_json(result_event_detail(succeeded())))
    without_status = {name: value for name, value in detail.items() if name != "status"}
    for broken in (
        without_status,
        {**detail, "status": "done"},
        {**detail, "result_id": "x"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, committed_schema())


# --- the publisher --------------------------------------------------------------------------------


class FakeEvents:
    """PutEvents answering from a script: a dict response or an exception per call."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[list[dict[str, str]]] = []

    def put_events(self, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append(Entries)
        answer = self.answers.pop(0) if self.answers else ACCEPTED
        if isinstance(answer, Exception):
            raise answer
        return answer


ACCEPTED = {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}
THROTTLED = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow"}]}


def publisher(client: FakeEvents, sleeps: list[float]) -> EventBridgePublisher:
    return EventBridgePublisher(client, "stack-results", max_attempts=3, sleep=sleeps.append)


def test_one_entry_goes_to_the_bus_with_source_detail_type_and_the_detail() -> None:
    client, sleeps = FakeEvents(), []
    publisher(client, sleeps).publish(result_event_detail(succeeded()))

    ((entry,),) = client.calls
    assert entry["Source"] == EVENT_SOURCE == "s3-keypoints"
    assert entry["DetailType"] == DETAIL_TYPE == "Keypoint Result"
    assert entry["EventBusName"] == "stack-results"
    assert json.loads(entry["Detail"])["status"] == "succeeded"
    assert sleeps == []


def test_a_failed_entry_is_retried_with_backoff_until_accepted() -> None:
    client, sleeps = FakeEvents(THROTTLED, THROTTLED, ACCEPTED), []
    publisher(client, sleeps).publish(result_event_detail(succeeded()))

    assert len(client.calls) == 3
    assert len(sleeps) == 2
    assert all(0 <= pause <= 0.2 for pause in sleeps)


def test_a_put_that_keeps_failing_raises_a_transient_error_naming_the_cause() -> None:
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutEvents")
    client, sleeps = FakeEvents(THROTTLED, denied, THROTTLED), []

    with pytest.raises(errors.TransientError) as raised:
        publisher(client, sleeps).publish(result_event_detail(succeeded()))

    assert raised.value.code == errors.EVENT_PUBLISH_FAILED
    assert "ThrottlingException" in raised.value.message
    assert len(client.calls) == 3


def test_the_schema_lets_a_consumer_accept_fields_added_within_a_version() -> None:
    """docs/events.md: fields may be added within a schema version; a consumer validating with the
    committed schema must not reject a detail that has one (at the root or in a nested object)."""
    detail = json.loads(detail_json(result_event_detail(succeeded())))
    detail["added_later"] = {"any": "value"}
    detail["source"]["added_later"] = 1
    jsonschema.validate(detail, committed_schema())
