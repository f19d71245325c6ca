"""The video flow: plan, segments in any order and any number of times, one final state and one event.

The stores and the ranged reader are the real adapters over moto in-process (DynamoDB conditions are the
point of the merge); the predictor is a fake that answers in the pixels of the JPEG it receives, and the
segment queue a list the test drains in the order it chooses.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import boto3
import msgspec
import pytest
from moto import mock_aws
from PIL import Image
from s3kp_core import errors
from s3kp_core.objects_s3 import S3ObjectStore
from s3kp_core.predictor import InferenceResult
from s3kp_core.processing import ObjectEvent
from s3kp_core.result_events import ResultEventDetail
from s3kp_core.results import Keypoint, Prediction, ResultRecord, SourceObject, Status, result_id_for
from s3kp_core.results_schema import from_item
from s3kp_core.results_store_dynamodb import DynamoDBResultsStore
from s3kp_core.video_processing import (
    WORK_DIRECTORY,
    SegmentOutcome,
    VideoCollaborators,
    plan_video,
    process_segment,
    watch_segment,
)
from s3kp_core.video_source_s3 import S3VideoSources
from s3kp_core.video_store import Start
from s3kp_core.video_store_dynamodb import DynamoDBVideoStore
from s3kp_core.video_tasks import SegmentTask

from s3kp.video_samples import encode_video, frame_number, numbered_frame, numbered_video
from tests.unit.derived_settings import video_processing_settings

BUCKET = "uploads"
KEY = "incoming/clips/jump.mp4"
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
# One-second segments, so a three-second video is three segments.
SETTINGS = video_processing_settings(segment_seconds=Fraction(1), processing={"model_id": "pose/1"})


@dataclass
class SizedPredictor:
    """Finds one person in the middle of whatever it is sent, a keypoint at a quarter of the way in."""

    calls: int = 0
    fail_with: errors.ProcessingError | None = None

    def predict(
        self, jpeg: bytes, *, deadline: float | None = None, max_attempts: int | None = None
    ) -> InferenceResult:
        self.calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        width, height = Image.open(io.BytesIO(jpeg)).size
        person = Prediction(
            x=width / 2, y=height / 2, width=width / 4, height=height / 2, confidence=0.9,
            class_name="person", class_id=0,
            keypoints=(Keypoint(x=width / 4, y=height / 4, confidence=0.8, class_id=0, name="nose"),),
        )  # fmt: skip
        return InferenceResult(
            predictions=(person,), image_width=width, image_height=height, inference_id=None,
            server_time_ms=1.0, bytes_sent=len(jpeg), attempts=1, elapsed_ms=2.0,
        )  # fmt: skip


@dataclass
class Published:
    details: list[ResultEventDetail] = field(default_factory=list)

    def publish(self, detail: ResultEventDetail) -> None:
        self.details.append(detail)


@dataclass
class TaskList:
    tasks: list[SegmentTask] = field(default_factory=list)

    delays: list[int] = field(default_factory=list)

    def send(self, tasks: Any, *, delay_seconds: int = 0) -> None:
        self.tasks.extend(tasks)
        self.delays.extend(delay_seconds for _ in tasks)


class Stack:
    """The flow over moto: one bucket, the results table, a queue as a list, an event list."""

    def __init__(self, s3: Any, table: Any) -> None:
        self.s3 = s3
        self.table = table
        self.queue = TaskList()
        self.events = Published()
        self.predictor = SizedPredictor()
        self.deps = VideoCollaborators(
            sources=S3VideoSources(
                s3, chunk_bytes=4096
            ),  # small chunks: many ranged reads, as for a large file
            objects=S3ObjectStore(s3),
            predictor=self.predictor,
            results=DynamoDBResultsStore(table, s3, predictions_prefix="predictions/"),
            videos=DynamoDBVideoStore(table, s3),
            segments=self.queue,
            events=self.events,
        )

    def upload(self, data: bytes, key: str = KEY) -> ObjectEvent:
        response = self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        return ObjectEvent(
            source=SourceObject(bucket=BUCKET, key=key, etag=response["ETag"].strip('"'), size=len(data)),
            event_time=datetime.now(UTC),
        )

    def plan(self, event: ObjectEvent, settings: Any = SETTINGS) -> Any:
        return plan_video(event, settings=settings, deps=self.deps)

    def segment(self, task: SegmentTask, **options: Any) -> SegmentOutcome:
        return process_segment(task, settings=options.pop("settings", SETTINGS), deps=self.deps, **options)

    def watch(self, task: SegmentTask, *, killed: bool) -> SegmentOutcome:
        watch = msgspec.structs.replace(task, watch=True)
        return watch_segment(watch, settings=SETTINGS, deps=self.deps, last_delivery_killed=killed)

    def drain(self, order: list[int] | None = None) -> list[SegmentOutcome]:
        tasks, self.queue.tasks = self.queue.tasks, []
        return [self.segment(tasks[i]) for i in (order if order is not None else range(len(tasks)))]

    def result(self, key: str = KEY) -> ResultRecord:
        return from_item(self.table.get_item(Key={"result_id": result_id_for(BUCKET, key)})["Item"])

    def item(self, key: str = KEY) -> dict[str, Any]:
        return dict(self.table.get_item(Key={"result_id": result_id_for(BUCKET, key)})["Item"])

    def read(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def keys(self, prefix: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        return sorted(entry["Key"] for entry in listed)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        table = boto3.resource("dynamodb").create_table(
            TableName="results",
            KeySchema=[{"AttributeName": "result_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "result_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        yield Stack(s3, table)


def frames_of(stack: Stack, record: ResultRecord) -> list[dict[str, Any]]:
    assert record.video is not None
    assert record.video.frames_ref is not None
    data = gzip.decompress(stack.read(record.video.frames_ref.key))
    return [json.loads(line) for line in data.splitlines()]


def decoded(stack: Stack, record: ResultRecord, tmp_path: Path) -> list[tuple[float, Image.Image]]:
    assert record.annotated is not None
    path = tmp_path / "annotated.mp4"
    path.write_bytes(stack.read(record.annotated.key))
    with av.open(str(path)) as container:
        return [(round(float(frame.time), 3), frame.to_image()) for frame in container.decode(video=0)]


# ------------------------------------------------------------------------------------------ the whole video


def test_a_three_second_video_is_three_segments_merged_into_one_result_and_one_event(
    stack: Stack, tmp_path: Path
) -> None:
    planned = stack.plan(stack.upload(numbered_video(30, fps=10, size=(160, 96))))
    assert planned.start == Start.STARTED
    processing = stack.result()
    assert processing.status == Status.PROCESSING
    assert processing.media_type == "video"
    assert processing.video is not None
    assert (processing.video.frames, processing.video.segments, processing.video.segments_done) == (15, 3, 0)
    assert [(t.segment, t.first, t.stop) for t in stack.queue.tasks] == [(0, 0, 5), (1, 5, 10), (2, 10, 15)]

    outcomes = stack.drain()
    assert [o.state for o in outcomes] == ["recorded", "recorded", "recorded"]
    assert [o.record is not None for o in outcomes] == [False, False, True]  # the last one finishes

    result = stack.result()
    assert result.status == Status.SUCCEEDED
    assert result.video is not None
    assert (result.video.duration_seconds, result.video.fps_sampled, result.video.frames) == (3.0, 5.0, 15)
    assert (result.video.width, result.video.height, result.video.segments_done) == (160, 96, 3)
    assert (result.detections, result.keypoints, result.counts) == (15, 15, {"person": 15})

    frames = frames_of(stack, result)
    assert [(f["frame"], f["time_seconds"]) for f in frames] == [(k, k / 5) for k in range(15)]
    # The person the endpoint found in the middle of the sent JPEG, in the video's own pixels.
    assert {(p["x"], p["y"], p["keypoints"][0]["x"]) for f in frames for p in f["predictions"]} == {
        (80, 48, 40)
    }

    video = decoded(stack, result, tmp_path)
    assert [time for time, _ in video] == [round(k / 5, 3) for k in range(15)]
    assert video[7][1].size == (160, 96)

    assert [d.status for d in stack.events.details] == [Status.SUCCEEDED]
    assert stack.events.details[0].media_type == "video"
    assert stack.events.details[0].video is not None
    assert stack.events.details[0].video.frames == 15
    # Nothing but the frames document is left of the segments' work.
    assert stack.keys(f"predictions/{result.result_id}/") == [result.video.frames_ref.key]  # type: ignore[union-attr]
    assert stack.keys(f"predictions/{WORK_DIRECTORY}") == []
    assert stack.predictor.calls == 15


def test_segments_in_any_order_give_the_same_result(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(30, fps=10)))
    outcomes = stack.drain(order=[2, 0, 1])
    assert [o.record is not None for o in outcomes] == [False, False, True]
    result = stack.result()
    assert result.status == Status.SUCCEEDED
    assert [f["frame"] for f in frames_of(stack, result)] == list(range(15))
    assert len(stack.events.details) == 1


def test_the_annotated_video_shows_each_sampled_frame_in_order(stack: Stack, tmp_path: Path) -> None:
    stack.predictor.fail_with = None
    stack.plan(stack.upload(encode_video((numbered_frame(n, (256, 128)) for n in range(30)), fps=10)))
    stack.drain(order=[1, 2, 0])
    video = decoded(stack, stack.result(), tmp_path)
    # Drawn over, but the stripes' middle rows still read: frame 2k was sampled at k / 5 s.
    assert [frame_number(image.crop((0, 0, 256, 20))) for _, image in video] == [2 * k for k in range(15)]


def test_a_retried_segment_counts_once_and_a_late_copy_changes_nothing(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(30, fps=10)))
    tasks = list(stack.queue.tasks)
    assert stack.segment(tasks[0]).state == "recorded"
    assert stack.segment(tasks[0]).state == "already_recorded"  # redelivered: not processed again
    calls = stack.predictor.calls
    stack.segment(tasks[1])
    stack.segment(tasks[2])
    assert stack.result().video.segments_done == 3  # type: ignore[union-attr]
    late = stack.segment(tasks[1])
    assert late.state == "already_recorded"
    assert stack.predictor.calls == calls + 10  # segments 1 and 2 only, five samples each
    assert len(stack.events.details) == 1


def test_two_copies_of_a_segment_processed_at_once_count_once(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(20, fps=10)))
    first, second = stack.queue.tasks
    # Both copies read the state before either records (the store's condition decides).
    real_read = stack.deps.videos.read
    states = [real_read(first.result_id)]
    stack.deps.videos.read = lambda result_id: states[0] if states else real_read(result_id)  # type: ignore[method-assign]
    assert stack.segment(first).state == "recorded"
    assert stack.segment(first).state == "already_recorded"
    states.clear()
    assert stack.segment(second).record is not None
    assert stack.result().video.segments_done == 2  # type: ignore[union-attr]


def test_a_last_segment_whose_writer_died_before_finishing_is_finished_by_its_redelivery(
    stack: Stack,
) -> None:
    stack.plan(stack.upload(numbered_video(20, fps=10)))
    first, last = stack.queue.tasks
    stack.segment(first)
    real_put = stack.deps.objects.put
    calls = []

    def put_failing_for_the_video(bucket: str, key: str, body: bytes, **options: Any) -> None:
        if key.endswith(".mp4") and key.startswith("annotated/"):
            calls.append(key)
            raise errors.TransientError(errors.OUTPUT_WRITE_FAILED, "S3 answered 503")
        real_put(bucket, key, body, **options)

    stack.deps.objects.put = put_failing_for_the_video  # type: ignore[method-assign]
    with pytest.raises(errors.TransientError):
        stack.segment(last)
    assert stack.result().status == Status.PROCESSING  # both segments recorded, not finished
    stack.deps.objects.put = real_put  # type: ignore[method-assign]
    redelivered = stack.segment(last)
    assert redelivered.state == "already_recorded"
    assert redelivered.record is not None
    assert redelivered.record.status == Status.SUCCEEDED
    assert len(stack.events.details) == 1


def test_segment_work_is_kept_under_the_work_prefix_the_lifecycle_rule_expires(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(20, fps=10)))
    first, _ = stack.queue.tasks
    stack.segment(first)
    work = stack.keys("predictions/")
    assert work == [
        f"predictions/{WORK_DIRECTORY}{first.result_id}/{first.run}/frames-00000.jsonl.gz",
        f"predictions/{WORK_DIRECTORY}{first.result_id}/{first.run}/piece-00000.mp4",
    ]


# ------------------------------------------------------------------------------------------ the watch


def test_a_segment_killed_on_its_last_delivery_is_recorded_failed_by_its_watch(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(30, fps=10)))
    first, killed, _ = stack.queue.tasks
    stack.segment(first)

    outcome = stack.watch(killed, killed=True)

    assert outcome.state == "failed"
    result = stack.result()
    assert result.status == Status.FAILED
    assert result.reason is not None
    assert result.reason.code == errors.VIDEO_SEGMENT_CRASHED
    assert result.reason.message.startswith("segment 2 of 3 ended its last delivery without an outcome")
    assert [d.status for d in stack.events.details] == [Status.FAILED]
    assert stack.keys(f"predictions/{WORK_DIRECTORY}") == []  # the recorded segment's work is removed


def test_a_watch_after_a_last_delivery_that_ended_changes_nothing(stack: Stack) -> None:
    """Retried, deferred for an outage, or recorded: the message lives on, or the segment counted."""
    stack.plan(stack.upload(numbered_video(20, fps=10)))
    first, second = stack.queue.tasks

    assert stack.watch(first, killed=False).state == "watched"
    assert stack.result().status == Status.PROCESSING

    stack.segment(first)
    assert stack.watch(first, killed=True).state == "already_recorded"  # recorded, then killed: no harm
    assert stack.result().status == Status.PROCESSING

    stack.segment(second)
    assert stack.watch(second, killed=True).state == "already_recorded"
    assert stack.result().status == Status.SUCCEEDED
    assert len(stack.events.details) == 1


def test_a_watch_finishes_a_video_whose_last_writer_was_killed_before_finishing(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(20, fps=10)))
    first, last = stack.queue.tasks
    stack.segment(first)
    real_put = stack.deps.objects.put

    class Killed(BaseException):
        """What the test makes of an invocation killed while it joined the video."""

    def killed_while_finishing(bucket: str, key: str, body: bytes, **options: Any) -> None:
        if key.startswith("annotated/"):
            raise Killed
        real_put(bucket, key, body, **options)

    stack.deps.objects.put = killed_while_finishing  # type: ignore[method-assign]
    with pytest.raises(Killed):
        stack.segment(last)
    stack.deps.objects.put = real_put  # type: ignore[method-assign]
    assert stack.result().status == Status.PROCESSING

    outcome = stack.watch(last, killed=True)

    assert outcome.record is not None
    assert outcome.record.status == Status.SUCCEEDED
    assert stack.result().video.frames == 10  # type: ignore[union-attr]
    assert len(stack.events.details) == 1


def test_a_watch_of_a_replaced_run_changes_nothing(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(20, fps=10)))
    older = list(stack.queue.tasks)
    stack.queue.tasks.clear()
    stack.plan(msgspec_replace_time(stack.upload(numbered_video(10, fps=10)), timedelta(seconds=5)))

    assert stack.watch(older[1], killed=True).state == "stale"
    assert stack.result().status == Status.PROCESSING
    assert stack.events.details == []


def test_a_retried_planner_resends_its_tasks_without_resetting_the_segments_done(stack: Stack) -> None:
    event = stack.upload(numbered_video(20, fps=10))
    stack.plan(event)
    first, _ = stack.queue.tasks
    stack.segment(first)
    stack.queue.tasks.clear()
    again = stack.plan(event)
    assert again.start == Start.RUNNING
    assert len(stack.queue.tasks) == 2
    assert stack.result().video.segments_done == 1  # type: ignore[union-attr]
    stack.drain()
    assert stack.result().status == Status.SUCCEEDED


def test_a_newer_upload_makes_the_older_runs_segments_stale_and_their_work_is_removed(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(20, fps=10)))
    older = list(stack.queue.tasks)
    stack.queue.tasks.clear()
    newer = stack.upload(numbered_video(10, fps=10))
    stack.plan(msgspec_replace_time(newer, timedelta(seconds=5)))
    assert stack.segment(older[0]).state == "stale"
    assert stack.drain()[-1].record is not None
    result = stack.result()
    assert result.video is not None
    assert result.video.frames == 5
    assert [key for key in stack.keys("predictions/") if older[0].run in key] == []


def msgspec_replace_time(event: ObjectEvent, later: timedelta) -> ObjectEvent:
    from dataclasses import replace

    assert event.event_time is not None
    return replace(event, event_time=event.event_time + later)


def test_a_rotated_phone_video_is_reported_and_predicted_upright(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(10, fps=10, size=(160, 96), rotation=90)))
    stack.drain()
    result = stack.result()
    assert result.video is not None
    assert (result.video.width, result.video.height) == (96, 160)
    frame = frames_of(stack, result)[0]
    assert (frame["predictions"][0]["x"], frame["predictions"][0]["y"]) == (48, 80)


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\xff\xd8\xff\xe0" + bytes(2000), errors.VIDEO_UNDECODABLE),  # a JPEG renamed .mp4
        (b"", errors.OBJECT_EMPTY),
    ],
)
def test_a_video_that_cannot_be_read_is_recorded_failed_by_the_planner(
    stack: Stack, data: bytes, code: str
) -> None:
    planned = stack.plan(stack.upload(data))
    assert planned.record is not None
    result = stack.result()
    assert (result.status, result.reason.code if result.reason else None) == (Status.FAILED, code)
    assert result.media_type == "video"
    assert stack.queue.tasks == []
    assert [d.status for d in stack.events.details] == [Status.FAILED]


def test_an_audio_only_mp4_and_a_too_long_video_are_failed_with_their_reasons(stack: Stack) -> None:
    from s3kp.video_samples import audio_only_mp4

    stack.plan(stack.upload(audio_only_mp4(), key="incoming/voice.mp4"))
    assert stack.result("incoming/voice.mp4").reason.code == errors.VIDEO_NO_STREAM  # type: ignore[union-attr]
    short_limit = video_processing_settings(max_video_seconds=1.5)
    stack.plan(stack.upload(numbered_video(20, fps=10), key="incoming/long.mp4"), settings=short_limit)
    assert stack.result("incoming/long.mp4").reason.code == errors.VIDEO_TOO_LONG  # type: ignore[union-attr]


def test_an_empty_file_and_one_over_max_video_bytes_are_failed_before_any_read(stack: Stack) -> None:
    stack.plan(stack.upload(b"", key="incoming/empty.mp4"))
    empty = stack.result("incoming/empty.mp4").reason
    assert empty is not None
    assert (empty.code, empty.message) == (errors.OBJECT_EMPTY, "the object is empty (0 bytes)")

    video = numbered_video(10, fps=10)
    small_limit = video_processing_settings(max_video_bytes=len(video) - 1)
    stack.plan(stack.upload(video, key="incoming/big.mp4"), settings=small_limit)
    big = stack.result("incoming/big.mp4").reason
    assert big is not None
    assert big.code == errors.OBJECT_TOO_LARGE
    assert big.message == f"the object is {len(video)} bytes; MAX_VIDEO_BYTES is {len(video) - 1}"
    assert stack.queue.tasks == []


def test_a_video_cut_short_fails_at_the_segment_that_finds_it_and_later_segments_change_nothing(
    stack: Stack,
) -> None:
    whole = numbered_video(40, fps=10, size=(320, 240), faststart=True)
    stack.plan(stack.upload(whole[: len(whole) // 3]))
    tasks = list(stack.queue.tasks)
    outcomes = [stack.segment(task) for task in reversed(tasks)]
    failed = [o for o in outcomes if o.state == "failed"]
    assert len(failed) == 1
    result = stack.result()
    assert (result.status, result.reason.code) == (Status.FAILED, errors.VIDEO_TRUNCATED)  # type: ignore[union-attr]
    assert [d.status for d in stack.events.details] == [Status.FAILED]
    assert stack.keys("predictions/") == []  # no segment's work is left behind


# ------------------------------------------------------------------------------------------ outages


def test_an_endpoint_outage_fails_no_segment_while_its_message_can_wait(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(10, fps=10)))
    (task,) = stack.queue.tasks
    stack.predictor.fail_with = errors.EndpointUnavailable(errors.INFERENCE_UNAVAILABLE, "endpoint down")
    with pytest.raises(errors.EndpointUnavailable):
        stack.segment(task, final_attempt=True, outage_deferrable=True)
    assert stack.result().status == Status.PROCESSING
    assert stack.events.details == []
    stack.predictor.fail_with = None
    assert stack.segment(task).record is not None  # the deferred copy, once the endpoint is back


def test_an_endpoint_failure_past_the_queues_retention_is_recorded_on_the_last_delivery(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(10, fps=10)))
    (task,) = stack.queue.tasks
    stack.predictor.fail_with = errors.EndpointUnavailable(errors.INFERENCE_UNAVAILABLE, "endpoint down")
    with pytest.raises(errors.EndpointUnavailable):
        stack.segment(task, final_attempt=True, outage_deferrable=False)
    result = stack.result()
    assert (result.status, result.reason.code) == (Status.FAILED, errors.INFERENCE_UNAVAILABLE)  # type: ignore[union-attr]


def test_a_segment_out_of_time_is_retried_and_recorded_on_its_last_delivery(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(10, fps=10)))
    (task,) = stack.queue.tasks
    with pytest.raises(errors.TransientError, match="ran out of time"):
        stack.segment(task, deadline=0.0)
    assert stack.result().status == Status.PROCESSING
    with pytest.raises(errors.TransientError):
        stack.segment(task, deadline=0.0, final_attempt=True)
    assert stack.result().reason.code == errors.VIDEO_SEGMENT_TIMEOUT  # type: ignore[union-attr]


def test_segments_processed_in_a_random_order_with_duplicates_always_finish_once(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(40, fps=10)))
    tasks = list(stack.queue.tasks)
    deliveries = tasks * 2
    random.Random(7).shuffle(deliveries)
    outcomes = [stack.segment(task) for task in deliveries]
    assert sum(1 for o in outcomes if o.record is not None) == 1
    assert stack.result().video.frames == 20  # type: ignore[union-attr]
    assert len(stack.events.details) == 1


def test_two_writers_finishing_the_same_video_at_once_record_it_and_publish_once(stack: Stack) -> None:
    stack.plan(stack.upload(numbered_video(20, fps=10)))
    first, last = stack.queue.tasks
    stack.segment(first)
    videos = stack.deps.videos
    real_read, real_finish = videos.read, videos.finish
    complete: list[Any] = []

    def finish_once_seen(record: ResultRecord, **options: Any) -> Any:
        complete.append(real_read(record.result_id))  # every segment recorded, nothing finished yet
        return real_finish(record, **options)

    videos.finish = finish_once_seen  # type: ignore[method-assign]
    assert stack.segment(last).record is not None
    # A copy of the last segment that read the item at that moment finishes it a second time.
    videos.read = lambda result_id: complete[0]  # type: ignore[method-assign]
    again = stack.segment(last)
    assert again.record is None  # the store refused the second final write
    assert len(stack.events.details) == 1


def test_the_annotators_failure_reaches_the_segment_and_a_failed_segment_stops_its_thread() -> None:
    from s3kp_core.video_encode import PieceWriter
    from s3kp_core.video_processing import _Annotator

    def broken(image: Image.Image, predictions: Any, sent: Any) -> Image.Image:
        raise ValueError("cannot draw")

    frame = Image.new("RGB", (32, 32))
    failing = _Annotator(PieceWriter(fps=Fraction(5), size=(32, 32)), broken)
    failing.draw(frame, (), (32, 32))
    with pytest.raises(ValueError, match="cannot draw"):
        failing.finish()
    failing.close()

    working = _Annotator(PieceWriter(fps=Fraction(5), size=(32, 32)), lambda image, *_: image)
    for _ in range(3):
        working.draw(frame, (), (32, 32))
    working.close()  # the segment failed meanwhile: the thread ends without finishing the piece
    assert not working._thread.is_alive()
    assert working.piece == b""
