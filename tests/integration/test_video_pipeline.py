"""The video Lambda end to end on real local servers: moto (S3 -> SQS, DynamoDB, Secrets Manager, events)
created from template.yaml, the project's inference server behind the counting proxy of
test_ingest_pipeline.py, and the handler invoked in-process with the SQS events the bucket notification
and the planner's fan-out put on the video queue.
"""

from __future__ import annotations

import gzip
import importlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import av
import boto3
import pytest
from s3kp_core.fingerprint import inference_fingerprint
from s3kp_core.results import result_id_for

from s3kp import samples
from s3kp.local.lambda_runtime import LambdaContext, failed_message_ids, sqs_event
from s3kp.local.resources import LocalResources, create_resources, video_environment
from s3kp.video_samples import audio_only_mp4, sample_video
from tests.conftest import MODEL_SERVER_API_KEY, ROOT
from tests.integration.test_ingest_pipeline import Fault, InferenceProxy

MODEL_ID = "faces/2"
HANDLER_MODULES = (
    "video_handler",
    "video_dependencies",
    "video_settings",
    "ingest_settings",
    "s3_events",
    "sqs_retries",
)


@dataclass
class VideoStack:
    resources: LocalResources
    handler: ModuleType
    proxy: InferenceProxy

    def __post_init__(self) -> None:
        self.s3 = boto3.client("s3")
        self.sqs = boto3.client("sqs")
        self.table = boto3.resource("dynamodb").Table(self.resources.results_table)

    def upload(self, name: str, data: bytes) -> str:
        key = f"{self.resources.input_prefix}{name}"
        self.s3.put_object(Bucket=self.resources.bucket, Key=key, Body=data)
        return key

    def receive(self, queue_url: str | None = None, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Every message visible on the video queue now (waiting up to `timeout` for the first)."""
        queue_url = queue_url or self.resources.video_queue_url
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = self.sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            messages += batch
            if messages and not batch:
                break
            if not batch:
                time.sleep(0.1)
        return messages

    def invoke(self, message: dict[str, Any], timeout_seconds: float = 900.0) -> set[str]:
        """One message, one invocation (the template's BatchSize 1); the ids reported failed."""
        event = sqs_event([message], self.resources.video_queue_arn)
        response = self.handler.lambda_handler(event, LambdaContext(timeout_seconds=timeout_seconds))
        failed = failed_message_ids(response)
        if not failed:
            self.sqs.delete_message(
                QueueUrl=self.resources.video_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        return failed

    def run_until_quiet(self, limit: int = 50) -> int:
        """Invoke the handler on each message until the queue is empty; how many invocations ran."""
        invocations = 0
        while invocations < limit:
            messages = self.receive(timeout=1.0)
            if not messages:
                return invocations
            for message in messages:
                self.invoke(message)
                invocations += 1
        raise AssertionError(f"the video queue did not empty after {limit} invocations")

    def receive_watch(self, timeout: float = 15.0) -> dict[str, Any]:
        """The first segment watch on the video queue (other messages seen meanwhile are left to reappear)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.receive(timeout=1.0):
                if json.loads(message["Body"]).get("watch"):
                    return message
        raise AssertionError(f"no segment watch on the video queue within {timeout} s")

    def result(self, key: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"result_id": result_id_for(self.resources.bucket, key)}).get("Item")
        return json.loads(json.dumps(item, default=float)) if item else None

    def body(self, ref: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        response = self.s3.get_object(Bucket=ref["bucket"], Key=ref["key"])
        return response["Body"].read(), response


@pytest.fixture(scope="module")
def proxy(model_server_url: str) -> Iterator[InferenceProxy]:
    server = InferenceProxy(model_server_url)
    yield server
    server.close()


StackFactory = Callable[..., VideoStack]


@pytest.fixture
def video_stack(
    fresh_aws: str, proxy: InferenceProxy, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StackFactory]:
    """Resources from the template and the handler (re)imported with its environment, as on a cold start."""

    def build(**overrides: str) -> VideoStack:
        from aws_lambda_powertools.utilities import parameters

        resources = create_resources(fresh_aws, api_key=MODEL_SERVER_API_KEY, visibility_timeout=30)
        environment = video_environment(resources, inference_url=proxy.url, model_id=MODEL_ID, **overrides)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        parameters.clear_caches()
        for name in HANDLER_MODULES:
            sys.modules.pop(name, None)
        handler = importlib.import_module("video_handler")
        proxy.faults.clear()
        proxy.requests.clear()
        return VideoStack(resources, handler, proxy)

    yield build
    for name in HANDLER_MODULES:
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def clip() -> bytes:
    """The demo's clip: four seconds at 10 fps, 640x360, two people then four faces."""
    return sample_video()


def test_an_uploaded_video_is_split_into_segments_and_merged_into_one_result(
    video_stack: StackFactory, clip: bytes, tmp_path: Path
) -> None:
    stack = video_stack(VIDEO_SEGMENT_SECONDS="2")
    key = stack.upload("clips/demo clip.MP4", clip)  # upper case: the notification filters both spellings

    (notification,) = stack.receive()
    assert stack.invoke(notification) == set()
    processing = stack.result(key)
    assert processing is not None
    assert (processing["status"], processing["media_type"]) == ("processing", "video")
    assert processing["video"]["segments"] == 2
    assert stack.run_until_quiet() == 2  # one invocation per segment

    result = stack.result(key)
    assert result is not None
    assert result["status"] == "succeeded"
    video = result["video"]
    assert (video["frames"], video["fps_sampled"], video["width"], video["height"]) == (20, 5, 640, 360)
    assert result["counts"]["face"] >= 20  # two people, then four faces, on every sampled frame
    assert len(stack.proxy.requests) == 20

    frames_data, frames_object = stack.body(video["frames_ref"])
    lines = [json.loads(line) for line in gzip.decompress(frames_data).splitlines()]
    assert [(line["frame"], line["time_seconds"]) for line in lines] == [(k, k / 5) for k in range(20)]
    assert all(len(line["predictions"]) >= 2 for line in lines)
    assert frames_object["ContentType"] == "application/x-ndjson"

    mp4, mp4_object = stack.body(result["annotated"])
    assert mp4_object["ContentType"] == "video/mp4"
    assert result["annotated"]["key"].startswith("annotated/clips/demo clip.MP4.")
    path = tmp_path / "annotated.mp4"
    path.write_bytes(mp4)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        assert sum(1 for _ in container.decode(stream)) == 20
    assert mp4.find(b"moov") < mp4.find(b"mdat")  # the index first: a browser plays it while it loads


def test_bad_videos_are_recorded_failed_with_their_reason_and_their_messages_deleted(
    video_stack: StackFactory,
) -> None:
    stack = video_stack()
    keys = {
        stack.upload("renamed photo.mp4", samples.sample_jpeg("astronaut")): "video_undecodable",
        stack.upload("voice memo.m4v", audio_only_mp4()): "video_no_stream",
        stack.upload("empty.webm", b""): "object_empty",
    }
    for message in stack.receive():
        assert stack.invoke(message) == set()
    for key, code in keys.items():
        result = stack.result(key)
        assert result is not None
        assert (result["status"], result["reason"]["code"], result["media_type"]) == ("failed", code, "video")
    assert stack.receive(timeout=0.5) == []
    assert stack.proxy.requests == []


def test_images_and_videos_reach_their_own_queues(video_stack: StackFactory, clip: bytes) -> None:
    stack = video_stack()
    stack.upload("photo.jpg", samples.sample_jpeg("astronaut"))
    stack.upload("clip.mov", clip)
    (video,) = stack.receive()
    assert json.loads(video["Body"])["Records"][0]["s3"]["object"]["key"].endswith("clip.mov")
    (image,) = stack.receive(stack.resources.queue_url)
    assert json.loads(image["Body"])["Records"][0]["s3"]["object"]["key"].endswith("photo.jpg")


def test_a_segment_waits_out_an_endpoint_outage_and_is_processed_when_it_is_back(
    video_stack: StackFactory, clip: bytes
) -> None:
    """503s on every attempt: the segment is deferred (a delayed copy, the original deleted), never failed
    and never recorded; the copy, once the endpoint answers, finishes the video."""
    stack = video_stack(INFERENCE_MAX_ATTEMPTS="1", CIRCUIT_PROBE_SECONDS="1", OUTAGE_MAX_DEFER_SECONDS="1")
    key = stack.upload("outage.mp4", clip)
    (notification,) = stack.receive()
    stack.invoke(notification)
    (task,) = stack.receive()
    stack.proxy.faults.append(Fault(status=503))
    assert stack.invoke(task) == set()  # deferred: reported done, a copy sent with a delay
    assert stack.result(key)["status"] == "processing"  # type: ignore[index]
    time.sleep(2.5)  # the deferral and the next probe (1 s each)
    stack.run_until_quiet()
    result = stack.result(key)
    assert result is not None
    assert result["status"] == "succeeded"


class KilledInvocation(BaseException):
    """Stands for Lambda killing the invocation (its memory limit, a crash in native code): no `except
    Exception` of ours, nor Powertools', runs, so the segment's idempotency record stays in progress."""


def test_a_segment_killed_on_its_last_delivery_is_recorded_failed_by_its_watch(
    video_stack: StackFactory, clip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = video_stack(MAX_RECEIVE_COUNT="1")  # every delivery is the last
    monkeypatch.setattr(stack.handler, "LEASE_MARGIN_SECONDS", 0)  # the watch is due when the invocation ends
    key = stack.upload("killed.mp4", clip)
    (notification,) = stack.receive()
    stack.invoke(notification)
    (task,) = stack.receive()

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise KilledInvocation

    monkeypatch.setattr(stack.handler, "process_segment", killed)
    with pytest.raises(KilledInvocation):
        stack.invoke(task, timeout_seconds=2)
    assert stack.result(key)["status"] == "processing"  # type: ignore[index]

    watch = stack.receive_watch()
    assert stack.invoke(watch) == set()

    result = stack.result(key)
    assert result is not None
    assert (result["status"], result["reason"]["code"]) == ("failed", "video_segment_crashed")
    assert "killed" in result["reason"]["message"]


def test_a_watch_that_arrives_while_its_segment_still_runs_waits_for_it(
    video_stack: StackFactory, clip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery that outlives its watch's delay (SQS delays at most 900 s) is not taken for a killed one."""
    stack = video_stack(MAX_RECEIVE_COUNT="1")
    monkeypatch.setattr(stack.handler, "SQS_MAX_DELAY_SECONDS", 1)  # the watch is due before the deadline
    key = stack.upload("slow.mp4", clip)
    (notification,) = stack.receive()
    stack.invoke(notification)
    (task,) = stack.receive()
    real_process_segment = stack.handler.process_segment
    watches: list[set[str]] = []

    def meanwhile_the_watch_arrives(*args: Any, **kwargs: Any) -> Any:
        watch = stack.receive_watch()
        watches.append(stack.invoke(watch))  # nested: the segment's record is in progress
        return real_process_segment(*args, **kwargs)

    monkeypatch.setattr(stack.handler, "process_segment", meanwhile_the_watch_arrives)
    assert stack.invoke(task, timeout_seconds=6) == set()

    assert watches == [set()]  # deferred (a delayed copy), not failed
    assert stack.result(key)["status"] == "succeeded"  # type: ignore[index]
    copy = stack.receive_watch()  # due when the segment's in-progress record would have expired
    assert stack.invoke(copy) == set()
    assert stack.result(key)["status"] == "succeeded"  # type: ignore[index]


def backfill_cli(stack: VideoStack, prefix: str, *options: str) -> dict[str, Any]:
    """`s3kp backfill` as a user runs it against the local stack: it finds the queues and the table."""
    url = f"s3://{stack.resources.bucket}/{stack.resources.input_prefix}{prefix}"
    command = [sys.executable, "-m", "s3kp.cli", "backfill", url, "--endpoint-url",
               stack.resources.endpoint_url, "--json", *options]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_after_a_video_fps_change_reprocess_sends_the_video_once_and_it_is_sampled_at_the_new_rate(
    video_stack: StackFactory, clip: bytes
) -> None:
    """A video's fingerprint covers VideoFps: `--reprocess` finds the video done at the old rate, and the
    replay is a new unit of work for the planner's idempotency (not a duplicate of the first upload)."""
    settings = {"confidence": 0.4, "overlap": 0.3, "max_side_for_inference": 1024}
    at_5 = inference_fingerprint(MODEL_ID, **settings, video_fps=5)
    at_2 = inference_fingerprint(MODEL_ID, **settings, video_fps=2)
    old = video_stack()  # the template's VideoFps: 5
    key = old.upload("clips/walk.mp4", clip)
    assert old.run_until_quiet() == 2  # the plan, one segment
    first = old.result(key)
    assert first is not None
    assert (first["fingerprint"], first["video"]["frames"]) == (at_5, 20)
    # What backfill computes by default is what the stack records: nothing to reprocess.
    current = backfill_cli(old, "clips/", "--reprocess", "--model-id", MODEL_ID)
    assert (current["sent"], current["video_fingerprint"]) == (0, at_5)
    assert current["skipped"] == {"has a result with the current fingerprint (--reprocess)": 1}

    new = video_stack(VIDEO_FPS="2")  # redeployed with VideoFps 2 (same moto state)
    sent = backfill_cli(new, "clips/", "--reprocess", "--model-id", MODEL_ID, "--video-fps", "2")
    assert (sent["sent"], sent["videos"], sent["video_fingerprint"]) == (1, 1, at_2)
    assert new.run_until_quiet() == 2
    result = new.result(key)
    assert result is not None
    assert (result["status"], result["fingerprint"]) == ("succeeded", at_2)
    assert (result["video"]["frames"], result["video"]["fps_sampled"]) == (8, 2)
    assert len(new.proxy.requests) == 8
    assert result["created_at"] == first["created_at"]  # the same result, replaced
    assert backfill_cli(new, "clips/", "--reprocess", "--model-id", MODEL_ID, "--video-fps", "2")["sent"] == 0


def test_a_duplicate_notification_during_planning_waits_for_the_planners_deadline_not_the_retry_cap(
    video_stack: StackFactory, clip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same S3 event twice, the copy arriving while the first is still planning: the copy is deferred
    until the first's in-progress record would expire (its invocation's deadline), not RETRY_MAX_DELAY."""
    stack = video_stack(RETRY_MAX_DELAY_SECONDS="300")
    stack.upload("twice.mp4", clip)
    (notification,) = stack.receive()
    real_plan_video = stack.handler.plan_video
    deferred: list[float | None] = []
    real_defer_duplicate = stack.handler.defer_duplicate

    def recording_defer_duplicate(visibility: Any, record: Any, seconds_left: Any, settings: Any) -> bool:
        deferred.append(seconds_left)
        return bool(real_defer_duplicate(visibility, record, seconds_left, settings))

    def meanwhile_the_copy_arrives(*args: Any, **kwargs: Any) -> Any:
        copy = dict(notification, MessageId="copy-of-the-event")
        assert stack.handler.lambda_handler(
            sqs_event([copy], stack.resources.video_queue_arn), LambdaContext(timeout_seconds=60)
        ) == {"batchItemFailures": []}
        return real_plan_video(*args, **kwargs)

    monkeypatch.setattr(stack.handler, "defer_duplicate", recording_defer_duplicate)
    monkeypatch.setattr(stack.handler, "plan_video", meanwhile_the_copy_arrives)
    assert stack.invoke(notification, timeout_seconds=20) == set()

    (seconds_left,) = deferred
    assert seconds_left is not None
    assert 0 < seconds_left <= 20
