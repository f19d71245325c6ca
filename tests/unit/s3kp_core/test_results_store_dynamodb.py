"""The results store: ordering of S3 events per key, the 400 KB item limit, created_at bookkeeping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from msgspec.structs import replace
from s3kp_core.errors import OUTPUT_WRITE_FAILED, OUTPUT_WRITE_REFUSED, RESULT_TOO_LARGE, TransientError
from s3kp_core.ordering import event_order
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
from s3kp_core.results_schema import to_item
from s3kp_core.results_store_dynamodb import (
    DYNAMODB_ITEM_LIMIT,
    MAX_REASON_CHARS,
    DynamoDBResultsStore,
    item_size,
)

BUCKET = "uploads"
KEY = "incoming/crowd.jpg"
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def prediction(index: int, keypoints: int = 17) -> Prediction:
    return Prediction(
        x=100.5 + index,
        y=200.25,
        width=50.0,
        height=80.0,
        confidence=0.87654321,
        class_name="person",
        class_id=0,
        detection_id=f"det-{index:05d}-aaaaaaaa-bbbb-cccc-dddd",
        keypoints=tuple(
            Keypoint(x=101.123 + k, y=202.456 + k, confidence=0.9123, class_id=k, name=f"keypoint_{k}")
            for k in range(keypoints)
        ),
    )


def record(predictions: tuple[Prediction, ...] = (), *, etag: str = "e1", status: Status = Status.SUCCEEDED):
    counts, detections, keypoints = summarize(predictions)
    return ResultRecord(
        result_id=result_id_for(BUCKET, KEY),
        status=status,
        source=SourceObject(bucket=BUCKET, key=KEY, etag=etag, size=1000),
        model_id="people/1",
        predictions=predictions,
        counts=counts,
        detections=detections,
        keypoints=keypoints,
        created_at=T0,
        updated_at=T0,
    )


@pytest.fixture
def aws(monkeypatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        dynamodb = boto3.resource("dynamodb")
        table = dynamodb.create_table(
            TableName="results",
            KeySchema=[{"AttributeName": "result_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "result_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        yield {"table": table, "s3": s3}


def store_for(aws: dict[str, Any], **options: Any) -> DynamoDBResultsStore:
    return DynamoDBResultsStore(aws["table"], aws["s3"], predictions_prefix="predictions/", **options)


# --- event order ----------------------------------------------------------------------------------


def test_sequencers_of_different_lengths_compare_by_value() -> None:
    """GIVEN a shorter sequencer that is numerically larger THEN it orders after the longer, smaller one.

    A plain string comparison gets this wrong: "100" < "FF".
    """
    older, newer = "FF", "100"
    assert newer < older  # the trap
    assert event_order(older, None, T0) < event_order(newer, None, T0)


def test_sequencer_case_does_not_matter() -> None:
    assert event_order("00abc", None, T0) == event_order("00ABC", None, T0)


def test_without_a_sequencer_the_event_time_orders_events() -> None:
    assert event_order(None, T0, T0) < event_order(None, T0 + timedelta(milliseconds=1), T0)


def test_without_sequencer_or_time_the_fallback_moment_is_used() -> None:
    assert event_order(None, None, T0) == event_order(None, T0, T0 + timedelta(days=1))


# --- conditional writes ---------------------------------------------------------------------------


def test_a_stale_event_never_overwrites_a_newer_result(aws) -> None:
    store = store_for(aws)
    assert store.save(record(etag="new"), order=event_order("0055AED6DCD90281E6", None, T0))

    written = store.save(record(etag="old"), order=event_order("0055AED6DCD90281E5", None, T0))

    assert written is False
    item = aws["table"].get_item(Key={"result_id": result_id_for(BUCKET, KEY)})["Item"]
    assert item["source"]["etag"] == "new"


def test_a_newer_event_replaces_the_older_result(aws) -> None:
    store = store_for(aws)
    store.save(record(etag="old"), order=event_order(None, T0, T0))
    assert store.save(record(etag="new"), order=event_order(None, T0 + timedelta(seconds=1), T0))
    state = store.stored_state(result_id_for(BUCKET, KEY))
    assert state is not None
    assert state.event_order == event_order(None, T0 + timedelta(seconds=1), T0)


def test_a_newer_result_removes_the_drawing_only_the_replaced_result_pointed_at(aws) -> None:
    """Each event has its own drawing: once a newer result is stored, the older drawing is unreachable and
    is deleted; a stale write deletes nothing; the same event rewriting its result keeps its drawing."""
    store = store_for(aws)

    def drawn(name: str, etag: str) -> ResultRecord:
        aws["s3"].put_object(Bucket=BUCKET, Key=f"annotated/{name}", Body=b"jpeg")
        return replace(record(etag=etag), annotated=ObjectRef(bucket=BUCKET, key=f"annotated/{name}"))

    def drawings() -> list[str]:
        listed = aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="annotated/").get("Contents", [])
        return sorted(item["Key"] for item in listed)

    assert store.save(drawn("crowd.jpg.old.jpg", "old"), order=event_order("00A1", None, T0))
    assert store.save(drawn("crowd.jpg.new.jpg", "new"), order=event_order("00A2", None, T0))
    assert drawings() == ["annotated/crowd.jpg.new.jpg"]

    assert not store.save(drawn("crowd.jpg.stale.jpg", "stale"), order=event_order("00A0", None, T0))
    assert "annotated/crowd.jpg.new.jpg" in drawings()
    assert store.save(drawn("crowd.jpg.new.jpg", "new"), order=event_order("00A2", None, T0))
    assert "annotated/crowd.jpg.new.jpg" in drawings()


def test_the_same_event_may_rewrite_its_result(aws) -> None:
    """A redelivery (e.g. a DLQ redrive after a recorded failure) must be able to record success."""
    store = store_for(aws)
    order = event_order("00AA", None, T0)
    store.save(record(status=Status.FAILED), order=order)
    assert store.save(record(status=Status.SUCCEEDED), order=order)


def test_stored_state_reports_creation_time_and_none_for_unknown_ids(aws) -> None:
    store = store_for(aws)
    assert store.stored_state("0" * 32) is None
    store.save(record(), order="t#x")
    state = store.stored_state(result_id_for(BUCKET, KEY))
    assert state is not None
    assert state.created_at == T0


# --- item size ------------------------------------------------------------------------------------


def test_item_size_counts_names_and_utf8_values() -> None:
    assert item_size({"ab": "été"}) == 2 + 5
    assert item_size({"n": 12345}) == 1 + 4  # 5 significant digits -> 3 + 1 bytes
    assert item_size({"m": {"k": "v"}, "l": ["x", True]}) == (1 + 3 + 1 + 1 + 1) + (1 + 3 + 2 + 2)


def test_a_small_result_keeps_its_predictions_inline(aws) -> None:
    store = store_for(aws)
    store.save(record((prediction(0),)), order="t#1")
    item = aws["table"].get_item(Key={"result_id": result_id_for(BUCKET, KEY)})["Item"]
    assert len(item["predictions"]) == 1
    assert "predictions_ref" not in item


def test_an_oversized_result_moves_its_predictions_to_s3(aws) -> None:
    """GIVEN 500 people x 17 keypoints (well over 400 KB as an item) WHEN saved THEN the item holds a
    pointer and the summary, and the S3 document holds every prediction."""
    predictions = tuple(prediction(i) for i in range(500))
    assert item_size(to_item(record(predictions))) > DYNAMODB_ITEM_LIMIT
    store = store_for(aws)

    assert store.save(record(predictions), order="t#1")

    item = aws["table"].get_item(Key={"result_id": result_id_for(BUCKET, KEY)})["Item"]
    assert "predictions" not in item
    assert item["detections"] == 500
    assert item["keypoints"] == 500 * 17
    assert item["counts"] == {"person": 500}
    assert item_size(item) < DYNAMODB_ITEM_LIMIT
    ref = item["predictions_ref"]
    assert ref["bucket"] == BUCKET
    assert ref["key"].startswith(f"predictions/{result_id_for(BUCKET, KEY)}/")
    document = json.loads(aws["s3"].get_object(Bucket=ref["bucket"], Key=ref["key"])["Body"].read())
    assert len(document["predictions"]) == 500
    assert document["predictions"][499]["keypoints"][16]["name"] == "keypoint_16"


def test_the_overflow_threshold_is_the_configured_budget(aws) -> None:
    store = store_for(aws, item_budget=2_000)
    store.save(record(tuple(prediction(i) for i in range(3))), order="t#1")
    item = aws["table"].get_item(Key={"result_id": result_id_for(BUCKET, KEY)})["Item"]
    assert "predictions_ref" in item


def test_a_stale_oversized_write_leaves_no_orphan_document(aws) -> None:
    store = store_for(aws, item_budget=2_000)
    store.save(record((prediction(0),)), order="t#2")

    assert store.save(record(tuple(prediction(i) for i in range(3)), etag="old"), order="t#1") is False

    listed = aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="predictions/")
    assert listed.get("KeyCount", 0) == 0


def test_predictions_go_to_the_configured_bucket(aws) -> None:
    aws["s3"].create_bucket(Bucket="outputs")
    store = store_for(aws, item_budget=2_000, predictions_bucket="outputs")
    store.save(record(tuple(prediction(i) for i in range(3))), order="t#1")
    assert aws["s3"].list_objects_v2(Bucket="outputs", Prefix="predictions/")["KeyCount"] == 1


def test_a_predictions_document_s3_refuses_is_recorded_as_a_failure_instead_of_retried(aws) -> None:
    """GIVEN the predictions bucket refuses the document with a 4xx (here: it does not exist) THEN the
    result is recorded `failed` with `output_write_refused` and without predictions, at once."""
    store = store_for(aws, item_budget=2_000, predictions_bucket="no-such-bucket")

    assert store.save(record(tuple(prediction(i) for i in range(3))), order="t#1") is True

    item = aws["table"].get_item(Key={"result_id": result_id_for(BUCKET, KEY)})["Item"]
    assert item["status"] == "failed"
    assert item["reason"]["code"] == OUTPUT_WRITE_REFUSED
    assert "NoSuchBucket (HTTP 404)" in item["reason"]["message"]
    assert "s3://no-such-bucket/predictions/" in item["reason"]["message"]
    assert "predictions" not in item or item["predictions"] is None
    assert "predictions_ref" not in item or item["predictions_ref"] is None


def test_a_predictions_document_that_fails_for_a_passing_reason_is_retried(aws) -> None:
    class SlowS3:
        def put_object(self, **_: Any) -> None:
            error = {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}
            raise ClientError(error, "PutObject")

    store = DynamoDBResultsStore(aws["table"], SlowS3(), predictions_prefix="predictions/", item_budget=2_000)

    with pytest.raises(TransientError) as raised:
        store.save(record(tuple(prediction(i) for i in range(3))), order="t#1")

    assert raised.value.code == OUTPUT_WRITE_FAILED
    assert "Item" not in aws["table"].get_item(Key={"result_id": result_id_for(BUCKET, KEY)})


def test_a_very_long_reason_message_is_cut_and_the_failure_recorded(aws) -> None:
    """GIVEN a failure whose message is 500 KB (say, an upstream error body) WHEN saved THEN the object
    still gets its `failed` state, with the message cut to MAX_REASON_CHARS."""
    failed = replace(
        record(status=Status.FAILED),
        reason=Reason(code="inference_rejected", message="upstream said: " + "x" * 500_000),
    )

    assert store_for(aws).save(failed, order="t#1")

    item = aws["table"].get_item(Key={"result_id": result_id_for(BUCKET, KEY)})["Item"]
    assert item["status"] == "failed"
    assert item["reason"]["code"] == "inference_rejected"
    assert item["reason"]["message"].startswith("upstream said: xxx")
    assert len(item["reason"]["message"]) == MAX_REASON_CHARS
    assert item["reason"]["message"].endswith("…")


def test_a_short_reason_message_is_kept_whole(aws) -> None:
    failed = replace(
        record(status=Status.FAILED), reason=Reason(code="image_undecodable", message="not an image")
    )
    store_for(aws).save(failed, order="t#1")
    item = aws["table"].get_item(Key={"result_id": result_id_for(BUCKET, KEY)})["Item"]
    assert item["reason"]["message"] == "not an image"


def test_a_result_too_large_even_without_predictions_is_recorded_as_failed(aws) -> None:
    """GIVEN a result whose `counts` map alone is over 400 KB (20,000 distinct class names)
    WHEN saved THEN it is recorded as `failed` / `result_too_large` naming the totals, and the predictions
    document written on the way is not left behind."""
    many_classes = tuple(
        replace(prediction(i, keypoints=0), class_name=f"class-{i:05d}-" + "n" * 12) for i in range(20_000)
    )
    huge = record(many_classes)
    assert item_size({"counts": huge.counts}) > DYNAMODB_ITEM_LIMIT

    assert store_for(aws).save(huge, order="t#1")

    item = aws["table"].get_item(Key={"result_id": result_id_for(BUCKET, KEY)})["Item"]
    assert item["status"] == "failed"
    assert item["reason"]["code"] == RESULT_TOO_LARGE
    assert "20000 classes, 20000 detections" in item["reason"]["message"]
    assert item["counts"] == {}
    assert "predictions" not in item
    assert "predictions_ref" not in item
    assert aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="predictions/").get("KeyCount", 0) == 0


def test_a_spilled_result_over_a_tiny_budget_but_under_400_kb_stays_succeeded(aws) -> None:
    """The budget decides when predictions move out; only DynamoDB's own limit makes a result fail."""
    store = store_for(aws, item_budget=300)

    assert store.save(record(tuple(prediction(i) for i in range(3))), order="t#1")

    item = aws["table"].get_item(Key={"result_id": result_id_for(BUCKET, KEY)})["Item"]
    assert item_size(item) > 300
    assert (item["status"], "predictions_ref" in item) == ("succeeded", True)


# --- which writes owe a result event --------------------------------------------------------------


def test_the_first_write_of_a_result_owes_its_event_and_settling_clears_the_marker(aws) -> None:
    store = store_for(aws)
    order = event_order("00AA", None, T0)

    write = store.write(record(), order=order, track_event=True)

    assert write.written
    assert write.event_owed
    key = {"result_id": result_id_for(BUCKET, KEY)}
    assert "event_pending" in aws["table"].get_item(Key=key)["Item"]
    store.settle(write)
    assert "event_pending" not in aws["table"].get_item(Key=key)["Item"]


def test_a_redelivery_that_changes_nothing_owes_no_event(aws) -> None:
    store = store_for(aws)
    order = event_order("00AA", None, T0)
    store.settle(store.write(record(), order=order, track_event=True))

    again = store.write(record(), order=order, track_event=True)

    assert again.written
    assert not again.event_owed
    assert "event_pending" not in aws["table"].get_item(Key={"result_id": result_id_for(BUCKET, KEY)})["Item"]


def test_an_event_not_yet_published_is_still_owed_by_the_next_delivery(aws) -> None:
    """GIVEN a write whose event never went out (PutEvents kept failing, or the Lambda died) WHEN the
    message is redelivered and writes the very same state THEN the event is owed again."""
    store = store_for(aws)
    order = event_order("00AA", None, T0)
    store.write(record(), order=order, track_event=True)  # not settled

    assert store.write(record(), order=order, track_event=True).event_owed


def test_failed_then_succeeded_owes_a_second_event(aws) -> None:
    store = store_for(aws)
    order = event_order("00AA", None, T0)
    store.settle(store.write(record(status=Status.FAILED), order=order, track_event=True))

    assert store.write(record(status=Status.SUCCEEDED), order=order, track_event=True).event_owed


def test_a_result_of_another_fingerprint_owes_an_event(aws) -> None:
    store = store_for(aws)
    order = event_order("00AA", None, T0)
    store.settle(store.write(replace(record(), fingerprint="old"), order=order, track_event=True))

    assert store.write(replace(record(), fingerprint="new"), order=order, track_event=True).event_owed


def test_a_stale_write_owes_nothing_and_settling_an_outdated_write_leaves_the_newer_marker(aws) -> None:
    store = store_for(aws)
    older = store.write(record(etag="old"), order=event_order("00AA", None, T0), track_event=True)
    newer = store.write(record(etag="new"), order=event_order("00AB", None, T0), track_event=True)

    stale = store.write(record(etag="old"), order=event_order("00AA", None, T0), track_event=True)
    store.settle(older)

    assert newer.event_owed
    assert not stale.written
    assert not stale.event_owed
    assert "event_pending" in aws["table"].get_item(Key={"result_id": result_id_for(BUCKET, KEY)})["Item"]


def test_a_spilled_result_is_returned_as_stored_so_its_event_can_point_at_the_document(aws) -> None:
    store = store_for(aws, item_budget=2_000)
    write = store.write(record(tuple(prediction(i) for i in range(20))), order="t#x", track_event=True)

    assert write.record.predictions is None
    assert write.record.predictions_ref is not None
    assert write.record.predictions_ref.key.startswith("predictions/")
