"""`s3kp backfill` planning and messages, without AWS: what is sent, what is skipped and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import S3Model
from s3_events import parse_json_notification
from s3kp_core.fingerprint import inference_fingerprint

from s3kp import backfill
from s3kp.backfill import (
    HAS_RESULT,
    NO_IMAGE_FINGERPRINT,
    NO_VIDEO_FINGERPRINT,
    NOT_FAILED,
    NOT_MATCHED,
    OTHER_REASON,
    OVER_LIMIT,
    TOO_OLD,
    UP_TO_DATE,
    KeyFilter,
    ListedObject,
    Plan,
    Sender,
    StoredResult,
    current_fingerprints,
    decide,
    notification_body,
    parse_reasons,
    parse_s3_url,
    parse_since,
)
from s3kp.cli import build_parser, main

T0 = datetime(2026, 11, 1, tzinfo=UTC)
TEMPLATE_FILTER = KeyFilter.from_template()


def obj(key: str, *, etag: str = "e1", age_days: int = 0, version_id: str | None = None) -> ListedObject:
    return ListedObject(key=key, size=100, etag=etag, last_modified=T0 - timedelta(days=age_days),
                        version_id=version_id)  # fmt: skip


def sent_and_skipped(decisions) -> tuple[list[str], dict[str, str]]:
    decisions = list(decisions)
    return (
        [d.obj.key for d in decisions if d.skip_reason is None],
        {d.obj.key: d.skip_reason for d in decisions if d.skip_reason is not None},
    )


def test_the_key_filter_is_the_bucket_notifications_own() -> None:
    """Same prefix and suffixes as template.yaml's notification, case-sensitive like S3's."""
    for key in (
        "incoming/a.jpg",
        "incoming/b/c.JPEG",
        "incoming/d.png",
        "incoming/e.TIFF",
        "incoming/f.webp",
    ):
        assert TEMPLATE_FILTER.matches(key), key
    for key in ("annotated/a.jpg", "incoming/notes.txt", "incoming/a.Jpg", "other/incoming/a.jpg", "a.jpg"):
        assert not TEMPLATE_FILTER.matches(key), key


def test_only_matching_objects_modified_since_the_date_are_sent() -> None:
    objects = [obj("incoming/new.jpg"), obj("incoming/old.jpg", age_days=10), obj("incoming/doc.pdf")]

    sent, skipped = sent_and_skipped(decide(objects, Plan(TEMPLATE_FILTER, since=T0 - timedelta(days=1))))

    assert sent == ["incoming/new.jpg"]
    assert skipped == {"incoming/old.jpg": TOO_OLD, "incoming/doc.pdf": NOT_MATCHED}


def test_only_missing_skips_objects_whose_current_version_has_a_result() -> None:
    objects = [obj("incoming/done.jpg"), obj("incoming/replaced.jpg", etag="e2"), obj("incoming/never.jpg"),
               obj("incoming/notes.txt")]  # fmt: skip
    stored = {
        "incoming/done.jpg": StoredResult(etag="e1", version_id=None, fingerprint="fp"),
        "incoming/replaced.jpg": StoredResult(etag="e1", version_id=None, fingerprint="fp"),
    }
    looked_up: list[list[str]] = []

    def lookup(batch: list[ListedObject]) -> dict[str, StoredResult]:
        looked_up.append([o.key for o in batch])
        return {o.key: stored[o.key] for o in batch if o.key in stored}

    sent, skipped = sent_and_skipped(decide(objects, Plan(TEMPLATE_FILTER, only_missing=True), lookup))

    assert sent == ["incoming/replaced.jpg", "incoming/never.jpg"]
    assert skipped == {"incoming/done.jpg": HAS_RESULT, "incoming/notes.txt": NOT_MATCHED}
    assert looked_up == [[o.key for o in objects[:3]]]  # one BatchGetItem for the chunk, filtered first


def test_versions_are_compared_by_version_id_when_both_sides_have_one() -> None:
    stored = {"incoming/v.jpg": StoredResult(etag="e1", version_id="v1", fingerprint="fp")}
    plan = Plan(TEMPLATE_FILTER, only_missing=True)

    same, _ = sent_and_skipped(decide([obj("incoming/v.jpg", version_id="v1")], plan, lambda b: stored))
    newer, _ = sent_and_skipped(decide([obj("incoming/v.jpg", version_id="v2")], plan, lambda b: stored))

    assert (same, newer) == ([], ["incoming/v.jpg"])


def test_reprocess_sends_results_of_another_fingerprint_and_objects_without_one() -> None:
    objects = [obj("incoming/old-model.jpg"), obj("incoming/current.jpg"), obj("incoming/never.jpg"),
               obj("incoming/legacy.jpg")]  # fmt: skip
    stored = {
        "incoming/old-model.jpg": StoredResult(etag="e1", version_id=None, fingerprint="old"),
        "incoming/current.jpg": StoredResult(etag="e1", version_id=None, fingerprint="new"),
        "incoming/legacy.jpg": StoredResult(etag="e1", version_id=None, fingerprint=None),
    }

    sent, skipped = sent_and_skipped(
        decide(objects, Plan(TEMPLATE_FILTER, reprocess=True, fingerprint="new"), lambda b: stored)
    )

    assert sent == ["incoming/old-model.jpg", "incoming/never.jpg", "incoming/legacy.jpg"]
    assert skipped == {"incoming/current.jpg": UP_TO_DATE}


def test_reprocess_without_the_current_fingerprint_is_refused() -> None:
    with pytest.raises(ValueError, match="fingerprint"):
        list(decide([obj("incoming/a.jpg")], Plan(TEMPLATE_FILTER, reprocess=True)))


def test_only_failed_sends_failed_results_with_the_given_reasons_whatever_version_they_describe() -> None:
    objects = [obj("incoming/down.jpg"), obj("incoming/down-older.jpg", etag="e2"), obj("incoming/big.jpg"),
               obj("incoming/ok.jpg"), obj("incoming/never.jpg")]  # fmt: skip
    stored = {
        "incoming/down.jpg": StoredResult("e1", None, "fp", status="failed", reason="inference_unavailable"),
        # The key was uploaded again since its failure: the replay processes what is there now.
        "incoming/down-older.jpg": StoredResult(
            "e1", None, "fp", status="failed", reason="inference_unavailable"
        ),
        "incoming/big.jpg": StoredResult("e1", None, "fp", status="failed", reason="object_too_large"),
        "incoming/ok.jpg": StoredResult("e1", None, "fp", status="succeeded"),
    }

    def run(reasons: frozenset[str]) -> tuple[list[str], dict[str, str]]:
        plan = Plan(TEMPLATE_FILTER, only_failed=True, reasons=reasons)
        return sent_and_skipped(decide(objects, plan, lambda batch: stored))

    sent, skipped = run(frozenset({"inference_unavailable"}))
    assert sent == ["incoming/down.jpg", "incoming/down-older.jpg"]
    assert skipped == {"incoming/big.jpg": OTHER_REASON, "incoming/ok.jpg": NOT_FAILED,
                       "incoming/never.jpg": NOT_FAILED}  # fmt: skip
    every_failure, _ = run(frozenset())
    assert every_failure == ["incoming/down.jpg", "incoming/down-older.jpg", "incoming/big.jpg"]


def test_reasons_may_be_repeated_or_comma_separated_and_must_be_known_codes() -> None:
    assert parse_reasons(None) == frozenset()
    assert parse_reasons(["inference_unavailable, object_too_large", "image_undecodable"]) == {
        "inference_unavailable", "object_too_large", "image_undecodable"
    }  # fmt: skip
    typo = r"unknown reason code inference_unavaliable \(known: .*inference_unavailable"
    with pytest.raises(ValueError, match=typo):
        parse_reasons(["inference_unavaliable"])


def test_a_rerun_carries_its_token_and_is_still_the_s3_notification_shape() -> None:
    body = notification_body("uploads", obj("incoming/a.jpg"), "eu-west-1", rerun="rerun-0123")

    (created,) = parse_json_notification(body).objects

    assert (created.replay, created.rerun, created.source.key) == (True, "rerun-0123", "incoming/a.jpg")
    S3Model.model_validate(json.loads(body))
    (plain,) = parse_json_notification(notification_body("uploads", obj("incoming/a.jpg"), "r")).objects
    assert plain.rerun is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--reason", "inference_unavailable"], "--reason narrows --only-failed"),
        (["--only-failed", "--only-missing"], "--only-missing and --only-failed exclude each other"),
        (["--only-failed", "--reprocess", "--fingerprint", "f"], "--reprocess and --only-failed exclude"),
        (["--only-failed", "--reason", "nope"], "unknown reason code nope"),
    ],
)
def test_only_failed_usage_errors_exit_2_before_any_aws_call(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", "s3://bucket/incoming/", "--endpoint-url", "http://127.0.0.1:9", *options]) == 2
    assert message in capsys.readouterr().err


def test_the_limit_counts_objects_to_send_not_objects_listed() -> None:
    objects = [obj("incoming/skip.txt"), *(obj(f"incoming/{i}.jpg") for i in range(5))]

    sent, skipped = sent_and_skipped(decide(objects, Plan(TEMPLATE_FILTER, limit=2), chunk=2))

    assert sent == ["incoming/0.jpg", "incoming/1.jpg"]
    assert list(skipped.values()).count(OVER_LIMIT) == 3


@pytest.mark.parametrize(
    "key", ["incoming/plain.jpg", "incoming/my photos/été + café 📷 (1).jpg", "incoming/a%2Bb.png"]
)
def test_the_message_is_an_s3_notification_the_ingest_function_reads_back_exactly(key: str) -> None:
    body = notification_body("uploads", obj(key, etag='"abc"', version_id="v7"), "eu-west-1")

    (created,) = parse_json_notification(body).objects

    source = created.source
    assert (source.bucket, source.key, source.etag, source.version_id, source.size) == (
        "uploads", key, "abc", "v7", 100
    )  # fmt: skip
    assert created.replay
    assert source.sequencer is None  # S3's to mint, not ours
    assert created.event_time == T0
    assert created.event_name == "ObjectCreated:Put"
    record = json.loads(body)["Records"][0]
    assert (record["eventSource"], record["awsRegion"]) == ("aws:s3", "eu-west-1")
    assert backfill.REPLAY_CONFIGURATION_ID == "s3kp-backfill"
    S3Model.model_validate(json.loads(body))  # the shape AWS S3 sends (Powertools' strict model)


class FakeSqs:
    def __init__(self, failures: list[set[str]] | None = None) -> None:
        self.batches: list[list[dict[str, str]]] = []
        self.failures = failures or []
        self.sent_to: dict[str, list[dict[str, str]]] = {}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.batches.append(Entries)
        self.sent_to.setdefault(QueueUrl, []).extend(Entries)
        failed = self.failures.pop(0) if self.failures else set()
        return {
            "Failed": [
                {"Id": i, "Code": "InternalError"} for i in failed if any(e["Id"] == i for e in Entries)
            ]
        }


def test_failed_entries_of_a_batch_are_sent_again_alone() -> None:
    sqs = FakeSqs(failures=[{"3", "7"}])
    sender = Sender(sqs, "q", concurrency=1, sleep=lambda s: None)

    sender.send([f"m{i}" for i in range(10)])

    assert [len(batch) for batch in sqs.batches] == [10, 2]
    assert [e["MessageBody"] for e in sqs.batches[1]] == ["m3", "m7"]
    assert sender.sent == 10


def test_max_rate_paces_the_batches() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    sender = Sender(FakeSqs(), "q", max_rate=20, concurrency=1, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        sender.send(["m"] * 10)

    assert now[0] == pytest.approx(1.5)  # 30 messages before the 4th batch at 20/s
    assert len(sleeps) == 3


def test_urls_and_dates_are_read_strictly() -> None:
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("s3://bucket/incoming/x/") == ("bucket", "incoming/x/")
    for bad in ("bucket/key", "s3://", "s3:///key"):
        with pytest.raises(ValueError, match="s3://"):
            parse_s3_url(bad)
    assert parse_since("2026-11-01") == T0
    assert parse_since("2026-11-01T01:00:00+01:00") == T0
    with pytest.raises(ValueError, match="--since"):
        parse_since("yesterday")


def test_batches_in_flight_together_are_all_acknowledged_before_the_end() -> None:
    sqs = FakeSqs(failures=[{"0"}])
    sender = Sender(sqs, "q", concurrency=4, sleep=lambda s: None)
    for index in range(12):
        sender.send([f"m{index}-{n}" for n in range(10)])
    sender.wait()

    assert sender.sent == 120
    bodies = sorted(e["MessageBody"] for batch in sqs.batches for e in batch)
    assert len(bodies) == 121  # one entry sent twice after its failure
    assert len(set(bodies)) == 120


def test_videos_match_the_notification_and_go_to_the_video_queue() -> None:
    """The template sends the video suffixes, either case, to the video function's queue."""
    assert TEMPLATE_FILTER.queue_for("incoming/clip.mp4") == "VideoQueue"
    assert TEMPLATE_FILTER.queue_for("incoming/phone/IMG_0001.MOV") == "VideoQueue"
    assert TEMPLATE_FILTER.queue_for("incoming/a.jpg") == "IngestQueue"
    assert TEMPLATE_FILTER.queue_for("incoming/clip.Mp4") is None


class ListingS3:
    """`list_objects_v2` over a fixed list of keys (an unversioned bucket)."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def get_bucket_versioning(self, **_: Any) -> dict[str, Any]:
        return {}

    def get_paginator(self, name: str) -> Any:
        keys = self.keys

        class Pages:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                contents = [{"Key": k, "Size": 10, "ETag": '"e1"', "LastModified": T0} for k in keys]
                return [{"Contents": contents}]

        return Pages()


def test_a_backfill_sends_images_to_the_ingest_queue_and_videos_to_the_video_queue() -> None:
    sqs = FakeSqs()
    s3 = ListingS3(["incoming/a.jpg", "incoming/clip.mp4", "incoming/b.png", "incoming/c.webm"])
    summary = backfill.run_backfill(
        s3=s3, sqs=sqs, dynamodb=None, bucket="uploads", prefix="incoming/", queue_url="ingest",
        results_table=None, region="us-east-1", plan=Plan(TEMPLATE_FILTER), concurrency=1,
        video_queue_url="video",
    )  # fmt: skip
    by_queue = {
        queue: sorted(json.loads(e["MessageBody"])["Records"][0]["s3"]["object"]["key"] for e in entries)
        for queue, entries in sqs.sent_to.items()
    }
    assert by_queue == {
        "ingest": ["incoming/a.jpg", "incoming/b.png"],
        "video": ["incoming/c.webm", "incoming/clip.mp4"],
    }
    assert summary.sent == 4


def test_without_a_video_queue_videos_are_counted_not_sent_to_the_ingest_queue() -> None:
    sqs = FakeSqs()
    summary = backfill.run_backfill(
        s3=ListingS3(["incoming/a.jpg", "incoming/clip.mp4"]), sqs=sqs, dynamodb=None, bucket="uploads",
        prefix="incoming/", queue_url="ingest", results_table=None, region="us-east-1",
        plan=Plan(TEMPLATE_FILTER), concurrency=1,
    )  # fmt: skip
    assert set(sqs.sent_to) == {"ingest"}
    assert summary.sent == 1
    assert summary.skipped == {backfill.NO_VIDEO_QUEUE: 1}


# --- reprocessing videos: their fingerprint covers the sampling rate ---------------------------------


def test_reprocess_compares_a_video_with_the_video_fingerprint_and_an_image_with_the_image_one() -> None:
    """After a VideoFps change only the videos' fingerprint differs: the videos are sent, not the images."""
    stored = {
        "incoming/old-fps.mp4": StoredResult(etag="e1", version_id=None, fingerprint="video-at-5"),
        "incoming/current.mp4": StoredResult(etag="e1", version_id=None, fingerprint="video-at-2"),
        # A video recorded before videos had their own fingerprint carries the image one.
        "incoming/before.mov": StoredResult(etag="e1", version_id=None, fingerprint="image"),
        "incoming/photo.jpg": StoredResult(etag="e1", version_id=None, fingerprint="image"),
        "incoming/old-model.png": StoredResult(etag="e1", version_id=None, fingerprint="old-image"),
    }
    objects = [obj(key) for key in stored]
    plan = Plan(TEMPLATE_FILTER, reprocess=True, fingerprint="image", video_fingerprint="video-at-2")

    sent, skipped = sent_and_skipped(decide(objects, plan, lambda b: stored))

    assert sent == ["incoming/old-fps.mp4", "incoming/before.mov", "incoming/old-model.png"]
    assert skipped == {"incoming/current.mp4": UP_TO_DATE, "incoming/photo.jpg": UP_TO_DATE}


def test_reprocess_skips_the_objects_whose_current_fingerprint_it_was_not_given() -> None:
    """`--fingerprint` is the image one: with it alone a video cannot be judged, and is not sent blindly."""
    stored = {"incoming/clip.mp4": StoredResult(etag="e1", version_id=None, fingerprint="video")}
    objects = [obj("incoming/clip.mp4"), obj("incoming/new.mp4"), obj("incoming/a.jpg")]

    images_only = sent_and_skipped(
        decide(objects, Plan(TEMPLATE_FILTER, reprocess=True, fingerprint="image"), lambda b: stored)
    )
    videos_only = sent_and_skipped(
        decide(objects, Plan(TEMPLATE_FILTER, reprocess=True, video_fingerprint="new"), lambda b: stored)
    )

    assert images_only == (
        ["incoming/a.jpg"],
        {"incoming/clip.mp4": NO_VIDEO_FINGERPRINT, "incoming/new.mp4": NO_VIDEO_FINGERPRINT},
    )
    assert videos_only == (
        ["incoming/clip.mp4", "incoming/new.mp4"],
        {"incoming/a.jpg": NO_IMAGE_FINGERPRINT},
    )


def fingerprints_of(*options: str) -> tuple[str | None, str | None]:
    return current_fingerprints(build_parser().parse_args(["backfill", "s3://b/incoming/", *options]))


def test_the_current_fingerprints_are_the_functions_own_from_the_options_and_the_template_defaults() -> None:
    """VideoFps defaults to the template's (5), as the inference options do; only the video one has it."""
    image = inference_fingerprint("faces/2", confidence=0.4, overlap=0.3, max_side_for_inference=1024)
    at_5 = inference_fingerprint(
        "faces/2", confidence=0.4, overlap=0.3, max_side_for_inference=1024, video_fps=5
    )
    at_2 = inference_fingerprint(
        "faces/2", confidence=0.4, overlap=0.3, max_side_for_inference=1024, video_fps=2
    )

    assert fingerprints_of("--model-id", "faces/2") == (image, at_5)
    assert fingerprints_of("--model-id", "faces/2", "--video-fps", "2") == (image, at_2)
    assert fingerprints_of("--model-id", "faces/2", "--video-fps", "2.0") == (image, at_2)
    # Each explicit fingerprint overrides its own kind only.
    assert fingerprints_of("--model-id", "faces/2", "--fingerprint", "f") == ("f", at_5)
    assert fingerprints_of("--model-id", "faces/2", "--video-fingerprint", "v") == (image, "v")
    assert fingerprints_of("--fingerprint", "f") == ("f", None)
    assert fingerprints_of("--video-fingerprint", "v") == (None, "v")
    assert fingerprints_of() == (None, None)


def test_the_summary_shows_both_fingerprints_when_videos_are_listed() -> None:
    def summary_lines(keys: list[str]) -> list[str]:
        summary = backfill.run_backfill(
            s3=ListingS3(keys), sqs=FakeSqs(), dynamodb=None, bucket="uploads", prefix="incoming/",
            queue_url="ingest", results_table=None, region="us-east-1", concurrency=1, dry_run=True,
            plan=Plan(TEMPLATE_FILTER, fingerprint="img0123", video_fingerprint="vid4567"),
        )  # fmt: skip
        assert (summary.fingerprint, summary.video_fingerprint) == ("img0123", "vid4567")
        return [line.strip() for line in summary.lines() if "fingerprint" in line]

    assert summary_lines(["incoming/a.jpg"]) == ["current fingerprint img0123"]
    assert summary_lines(["incoming/a.jpg", "incoming/clip.mp4"]) == [
        "current fingerprint img0123 (images), vid4567 (videos)"
    ]


def test_a_sampling_rate_that_is_not_a_positive_number_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for rate in ("0", "-5", "five"):
        with pytest.raises(SystemExit) as exited:
            main(
                [
                    "backfill",
                    "s3://bucket/incoming/",
                    "--reprocess",
                    "--model-id",
                    "faces/2",
                    "--video-fps",
                    rate,
                ]
            )
        assert exited.value.code == 2
        assert "--video-fps" in capsys.readouterr().err
