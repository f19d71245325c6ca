"""The result item's DynamoDB layout: keys, index attributes and lossless number conversion."""

from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest
from s3kp_core.results import (
    Keypoint,
    ObjectRef,
    Prediction,
    Reason,
    ResultRecord,
    SourceObject,
    Status,
    result_id_for,
    summarize,
)
from s3kp_core.results_schema import LIST_SHARDS, from_item, to_item


def _record(**overrides):
    predictions = (
        Prediction(
            x=10.5,
            y=20.25,
            width=30.0,
            height=40.0,
            confidence=0.9,
            class_name="face",
            class_id=0,
            keypoints=(Keypoint(x=1.1, y=2.2, confidence=0.8, class_id=0, name="right_eye"),),
        ),
    )
    counts, detections, keypoints = summarize(predictions)
    fields = dict(
        result_id=result_id_for("bucket", "incoming/cat 1.jpg"),
        status=Status.SUCCEEDED,
        source=SourceObject(bucket="bucket", key="incoming/cat 1.jpg", etag="abc", size=123),
        model_id="faces/1",
        predictions=predictions,
        counts=counts,
        detections=detections,
        keypoints=keypoints,
        timings_ms={"total": 12.5},
        created_at=datetime(2026, 11, 27, 9, 0, 0, 123000, tzinfo=UTC),
        updated_at=datetime(2026, 11, 27, 9, 0, 1, tzinfo=UTC),
    )
    fields.update(overrides)
    return ResultRecord(**fields)


def test_result_id_is_stable_and_distinguishes_buckets_and_keys():
    assert result_id_for("b", "k") == result_id_for("b", "k")
    assert result_id_for("b", "k") != result_id_for("b2", "k")
    assert len(result_id_for("b", "k")) == 32


def test_item_round_trips_with_decimals_and_no_floats():
    record = _record()
    item = to_item(record)

    def walk(value):
        assert not isinstance(value, float)
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        if isinstance(value, list):
            for v in value:
                walk(v)

    walk(item)
    assert item["predictions"][0]["x"] == Decimal("10.5")
    assert from_item(item) == record


def test_index_attributes_place_the_item_in_its_shard_and_time_order():
    record = _record()
    item = to_item(record)
    shard = int(item["list_pk"].split("#")[1])
    assert 0 <= shard < LIST_SHARDS
    assert item["status_pk"] == f"succeeded#{shard}"
    assert item["list_sk"] == f"2026-11-27T09:00:01.000Z#{record.result_id}"


# An item as the pydantic-era code wrote it (to_item of the record below, before the result types became
# dataclasses): items already in a table must keep reading back as the same record.
STORED_BEFORE_DATACLASSES = {
    "result_id": "5fd2903a1ae2241a3077fa169fff5a16",
    "status": "succeeded",
    "reason": {"code": "c", "message": "m"},
    "source": {"bucket": "bucket", "key": "incoming/cat 1.jpg", "etag": "abc", "size": 123},
    "model_id": "faces/1",
    "fingerprint": "ffffffffffffffff",
    "counts": {"face": 1},
    "detections": 1,
    "keypoints": 1,
    "timings_ms": {"total": Decimal("12.5")},
    "annotated": {"bucket": "bucket", "key": "annotated/cat 1.jpg"},
    "created_at": "2026-11-27T09:00:00.123000Z",
    "updated_at": "2026-11-27T09:00:01Z",
    "predictions": [
        {
            "x": Decimal("10.5"), "y": Decimal("20.25"), "width": Decimal("30.0"), "height": Decimal("40.0"),
            "confidence": Decimal("0.9"), "class_name": "face", "class_id": 0,
            "keypoints": [
                {"x": Decimal("1.1"), "y": Decimal("2.2"), "confidence": Decimal("0.8"), "class_id": 0,
                 "name": "right_eye"}
            ],
        }
    ],
    "list_pk": "all#2",
    "status_pk": "succeeded#2",
    "list_sk": "2026-11-27T09:00:01.000Z#5fd2903a1ae2241a3077fa169fff5a16",
}  # fmt: skip


def test_items_written_before_the_dataclasses_read_back_the_same_and_are_written_the_same():
    record = _record(
        reason=Reason(code="c", message="m"),
        annotated=ObjectRef(bucket="bucket", key="annotated/cat 1.jpg"),
        fingerprint="f" * 16,
    )

    assert from_item(STORED_BEFORE_DATACLASSES) == record
    assert to_item(record) == STORED_BEFORE_DATACLASSES


def test_an_item_read_back_gets_typed_values_whole_numbers_included():
    record = from_item({**STORED_BEFORE_DATACLASSES, "timings_ms": {"total": Decimal("12")}})

    assert record.status is Status.SUCCEEDED
    assert isinstance(record.timings_ms["total"], float)
    assert isinstance(record.created_at, datetime)
    assert record.created_at.tzinfo is not None
    assert isinstance(record.predictions, tuple)
    assert isinstance(record.predictions[0].keypoints[0], Keypoint)


def test_a_malformed_item_is_refused_naming_the_field():
    broken = {**STORED_BEFORE_DATACLASSES, "source": {"bucket": "bucket", "key": 7}}
    with pytest.raises(msgspec.ValidationError, match=r"\$\.source\.key"):
        from_item(broken)
    with pytest.raises(msgspec.ValidationError, match="status"):
        from_item({**STORED_BEFORE_DATACLASSES, "status": "done"})
