"""`make soak`'s videos: what each phase uploads besides images, and what a finished video must leave.

Each phase uploads, spread among its images (`SoakOptions.videos_per_phase`, the first N of):
1. a 5 s clip, several segments at the soak's `VIDEO_SEGMENT_SECONDS` (2 s: three segments, the last one
   finishing the video); in the flaky phase it is uploaded twice, as some images are;
2. a bad video that must end `failed` with its reason, by turns an image renamed `.mp4`
   (`video_undecodable`, refused by the planner) and a clip cut in half after its index
   (`video_truncated`, found by the segment that reaches the end of the data);
3. a 1.6 s clip: one segment.

The clips are made now from the sample images (`video_samples.sample_video`, as `s3kp demo` makes its
clip): nothing is downloaded. A succeeded video must have its annotated MP4 (naming its source) and its
frames document; every finished video, succeeded or failed, must have left no segment work behind
(`predictions/video-work/<result_id>/<run>/frames-NNNNN.jsonl.gz`, `piece-NNNNN.mp4`: the finisher deletes
them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

from s3kp_core import errors
from s3kp_core.video_processing import WORK_DIRECTORY

from s3kp import samples
from s3kp.local.soak_report import PlannedUpload

VIDEO_CONTENT_TYPE = "video/mp4"
SEGMENT_WORK = re.compile(r"/(frames-\d{5}\.jsonl\.gz|piece-\d{5}\.mp4)$")


@dataclass(frozen=True)
class SoakVideo:
    name: str
    make: Callable[[], bytes]
    seconds: float  # its length; 0 for a bad one
    expected_code: str | None = None  # a bad one's reason


@cache
def _clip(seconds: float) -> bytes:
    from s3kp.video_samples import sample_video  # PyAV: only when videos are uploaded

    return sample_video(seconds)


def _truncated() -> bytes:
    whole = _clip(4.0)
    return whole[: len(whole) // 2]  # the index is first (faststart): its header still says 4 s


LONG = SoakVideo("clip", lambda: _clip(5.0), 5.0)
SHORT = SoakVideo("short", lambda: _clip(1.6), 1.6)
BAD_VIDEOS = (
    SoakVideo("renamed", lambda: samples.sample_jpeg("astronaut"), 0.0, errors.VIDEO_UNDECODABLE),
    SoakVideo("truncated", _truncated, 0.0, errors.VIDEO_TRUNCATED),
)


def phase_videos(
    phase_index: int, count: int, *, prefix: str, duplicate_long: bool, segment_seconds: float
) -> list[PlannedUpload]:
    """The videos phase number `phase_index` uploads: the first `count` of long clip, bad, short clip."""
    bad = BAD_VIDEOS[phase_index % len(BAD_VIDEOS)]
    chosen = [LONG, bad, SHORT][:count]
    planned = []
    for video in chosen:
        key = f"{prefix}p{phase_index}-video-{video.name}.mp4"
        data = video.make()
        if video.expected_code is not None:
            planned.append(PlannedUpload(key, f"bad-video:{video.name}", data, "failed", video.expected_code,
                                         video=True))  # fmt: skip
        else:
            segments = max(1, math.ceil(video.seconds / segment_seconds))
            duplicate = duplicate_long and video is LONG
            planned.append(PlannedUpload(key, f"video:{video.name}", data, "succeeded", None, duplicate,
                                         video=True, segments=segments))  # fmt: skip
    return planned


def check_outputs(item: dict[str, Any], key: str, segments: int, s3: Any) -> list[str]:
    """What is wrong with a succeeded video's result: its segments, its annotated MP4, its frames document."""
    problems = []
    summary = item.get("video") or {}
    if item.get("media_type") != "video":
        problems.append(f"{key}: recorded as {item.get('media_type')!r}, not a video")
    if int(summary.get("segments", 0)) != segments:
        problems.append(f"{key}: {summary.get('segments')} segments, expected {segments}")
    annotated = item.get("annotated") or {}
    try:
        head = s3.head_object(Bucket=annotated["bucket"], Key=annotated["key"])
    except Exception as error:
        problems.append(f"{key}: its annotated MP4 is missing ({type(error).__name__})")
    else:
        if head.get("ContentType") != VIDEO_CONTENT_TYPE or not annotated["key"].endswith(".mp4"):
            problems.append(f"{key}: its annotated copy is not an MP4 ({head.get('ContentType')})")
        if head["Metadata"].get("source-key") != quote(key, safe="/"):
            problems.append(f"{key}: its annotated MP4 names another source")
    frames = summary.get("frames_ref") or {}
    try:
        s3.head_object(Bucket=frames["bucket"], Key=frames["key"])
    except Exception as error:
        problems.append(f"{key}: its frames document is missing ({type(error).__name__})")
    return problems


def segment_work_left(s3: Any, bucket: str, predictions_prefix: str, result_id: str) -> list[str]:
    """The segment parts and pieces still stored for this result, whatever run wrote them."""
    left = []
    paginator = s3.get_paginator("list_objects_v2")
    prefix = f"{predictions_prefix}{WORK_DIRECTORY}{result_id}/"
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        left += [entry["Key"] for entry in page.get("Contents", []) if SEGMENT_WORK.search(entry["Key"])]
    return left
