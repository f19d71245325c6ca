"""Reading S3 notifications: AWS's shape, moto's shape, SQS-wrapped, test events, odd keys."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote_plus

import jmespath
import pytest
from s3_events import (
    IDEMPOTENCY_KEY_JMESPATH,
    REPLAY_CONFIGURATION_ID,
    MalformedNotification,
    decode_key,
    parse_json_notification,
    parse_notification,
    work_unit,
)
from s3kp_core.processing import ObjectEvent

EVENTS = Path(__file__).resolve().parents[4] / "events"


def moto_record(key: str, *, event_name: str = "ObjectCreated:Put", etag: str = "abc123") -> dict:
    """A record as moto's server sends it: no sequencer, userIdentity, requestParameters or versionId."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-27T09:00:00.123Z",
        "eventName": event_name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "ingest",
            "bucket": {"name": "uploads", "arn": "arn:aws:s3:::uploads"},
            "object": {"key": quote_plus(key), "size": 2048, "eTag": etag},
        },
    }


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("incoming/cat+1.jpg", "incoming/cat 1.jpg"),
        ("incoming/a%2Bb.jpg", "incoming/a+b.jpg"),
        ("incoming%2Fnested%2Fdog.png", "incoming/nested/dog.png"),
        ("incoming/%C3%A9t%C3%A9+%F0%9F%93%B7.jpg", "incoming/été 📷.jpg"),
        ("incoming/100%25+real.jpg", "incoming/100% real.jpg"),
    ],
)
def test_keys_are_url_decoded_like_s3_encodes_them(encoded: str, decoded: str) -> None:
    assert decode_key(encoded) == decoded


def test_a_1024_byte_unicode_key_round_trips() -> None:
    """GIVEN the longest key S3 allows, made of multi-byte characters and spaces."""
    key = "incoming/" + ("é " * 338)[: 1024 - 9 - 1]
    assert len(key.encode()) <= 1024
    notification = parse_notification({"Records": [moto_record(key)]})
    assert notification.objects[0].source.key == key


def test_aws_put_event_reads_every_field() -> None:
    """GIVEN the AWS-shaped direct S3 event from events/ WHEN parsed THEN all identity fields are there."""
    notification = parse_notification(json.loads((EVENTS / "s3-put.json").read_text()))

    (created,) = notification.objects
    assert created.source.bucket == "s3kp-uploads"
    assert created.source.key == "incoming/team photo + friends.jpg"
    assert created.source.version_id == "096fKKXTRTtl3on89fVO.nfljtsv6qko"
    assert created.source.etag == "d41d8cd98f00b204e9800998ecf8427e"
    assert created.source.size == 1048576
    assert created.source.sequencer == "0055AED6DCD90281E5"
    assert created.event_name == "ObjectCreated:Put"
    assert created.event_time is not None
    assert created.event_time.year == 2026
    assert not notification.is_test_event


def test_sqs_wrapped_event_body_is_the_same_notification() -> None:
    sqs_event = json.loads((EVENTS / "sqs-s3-put.json").read_text())
    direct = parse_notification(json.loads((EVENTS / "s3-put.json").read_text()))

    wrapped = parse_json_notification(sqs_event["Records"][0]["body"])

    assert wrapped == direct


def test_moto_shape_without_optional_fields_is_accepted() -> None:
    """GIVEN moto's record (no sequencer, no versionId) THEN those fields are None, not an error."""
    (created,) = parse_notification({"Records": [moto_record("incoming/a b.jpg")]}).objects
    assert (created.source.key, created.source.sequencer, created.source.version_id) == (
        "incoming/a b.jpg",
        None,
        None,
    )
    assert created.source.etag == "abc123"
    assert created.source.size == 2048


def test_s3_test_event_is_recognised_and_yields_no_work() -> None:
    notification = parse_notification(json.loads((EVENTS / "s3-test-event.json").read_text()))
    assert notification.is_test_event
    assert notification.objects == ()


def test_several_records_per_message_and_non_created_events_are_ignored() -> None:
    """GIVEN a message with two creations and one removal THEN two objects and one ignored event name."""
    records = [
        moto_record("incoming/one.jpg"),
        moto_record("incoming/gone.jpg", event_name="ObjectRemoved:Delete"),
        moto_record("incoming/two.jpg", event_name="ObjectCreated:Copy"),
    ]
    notification = parse_notification({"Records": records})
    assert [o.source.key for o in notification.objects] == ["incoming/one.jpg", "incoming/two.jpg"]
    assert notification.ignored_event_names == ("ObjectRemoved:Delete",)


def test_multipart_duplicate_events_share_one_idempotency_key() -> None:
    """GIVEN moto's Put + CompleteMultipartUpload for one upload THEN both map to the same work unit."""
    records = [
        moto_record("incoming/big.jpg", etag="f00-2"),
        moto_record("incoming/big.jpg", event_name="ObjectCreated:CompleteMultipartUpload", etag="f00-2"),
    ]
    put, complete = parse_notification({"Records": records}).objects

    def key_of(event: ObjectEvent) -> object:
        return jmespath.search(IDEMPOTENCY_KEY_JMESPATH, work_unit(event, None))

    assert key_of(put) == key_of(complete) == ["uploads", "incoming/big.jpg", None, "f00-2", None]


def test_the_same_version_under_another_fingerprint_is_a_different_work_unit() -> None:
    """Reprocessing: a new model (or settings that change predictions) processes the version again."""
    (created,) = parse_notification({"Records": [moto_record("incoming/x.jpg", etag="v1")]}).objects
    old, new = (work_unit(created, fp) for fp in ("aaaa", "bbbb"))

    def key_of(unit: dict[str, str | None]) -> object:
        return jmespath.search(IDEMPOTENCY_KEY_JMESPATH, unit)

    assert key_of(old) != key_of(new)
    assert key_of(old) == key_of(work_unit(created, "aaaa"))


def test_a_backfill_notification_is_a_replay_with_the_same_work_unit_as_s3s() -> None:
    """`s3kp backfill` marks its records with `s3.configurationId`; the work unit is the object version."""
    s3_record = moto_record("incoming/x.jpg", etag="v1")
    backfill_record = json.loads(json.dumps(s3_record))
    backfill_record["s3"]["configurationId"] = REPLAY_CONFIGURATION_ID
    (real,) = parse_notification({"Records": [s3_record]}).objects
    (replayed,) = parse_notification({"Records": [backfill_record]}).objects

    assert (real.replay, replayed.replay) == (False, True)
    assert jmespath.search(IDEMPOTENCY_KEY_JMESPATH, work_unit(real, None)) == jmespath.search(
        IDEMPOTENCY_KEY_JMESPATH, work_unit(replayed, None)
    )


def test_a_rerun_is_a_work_unit_of_its_own_once_per_token() -> None:
    """`s3kp backfill --only-failed` sends replays with a rerun token: idempotency must not answer them
    with a failure it remembers, while a redelivery of the same rerun is still a duplicate."""
    plain = json.loads(json.dumps(moto_record("incoming/x.jpg", etag="v1")))
    plain["s3"]["configurationId"] = REPLAY_CONFIGURATION_ID

    def rerun(token: object) -> dict:
        record = json.loads(json.dumps(plain))
        record["s3kp"] = {"rerun": token}
        return record

    def key_of(record: dict) -> object:
        (event,) = parse_notification({"Records": [record]}).objects
        return jmespath.search(IDEMPOTENCY_KEY_JMESPATH, work_unit(event, "fp"))

    assert key_of(plain) == ["uploads", "incoming/x.jpg", None, "v1", "fp"]  # the key records already have
    assert key_of(rerun("r1")) == ["uploads", "incoming/x.jpg", None, "v1", "fp", "r1"]
    assert key_of(rerun("r1")) != key_of(rerun("r2"))
    for junk in (None, "", 7, "x" * 65, ["r1"]):
        assert key_of(rerun(junk)) == key_of(plain), junk


def test_only_a_replay_can_be_a_rerun() -> None:
    """S3's own records never carry a token; one there (not sent by backfill) changes nothing."""
    record = moto_record("incoming/x.jpg", etag="v1")
    record["s3kp"] = {"rerun": "r1"}
    (event,) = parse_notification({"Records": [record]}).objects
    assert (event.replay, event.rerun) == (False, None)


def test_a_new_upload_of_the_same_key_is_a_different_work_unit() -> None:
    first, second = parse_notification(
        {"Records": [moto_record("incoming/x.jpg", etag="v1"), moto_record("incoming/x.jpg", etag="v2")]}
    ).objects
    assert jmespath.search(IDEMPOTENCY_KEY_JMESPATH, work_unit(first, None)) != jmespath.search(
        IDEMPOTENCY_KEY_JMESPATH, work_unit(second, None)
    )


@pytest.mark.parametrize(
    "body",
    [
        "not json at all",
        "[1, 2, 3]",
        '{"Message": "an SNS envelope or something else"}',
        '{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {}}}]}',
        '{"Records": "nope"}',
    ],
)
def test_bodies_that_are_not_s3_notifications_are_malformed(body: str) -> None:
    with pytest.raises(MalformedNotification):
        parse_json_notification(body)


def test_the_work_unit_keys_idempotency_records_as_the_former_object_created_did() -> None:
    """Records stored before the parser produced `ObjectEvent`s were keyed on the fields of its former
    `ObjectCreated` (`dataclasses.asdict`): the same notification gives the same key, so a deployment does
    not run every remembered object version again."""
    (event,) = parse_notification(json.loads((EVENTS / "s3-put.json").read_text())).objects
    former_data = {
        "bucket": "s3kp-uploads",
        "key": "incoming/team photo + friends.jpg",
        "version_id": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
        "etag": "d41d8cd98f00b204e9800998ecf8427e",
        "size": 1048576,
        "sequencer": "0055AED6DCD90281E5",
        "event_time": event.event_time,
        "event_name": "ObjectCreated:Put",
        "replay": False,
        "fingerprint": "fp-1",
    }

    assert jmespath.search(IDEMPOTENCY_KEY_JMESPATH, work_unit(event, "fp-1")) == jmespath.search(
        IDEMPOTENCY_KEY_JMESPATH, former_data
    )
