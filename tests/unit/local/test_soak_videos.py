"""`make soak`'s videos: what each phase uploads (made now from the sample images), what a finished video
must have left in S3, and which worker the soak kills (one whose batch is leased, so it comes back)."""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import pytest
from s3kp_core import errors
from s3kp_core.video_decode import probe
from s3kp_core.video_plan import plan_segments

from s3kp.local import soak
from s3kp.local.soak_videos import phase_videos, segment_work_left

PREFIX = "incoming/soak-x/"


def test_each_phase_uploads_a_clip_of_several_segments_a_bad_video_and_a_one_segment_clip() -> None:
    flaky, storm = (
        phase_videos(index, 3, prefix=PREFIX, duplicate_long=index == 0, segment_seconds=2)
        for index in range(2)
    )

    assert [(v.kind, v.expected_status, v.expected_code, v.segments, v.duplicate) for v in flaky] == [
        ("video:clip", "succeeded", None, 3, True),
        ("bad-video:renamed", "failed", errors.VIDEO_UNDECODABLE, 0, False),
        ("video:short", "succeeded", None, 1, False),
    ]
    assert [(v.kind, v.expected_code, v.duplicate) for v in storm][:2] == [
        ("video:clip", None, False),
        ("bad-video:truncated", errors.VIDEO_TRUNCATED, False),  # the bad one changes by turns
    ]
    assert all(v.video and v.key.startswith(PREFIX) and v.key.endswith(".mp4") for v in flaky + storm)
    assert len({v.key for v in flaky + storm}) == 6
    assert [v.kind for v in phase_videos(0, 2, prefix=PREFIX, duplicate_long=False, segment_seconds=2)] == [
        "video:clip",
        "bad-video:renamed",
    ]


@pytest.mark.parametrize("index", [0, 2])
def test_the_segments_a_clip_is_expected_to_have_are_those_the_video_function_plans(index: int) -> None:
    clip = phase_videos(0, 3, prefix=PREFIX, duplicate_long=False, segment_seconds=2)[index]
    video = probe(io.BytesIO(clip.data), max_seconds=1800, max_pixels=10**8)

    assert len(plan_segments(video.duration, Fraction(5), Fraction(2))) == clip.segments


class Listing:
    """An S3 client that lists these keys (the only call `segment_work_left` makes)."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        keys = self.keys

        class Paginator:
            def paginate(self, *, Bucket: str, Prefix: str) -> list[dict[str, Any]]:
                return [{"Contents": [{"Key": key} for key in keys if key.startswith(Prefix)]}]

        return Paginator()


def test_segment_work_is_each_segments_part_and_piece_of_any_run_not_the_finished_outputs() -> None:
    s3 = Listing(
        [
            "predictions/abc/run1/frames.jsonl.gz",  # the frames document: kept
            "predictions/video-work/abc/run1/frames-00000.jsonl.gz",
            "predictions/video-work/abc/run2/piece-00002.mp4",
            "predictions/video-work/abd/run1/piece-00000.mp4",  # another result
        ]
    )

    assert segment_work_left(s3, "bucket", "predictions/", "abc") == [
        "predictions/video-work/abc/run1/frames-00000.jsonl.gz",
        "predictions/video-work/abc/run2/piece-00002.mp4",
    ]


class FakeWorker:
    def __init__(self, pid: int, invocations: int, busy: bool = True) -> None:
        self.pid, self.invocations, self.busy = pid, invocations, busy


class FakeStack:
    def __init__(self, *workers: FakeWorker) -> None:
        self.ingest_workers = workers


def test_the_worker_killed_is_a_warm_one_busy_long_enough_to_have_leased_its_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    killed: list[int] = []
    monkeypatch.setattr(soak.os, "kill", lambda pid, signal: killed.append(pid))
    cold, warm = FakeWorker(101, invocations=0), FakeWorker(202, invocations=3)

    said = soak._kill_a_busy_worker(FakeStack(cold, warm), wait=2.0, busy_for=0.2)  # type: ignore[arg-type]

    assert killed == [202]
    assert said == "killed ingest worker 1 (pid 202) in the middle of a batch"
    # A cold sandbox's first invocation may still be setting up, before its lease: never killed.
    killed.clear()
    said = soak._kill_a_busy_worker(FakeStack(cold), wait=0.5, busy_for=0.2)  # type: ignore[arg-type]
    assert (killed, said) == ([], "no worker was busy when the kill was due")
