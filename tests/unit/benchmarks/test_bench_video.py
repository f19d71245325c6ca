"""The video benchmark's own arithmetic (benchmarks/bench_video.py): the repeated long video plays on
without a gap, and the AWS projection counts rounds of MaxConcurrency segments."""

from __future__ import annotations

import itertools
from pathlib import Path

import av

from benchmarks.bench_video import LongVideoFigures, camera_like_video, projected_aws_seconds, repeated


def test_a_clip_repeated_by_packet_copy_is_one_video_whose_timestamps_keep_advancing(tmp_path: Path) -> None:
    clip, long = tmp_path / "clip.mp4", tmp_path / "long.mp4"
    camera_like_video(clip, 64, 48, 1, b_frames=False)
    repeated(clip, 3, long)
    with av.open(str(long)) as container:
        times = [frame.time for frame in container.decode(video=0)]
    assert len(times) == 90
    assert all(later > earlier for earlier, later in itertools.pairwise(times))
    assert times[-1] == 89 / 30


def test_the_projection_is_the_plan_then_rounds_of_the_slowest_segment() -> None:
    figures = LongVideoFigures(
        minutes=10, bytes=1, frames=3000, segments=11, wall_seconds=1.0, plan_ms=2000.0,
        segment_ms=[30_000.0] * 10 + [45_000.0], inference_ms_per_frame=1.0, status="succeeded",
        concurrency=2,
    )  # fmt: skip
    assert projected_aws_seconds(figures, concurrency=10) == 2 + 2 * 45
    assert projected_aws_seconds(figures, concurrency=11) == 2 + 45
