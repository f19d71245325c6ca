"""Videos (docs/videos.md): the video path per sampled frame against PyAV's own decode, and a long video
through the offline stack.

1. Per sampled frame, excluding inference: one segment of a camera-like H.264 video (High profile, CABAC,
   B-frames; generated now from the sample images, nothing downloaded) through the segment path itself
   (`video_processing._run_segment`: sample, convert, JPEG for the endpoint, draw, encode the annotated
   piece, gzip the frames' part; the endpoint answers at once with one 33-keypoint person, so drawing
   costs what it does) against the floor: PyAV decoding every frame of the segment with the same threading,
   which sampling must do (each sampled frame needs every frame before it). Interleaved, the median of the
   per-run ratios, at 1080p and 4K. Goal: ≤ 1.5×.
2. A 10-minute 1080p 30 fps video sampled at 5 fps (3,000 frames): a 10 s clip repeated by packet copy
   (no B-frames there, so the copies join end to end), uploaded to the offline stack with the local
   model server (faces/2) and two video workers (the template's MaximumConcurrency); the wall time from
   the upload to the recorded result, the time of each segment (its log line), and the time projected for
   AWS at MaximumConcurrency 10: the plan, then the segments in ceil(segments / 10) rounds of the slowest
   segment measured here (a 2048 MB function has about as much CPU as one of these cores; the endpoint's
   own latency is the hosted one's there, not the local server's).
"""

from __future__ import annotations

import io
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, cast

import av
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FLOOR_RUNS = 3
SAMPLED_FPS = Fraction(5)
LONG_VIDEO_MINUTES = float(os.environ.get("S3KP_BENCH_VIDEO_MINUTES", "10"))
PROJECTED_CONCURRENCY = 10
RATIO_GOAL = 1.5


def run() -> str:
    sections = [
        _floor_markdown([per_frame_vs_floor("1080p", 1920, 1080, 6), per_frame_vs_floor("4K", 3840, 2160, 3)])
    ]
    sections.append(_long_video_markdown(long_video_through_the_stack(LONG_VIDEO_MINUTES)))
    return "## Videos\n\n" + "\n\n".join(sections)


# --- the test videos ---------------------------------------------------------------------------------


def scene_frames(width: int, height: int, count: int) -> Iterator[Image.Image]:
    """A slow pan across the sample people, at `width`×`height`: motion, faces, camera-like texture."""
    from s3kp import samples

    people = samples.people_side_by_side()
    crop_width = min(people.width, round(people.height * width / height))
    crop_height = round(crop_width * height / width)
    for number in range(count):
        left = round((people.width - crop_width) * number / max(1, count - 1))
        top = (people.height - crop_height) // 2
        yield people.crop((left, top, left + crop_width, top + crop_height)).resize(
            (width, height), Image.Resampling.BILINEAR
        )


def camera_like_video(path: Path, width: int, height: int, seconds: float, *, b_frames: bool = True) -> None:
    """H.264 at 30 fps as a phone writes it (High profile, CABAC; B-frames unless told otherwise)."""
    with av.open(str(path), "w", format="mp4") as output:
        options = {"preset": "veryfast", "crf": "23", "g": "60"} | ({} if b_frames else {"bf": "0"})
        stream: Any = output.add_stream("libx264", rate=30, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for number, image in enumerate(scene_frames(width, height, round(seconds * 30))):
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]  # PyAV: no hints
            frame.pts = number
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)


def repeated(source: Path, times: int, target: Path) -> None:
    """`source` (no B-frames) `times` over by packet copy, each copy's timestamps moved past the last."""
    with av.open(str(target), "w", format="mp4") as output:
        out_stream: Any = None
        for copy in range(times):
            with av.open(str(source)) as container:
                stream = container.streams.video[0]
                if out_stream is None:
                    out_stream = output.add_stream_from_template(stream)
                assert stream.duration is not None
                shift = copy * stream.duration
                for packet in cast(Iterator[Any], container.demux(stream)):
                    if packet.dts is None:
                        continue
                    packet.pts += shift
                    packet.dts += shift
                    packet.stream = out_stream
                    output.mux(packet)


# --- 1. per sampled frame vs the decode floor ---------------------------------------------------------


def _video_processing_settings() -> Any:
    """The video function's defaults (as its settings declare them), drawing the pose skeleton."""
    for function in ("ingest", "video"):
        if str(ROOT / "functions" / function) not in sys.path:
            sys.path.insert(0, str(ROOT / "functions" / function))
    from video_settings import VideoSettings

    environment = {
        "MODEL_ID": "pose/1", "ROBOFLOW_API_KEY": "bench", "RESULTS_TABLE": "unused",
        "IDEMPOTENCY_TABLE": "unused", "SKELETON": "pose33",
    }  # fmt: skip
    return VideoSettings.from_environment(environment).video_processing_settings()


@dataclass
class FloorFigures:
    label: str
    size: tuple[int, int]
    samples: int
    decoded_frames: int
    floor_ms: float  # per sampled frame
    ours_ms: float
    ratio: float
    stages_ms: dict[str, float] = field(default_factory=dict)  # per sampled frame


class _Files:
    def __init__(self, path: Path) -> None:
        self._path = path

    @contextmanager
    def open(self, source: Any, size: int) -> Iterator[BinaryIO]:
        with self._path.open("rb") as handle:
            yield handle


class _Objects:
    """An object store that keeps what is written in memory (the segment's part and piece)."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> Any:
        raise NotImplementedError

    def get(self, bucket: str, key: str, **_: Any) -> bytes:
        return self.bodies[key]

    def put(self, bucket: str, key: str, body: bytes, **_: Any) -> None:
        self.bodies[key] = body

    def delete(self, bucket: str, key: str) -> None:
        self.bodies.pop(key, None)


class _InstantPose:
    """Answers at once with one person and 33 keypoints in the pixels of the JPEG it is sent."""

    def predict(
        self,
        jpeg: bytes,
        *,
        deadline: float | None = None,
        max_attempts: int | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> Any:
        from s3kp_core.predictor import InferenceResult
        from s3kp_core.results import Keypoint, Prediction
        from s3kp_core.skeletons import BUILT_IN

        width, height = Image.open(io.BytesIO(jpeg)).size
        names = BUILT_IN["pose33"].keypoint_names
        keypoints = tuple(
            Keypoint(x=width * (0.4 + 0.2 * (n % 5) / 4), y=height * (0.2 + 0.6 * n / 32), confidence=0.9,
                     class_id=n, name=name)
            for n, name in enumerate(names)
        )  # fmt: skip
        person = Prediction(x=width / 2, y=height / 2, width=width / 4, height=height * 0.7, confidence=0.9,
                            class_name="person", class_id=0, keypoints=keypoints)  # fmt: skip
        return InferenceResult((person,), width, height, None, 0.0, len(jpeg), 1, 0.0)


def per_frame_vs_floor(label: str, width: int, height: int, seconds: float) -> FloorFigures:
    from s3kp_core.results import SourceObject
    from s3kp_core.video_decode import probe
    from s3kp_core.video_processing import VideoCollaborators, _run_segment
    from s3kp_core.video_tasks import ProbeFacts, SegmentTask

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"{label}.mp4"
        camera_like_video(path, width, height, seconds)
        with path.open("rb") as handle:
            video = probe(handle, max_seconds=3600)
        samples = math.ceil(video.duration * SAMPLED_FPS)
        settings = _video_processing_settings()
        task = SegmentTask(
            source=SourceObject(bucket="b", key=f"incoming/{label}.mp4", size=path.stat().st_size),
            result_id="0" * 32, run="bench", order="t#bench", fingerprint=None, segment=0, segments=1,
            first=0, stop=samples, fps=str(SAMPLED_FPS), video=ProbeFacts.of(video),
            created_at=datetime.now(UTC),
        )  # fmt: skip
        deps = VideoCollaborators(
            sources=_Files(path), objects=cast(Any, _Objects()), predictor=_InstantPose(),
            results=cast(Any, None), videos=cast(Any, None), segments=cast(Any, None),
        )  # fmt: skip

        def floor() -> int:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                return sum(1 for _ in container.decode(stream))

        floor(), _run_segment(task, settings, deps, None)  # warm up
        floors, ours, ratios, stages = [], [], [], []
        decoded = 0
        for _ in range(FLOOR_RUNS):
            started = time.perf_counter()
            decoded = floor()
            floor_ms = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            outcome = _run_segment(task, settings, deps, None)
            ours_ms = (time.perf_counter() - started) * 1000
            assert outcome.frames == samples
            floors.append(floor_ms)
            ours.append(ours_ms)
            ratios.append(ours_ms / floor_ms)
            stages.append(outcome.timings_ms)
        return FloorFigures(
            label=label,
            size=(width, height),
            samples=samples,
            decoded_frames=decoded,
            floor_ms=statistics.median(floors) / samples,
            ours_ms=statistics.median(ours) / samples,
            ratio=statistics.median(ratios),
            stages_ms={
                stage: statistics.median(s.get(stage, 0.0) for s in stages) / samples
                for stage in ("decode", "encode", "draw", "video_encode", "put")
            },
        )


def _floor_markdown(figures: list[FloorFigures]) -> str:
    lines = [
        "### Videos: per sampled frame, excluding inference, vs PyAV's own decode",
        "",
        f"One segment of a 30 fps H.264 video (High, CABAC, B-frames) sampled at {SAMPLED_FPS} fps through "
        "the segment path (sample, convert, JPEG for the endpoint, draw a 33-keypoint person, encode the "
        "annotated piece, gzip the frames) vs PyAV decoding every frame of the segment (what sampling must "
        f"decode), same threading; interleaved, {FLOOR_RUNS} runs, median of the per-run ratios. "
        f"Goal: ≤ {RATIO_GOAL}×. *Drawing and H.264 run in a thread of their own, beside the decoding.",
        "",
        "| video | ours / floor | floor per sampled frame (ms) | ours (ms) | decode+convert / JPEG / draw* "
        "/ H.264* / put (ms) | samples (frames) |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for f in figures:
        stages = " / ".join(
            f"{f.stages_ms[stage]:.1f}" for stage in ("decode", "encode", "draw", "video_encode", "put")
        )
        size = f"{f.size[0]}×{f.size[1]}"
        lines.append(
            f"| {f.label} ({size}) | **{f.ratio:.2f}×** | {f.floor_ms:.1f} | {f.ours_ms:.1f} "
            f"| {stages} | {f.samples} ({f.decoded_frames}) |"
        )
    return "\n".join(lines)


# --- 2. a long video through the offline stack --------------------------------------------------------


@dataclass
class LongVideoFigures:
    minutes: float
    bytes: int
    frames: int
    segments: int
    wall_seconds: float
    plan_ms: float
    segment_ms: list[float]
    inference_ms_per_frame: float
    status: str
    concurrency: int


def long_video_through_the_stack(minutes: float) -> LongVideoFigures:
    import boto3
    import requests

    from benchmarks.servers import free_port
    from s3kp.local.stack import LocalStack, StackOptions

    saved = dict(os.environ)
    with tempfile.TemporaryDirectory() as scratch:
        clip, long = Path(scratch) / "clip.mp4", Path(scratch) / "long.mp4"
        camera_like_video(clip, 1920, 1080, 10, b_frames=False)
        repeated(clip, max(1, round(minutes * 6)), long)
        data = long.read_bytes()
        options = StackOptions(
            aws_port=free_port(), inference_port=free_port(), api_port=free_port(),
            log_dir=Path(scratch) / "logs",
        )  # fmt: skip
        stack = LocalStack(options, echo=lambda line: None, report_batches=False)
        try:
            stack.start()
            s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint, region_name="us-east-1")
            key = f"{stack.resources.input_prefix}bench/ten minutes.mp4"
            started = time.monotonic()
            s3.put_object(Bucket=stack.resources.bucket, Key=key, Body=data)
            result: dict[str, Any] = {}
            while time.monotonic() - started < 3 * 3600:
                call = requests.get(
                    f"{stack.api_url}/results/by-source",
                    params={"bucket": stack.resources.bucket, "key": key},
                    timeout=30,
                )
                if call.status_code == 200 and call.json()["status"] != "processing":
                    result = call.json()
                    break
                time.sleep(1)
            wall = time.monotonic() - started
            concurrency = len(stack.video_workers)
        finally:
            stack.stop()
            os.environ.clear()
            os.environ.update(saved)
        plans, segments, inference = _log_figures(options.log_dir / "video.log")
    video = result.get("video") or {}
    return LongVideoFigures(
        minutes=minutes,
        bytes=len(data),
        frames=int(video.get("frames", 0)),
        segments=int(video.get("segments", 0)),
        wall_seconds=wall,
        plan_ms=max(plans, default=0.0),
        segment_ms=segments,
        inference_ms_per_frame=inference,
        status=str(result.get("status", "no result")),
        concurrency=concurrency,
    )


def _log_figures(log: Path) -> tuple[list[float], list[float], float]:
    """From the video workers' log lines: each plan's and each segment's time, inference per frame."""
    plans, segments, inference, frames = [], [], 0.0, 0
    for line in log.read_text(encoding="utf-8").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("message") == "video planned":
            plans.append(float(entry["elapsed_ms"]))
        elif entry.get("message") == "segment processed" and entry.get("state") == "recorded":
            segments.append(float(entry["elapsed_ms"]))
            inference += float(entry.get("timings_ms", {}).get("inference", 0.0))
            frames += int(entry.get("frames", 0))
    return plans, segments, inference / frames if frames else 0.0


def projected_aws_seconds(figures: LongVideoFigures, concurrency: int = PROJECTED_CONCURRENCY) -> float:
    """The plan, then the segments in rounds of `concurrency`, each round as long as the slowest segment."""
    if not figures.segment_ms:
        return 0.0
    rounds = math.ceil(len(figures.segment_ms) / concurrency)
    return (figures.plan_ms + rounds * max(figures.segment_ms)) / 1000


def _long_video_markdown(f: LongVideoFigures) -> str:
    median = statistics.median(f.segment_ms) if f.segment_ms else 0.0
    slowest = max(f.segment_ms, default=0.0)
    minutes = f"{f.minutes:g}"
    return "\n".join(
        [
            f"### Videos: a {minutes}-minute 1080p 30 fps video at {SAMPLED_FPS} fps, offline stack",
            "",
            f"A 10 s 1080p clip repeated to {minutes} minutes ({f.bytes / 2**20:.0f} MB), uploaded to the "
            f"offline stack with the local model server (faces/2) and {f.concurrency} video workers "
            "(MaximumConcurrency); the projection for AWS runs the plan, then the segments in rounds of "
            f"{PROJECTED_CONCURRENCY} (MaxConcurrency 10), each round as long as the slowest segment here.",
            "",
            "| status | frames | segments | wall time here (upload → result) | plan "
            "| segment median / slowest | inference per frame "
            f"| projected in AWS at MaxConcurrency {PROJECTED_CONCURRENCY} |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            f"| {f.status} | {f.frames} | {f.segments} | **{f.wall_seconds:.0f} s** "
            f"| {f.plan_ms / 1000:.1f} s | {median / 1000:.0f} s / {slowest / 1000:.0f} s "
            f"| {f.inference_ms_per_frame:.0f} ms | **{projected_aws_seconds(f):.0f} s** |",
        ]
    )
