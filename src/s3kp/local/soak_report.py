"""What `make soak` runs (its options and phases) and what it reports: the figures, the targets each run
must meet, the tables it prints and the block it writes into docs/benchmarks.md. `soak` runs it."""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from s3kp.local.fault_proxy import TRANSIENT_FAULTS

FLAKY = "flaky"
STORM = "429 storm"
OUTAGE = "outage"
REFUSED_KEY = "401"


@dataclass(frozen=True)
class SoakOptions:
    uploads: int = 300  # in all; the flaky phase gets what the later phases leave
    rate_per_second: float = 1.25  # the flaky phase's pace
    duplicate_rate: float = 0.10  # images whose upload is repeated (same bytes: a duplicate event)
    bad_rate: float = 0.08
    fault_rate: float = 0.30
    slow_rate: float = 0.08
    seed: int = 8
    kill_worker_at: float = 0.4  # fraction of the flaky phase's uploads after which a busy worker is killed
    storm_seconds: float = 120.0  # 0: no storm
    storm_rate: float = 1 / 3  # uploads per second during it (40 in two minutes, as in issue 19)
    storm_retry_after: int = 5
    outage_seconds: float = 600.0  # 0: no outage
    outage_rate: float = 0.2
    refused_key_seconds: float = 120.0  # 0: no 401 phase
    refused_key_rate: float = 1 / 3
    settle_timeout: float = 300.0  # after a phase, for every result so far before the next phase starts
    result_timeout: float = 600.0  # after the last phase, for every result to appear
    drain_timeout: float = 300.0  # then for the queue to empty (deferred messages included)
    latency_target: float = 120.0  # p95 upload→result of the flaky phase
    recovery_target: float = 180.0  # outage: recovery → the last result of the uploads made until then
    outage_requests_per_minute: int = 6  # in each whole minute of the outage (all of it if shorter)
    ingest_timeout_seconds: float | None = None  # the template's 120 s unless shortened (fast drills)
    retry_base_delay_seconds: float | None = None  # the template's 15 s unless shortened
    retry_max_delay_seconds: float | None = None  # the template's 300 s unless shortened
    circuit_probe_seconds: float | None = None  # the template's 15 s unless shortened
    outage_max_defer_seconds: float | None = None  # the template's 60 s unless shortened
    concurrency: int | None = None
    videos_per_phase: int = 3  # a clip of several segments, a bad video, a one-segment clip (soak_videos)
    video_segment_seconds: float = 2.0  # VIDEO_SEGMENT_SECONDS (the template's 60): the 5 s clip is 3
    duplicate_video: bool = True  # the flaky phase's long clip is uploaded twice (a duplicate event)


@dataclass(frozen=True)
class PhaseSpec:
    name: str
    endpoint: str  # what the endpoint does meanwhile, for people
    uploads: int  # images and bad image files
    seconds: float  # how long the endpoint behaves so; the uploads are spread evenly over it
    videos: int = 0  # besides the uploads: clips and bad videos (soak_videos)


def plan_phases(options: SoakOptions) -> list[PhaseSpec]:
    """The phases in order; those given 0 seconds are left out. The flaky phase gets what is left."""
    later = [
        (
            STORM,
            f"90% 429 Retry-After: {options.storm_retry_after}",
            options.storm_seconds,
            options.storm_rate,
        ),
        (OUTAGE, "connection refused (nothing listens)", options.outage_seconds, options.outage_rate),
        (
            REFUSED_KEY,
            "401 to every request (a rotated key)",
            options.refused_key_seconds,
            options.refused_key_rate,
        ),
    ]
    videos = options.videos_per_phase
    if not 0 <= videos <= 3:
        raise ValueError(f"videos per phase: 0 to 3 (a long clip, a bad video, a short clip), got {videos}")
    if videos and not 1 <= options.video_segment_seconds <= 3600:  # VIDEO_SEGMENT_SECONDS' range
        raise ValueError(f"the video segment length must be 1 to 3600 s, got {options.video_segment_seconds}")
    phases = [
        PhaseSpec(name, endpoint, round(seconds * rate), seconds, videos)
        for name, endpoint, seconds, rate in later
        if seconds > 0
    ]
    flaky = options.uploads - sum(spec.uploads for spec in phases)
    if flaky < 1:
        raise ValueError(
            f"{options.uploads} uploads are not enough: the storm, outage and 401 phases take "
            f"{options.uploads - flaky} (shorten them, or lower their rates)"
        )
    endpoint = f"{options.fault_rate:.0%} transient faults, {options.slow_rate:.0%} slow"
    return [PhaseSpec(FLAKY, endpoint, flaky, flaky / options.rate_per_second, videos), *phases]


@dataclass(frozen=True)
class PlannedUpload:
    """One object to upload and what it must end as."""

    key: str
    kind: str  # a sample name, "bad:<name>", "video:<name>" or "bad-video:<name>"
    data: bytes
    expected_status: str
    expected_code: str | None
    duplicate: bool = False  # uploaded twice: S3 sends a second event for the same object
    video: bool = False
    segments: int = 0  # a good video's segments


@dataclass
class Upload:
    key: str
    kind: str  # a sample name, "bad:<name>", "video:<name>" or "bad-video:<name>"
    expected_status: str
    expected_code: str | None
    uploaded_at: float  # epoch seconds of the first put
    phase: str = FLAKY
    duplicated: bool = False
    video: bool = False
    segments: int = 0  # a good video's segments


@dataclass
class PhaseFigures:
    spec: PhaseSpec
    started_at: float = 0.0  # epoch: the endpoint began to behave so
    ended_at: float = 0.0  # epoch: it was back to the flaky mix (the recovery)
    requests: int = 0  # endpoint requests (while down: connection attempts) in between
    per_minute: list[int] = field(default_factory=list)  # the same, per whole minute from the start
    counted: str = "requests the proxy answered"
    cross_check: str = ""  # another count of the same, where there is one
    recovery_to_last: float | None = None  # seconds from the end to the last result (see `recovery_to_last`)
    succeeded: int = 0
    images: int = 0
    latencies: list[float] = field(default_factory=list)
    videos: int = 0  # good videos uploaded during it
    videos_succeeded: int = 0
    bad_videos: int = 0
    bad_videos_failed: int = 0  # with their reason
    video_latencies: list[float] = field(default_factory=list)
    video_recovery_to_last: float | None = None  # as recovery_to_last, for its videos only
    video_attempts: int | None = None  # outage: the endpoint attempts the video workers logged

    @property
    def seconds(self) -> float:
        return self.ended_at - self.started_at

    def percentile(self, fraction: float) -> float | None:
        return percentile(self.latencies, fraction)


def recovery_to_last(
    figures: PhaseFigures, uploads: Iterable[Upload], finished: Mapping[str, float]
) -> float | None:
    """Seconds from the end of the phase to the last result of the uploads still waiting during it: its
    own, and earlier ones whose result came after it began. None when one of its own has no result (an
    earlier upload without one is reported as missing on its own)."""
    last = figures.ended_at
    for upload in uploads:
        if upload.uploaded_at >= figures.ended_at:
            continue
        done = finished.get(upload.key)
        if done is None:
            if upload.phase == figures.spec.name:
                return None
            continue
        if done >= figures.started_at:
            last = max(last, done)
    return last - figures.ended_at


def per_minute(times: Iterable[float], start: float, end: float) -> list[int]:
    """How many of `times` fall in each whole minute from `start` (a last part-minute is left out)."""
    buckets = [0] * int((end - start) // 60)
    for moment in times:
        index = math.floor((moment - start) / 60)
        if 0 <= index < len(buckets):
            buckets[index] += 1
    return buckets


@dataclass(frozen=True)
class Target:
    what: str
    measured: str
    met: bool


@dataclass
class SoakReport:
    uploads: list[Upload]
    phases: list[PhaseFigures] = field(default_factory=list)
    states: Counter[str] = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    endpoint_failures: list[str] = field(default_factory=list)  # failed with an inference_* reason
    latencies: list[float] = field(default_factory=list)
    dlq_depth: int = 0
    queue_left: int = 0
    video_dlq_depth: int = 0
    video_queue_left: int = 0
    video_states: Counter[str] = field(default_factory=Counter)  # "succeeded", "failed video_truncated", …
    video_latencies: list[float] = field(default_factory=list)
    video_frames: dict[str, int] = field(default_factory=dict)  # frames each succeeded video sampled
    work_left: list[str] = field(default_factory=list)  # segment parts and pieces of finished videos
    inference_requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    killed_worker: str = "no worker was busy when the kill was due"
    crashed_batches: int = 0
    duration_seconds: float = 0.0
    circuit_changes: list[str] = field(default_factory=list)  # as `s3kp up` prints them, with the time
    log_dir: str = ""

    @property
    def images(self) -> int:
        return sum(1 for upload in self.uploads if upload.expected_status == "succeeded" and not upload.video)

    @property
    def videos(self) -> list[Upload]:
        return [upload for upload in self.uploads if upload.video]

    def phase(self, name: str) -> PhaseFigures | None:
        return next((figures for figures in self.phases if figures.spec.name == name), None)

    def targets(self, options: SoakOptions) -> list[Target]:
        found = [
            Target("nothing missing", str(len(self.missing)), not self.missing),
            Target("nothing wrong", str(len(self.wrong)), not self.wrong),
            Target(
                "0 failed for endpoint reasons", str(len(self.endpoint_failures)), not self.endpoint_failures
            ),
            Target(
                "dead-letter queues empty (ingest, video)",
                f"{self.dlq_depth}, {self.video_dlq_depth}",
                self.dlq_depth == 0 and self.video_dlq_depth == 0,
            ),
        ]
        flaky = self.phase(FLAKY)
        p95 = flaky.percentile(0.95) if flaky else None
        found.append(
            Target(
                f"flaky: p95 upload→result < {options.latency_target:.0f} s",
                seconds(p95),
                p95 is not None and p95 < options.latency_target,
            )
        )
        outage = self.phase(OUTAGE)
        if outage is not None:
            busiest = max(outage.per_minute, default=outage.requests)
            average = outage.requests / (outage.seconds / 60) if outage.seconds > 0 else 0.0
            found += [
                Target(
                    f"outage: ≤ {options.outage_requests_per_minute} endpoint requests in any minute",
                    f"at most {busiest} (on average {average:.1f})",
                    busiest <= options.outage_requests_per_minute,
                ),
                Target(
                    f"outage: all done ≤ {options.recovery_target:.0f} s after recovery",
                    seconds(outage.recovery_to_last),
                    outage.recovery_to_last is not None
                    and outage.recovery_to_last <= options.recovery_target,
                ),
            ]
        for name, what in (
            (STORM, "429 storm: its images succeeded"),
            (REFUSED_KEY, "401: its images succeeded"),
        ):
            figures = self.phase(name)
            if figures is not None:
                found.append(
                    Target(
                        what, f"{figures.succeeded} of {figures.images}", figures.succeeded == figures.images
                    )
                )
        if self.videos:
            found += self._video_targets()
        return found

    def _video_targets(self) -> list[Target]:
        good = [figures for figures in self.phases if figures.videos]
        bad = [figures for figures in self.phases if figures.bad_videos]
        return [
            Target(
                "videos: every clip succeeded, in every phase",
                ", ".join(f"{f.spec.name} {f.videos_succeeded} of {f.videos}" for f in good) or "none",
                all(f.videos_succeeded == f.videos for f in good),
            ),
            Target(
                "videos: every bad one failed with its reason",
                f"{sum(f.bad_videos_failed for f in bad)} of {sum(f.bad_videos for f in bad)}",
                all(f.bad_videos_failed == f.bad_videos for f in bad),
            ),
            Target("videos: no segment work left behind", str(len(self.work_left)), not self.work_left),
        ]

    def problems(self, options: SoakOptions) -> list[str]:
        return [
            f"{target.what} (measured: {target.measured})"
            for target in self.targets(options)
            if not target.met
        ]

    def lines(self, options: SoakOptions) -> list[str]:
        p50, p95 = percentile(self.latencies, 0.50), percentile(self.latencies, 0.95)
        slowest = max(self.latencies) if self.latencies else None
        transient = sum(self.faults.get(kind, 0) for kind in TRANSIENT_FAULTS)
        faults = ", ".join(f"{kind} {count}" for kind, count in sorted(self.faults.items()))
        images = [upload for upload in self.uploads if not upload.video]
        duplicates = sum(1 for upload in images if upload.duplicated)
        bad = sum(1 for upload in images if upload.kind.startswith("bad:"))
        lines = [
            f"uploads               {len(images)} ({self.images} images, {duplicates} of them uploaded "
            f"twice, {bad} bad files) and {len(self.videos)} videos in {self.duration_seconds:.0f} s",
            "states reached        " + ", ".join(f"{s} {n}" for s, n in sorted(self.states.items())),
            f"missing               {len(self.missing)}" + _examples(self.missing),
            f"wrong                 {len(self.wrong)}" + _examples(self.wrong),
            f"failed, endpoint      {len(self.endpoint_failures)}" + _examples(self.endpoint_failures),
            f"dead-letter queue     {self.dlq_depth}",
            f"ingest queue left     {self.queue_left}",
            f"inference requests    {self.inference_requests} answered by the proxy "
            f"({self._per_picture()}; {transient} transient faults)",
            f"injected              {faults}",
            f"killed worker         {self.killed_worker}; crashed batches: {self.crashed_batches}",
            f"upload→result         all: p50 {seconds(p50)}, p95 {seconds(p95)}, max {seconds(slowest)}",
            *self.video_lines(),
            "",
            *self.phase_table(),
        ]
        if self.videos:
            lines += ["", *self.video_phase_table()]
        outage = self.phase(OUTAGE)
        if outage is not None:
            counted = outage.counted + (f"; {outage.cross_check}" if outage.cross_check else "")
            minutes = " ".join(str(n) for n in outage.per_minute) or "n/a (shorter than a minute)"
            lines += ["", f"outage, per minute    {minutes}", f"                      ({counted})"]
            if outage.video_attempts is not None:
                lines.append(f"outage, video workers {outage.video_attempts} endpoint attempts logged")
        if self.circuit_changes:
            lines += [
                "",
                "circuit, as the stack saw it:",
                *(f"  {change}" for change in self.circuit_changes),
            ]
        return [*lines, "", *self.target_table(options)]

    def _per_picture(self) -> str:
        """Requests per inferred picture: an image, or a frame a video sampled (each is one request)."""
        frames = sum(self.video_frames.values())
        pictures = self.images + frames
        per = self.inference_requests / pictures if pictures else 0.0
        if not frames:
            return f"{per:.2f} per image"
        return f"{per:.2f} per image or sampled video frame, {self.images} + {frames}"

    def video_lines(self) -> list[str]:
        videos = self.videos
        if not videos:
            return []
        good = [upload for upload in videos if upload.expected_status == "succeeded"]
        shapes = Counter(upload.segments for upload in good)
        made = ", ".join(
            f"{count} of {segments} segment{'s' if segments > 1 else ''}"
            for segments, count in sorted(shapes.items(), reverse=True)
        )
        twice = sum(1 for upload in videos if upload.duplicated)
        bad = Counter(upload.kind.split(":", 1)[1] for upload in videos if upload not in good)
        bad_kinds = ", ".join(f"{name} {n}" for name, n in sorted(bad.items()))
        p50, p95 = percentile(self.video_latencies, 0.50), percentile(self.video_latencies, 0.95)
        slowest = max(self.video_latencies) if self.video_latencies else None
        return [
            f"videos                {len(good)} clips ({made}; {twice} uploaded twice), "
            f"{sum(bad.values())} bad ({bad_kinds})",
            "video states          " + ", ".join(f"{s} {n}" for s, n in sorted(self.video_states.items())),
            f"video queue, DLQ      {self.video_queue_left} left, {self.video_dlq_depth} dead-lettered; "
            f"segment work left {len(self.work_left)}" + _examples(self.work_left),
            f"video upload→result   p50 {seconds(p50)}, p95 {seconds(p95)}, max {seconds(slowest)}",
        ]

    def video_phase_table(self) -> list[str]:
        rows = [("phase", "clips succeeded", "bad failed as expected", "recovery→last video", "p50 / p95")]
        for figures in self.phases:
            p50 = percentile(figures.video_latencies, 0.5)
            p95 = percentile(figures.video_latencies, 0.95)
            rows.append(
                (
                    figures.spec.name,
                    f"{figures.videos_succeeded} of {figures.videos}",
                    f"{figures.bad_videos_failed} of {figures.bad_videos}",
                    "n/a" if figures.spec.name == FLAKY else seconds(figures.video_recovery_to_last),
                    f"{seconds(p50)} / {seconds(p95)}",
                )
            )
        return table(rows)

    def phase_table(self) -> list[str]:
        rows = [("phase", "endpoint", "length", "uploads", "endpoint requests", "recovery→last", "p50 / p95")]
        for figures in self.phases:
            if figures.seconds <= 0:
                rate = "n/a"
            elif figures.spec.name == OUTAGE:
                rate = f"{figures.requests / (figures.seconds / 60):.1f}/min"
            else:
                rate = f"{figures.requests / figures.seconds:.2f}/s"
            rows.append(
                (
                    figures.spec.name,
                    figures.spec.endpoint,
                    f"{figures.seconds:.0f} s",
                    str(figures.spec.uploads),
                    f"{figures.requests} ({rate})",
                    "n/a" if figures.spec.name == FLAKY else seconds(figures.recovery_to_last),
                    f"{seconds(figures.percentile(0.5))} / {seconds(figures.percentile(0.95))}",
                )
            )
        return table(rows)

    def target_table(self, options: SoakOptions) -> list[str]:
        rows = [("", "target", "measured")]
        rows += [("ok" if t.met else "MISSED", t.what, t.measured) for t in self.targets(options)]
        return table(rows)

    def figures(self) -> dict[str, Any]:
        """The figures as one JSON document (`--json`)."""
        return {
            "uploads": len(self.uploads),
            "states": dict(self.states),
            "missing": len(self.missing),
            "wrong": len(self.wrong),
            "failed_for_endpoint_reasons": len(self.endpoint_failures),
            "dlq_depth": self.dlq_depth,
            "inference_requests_per_image": round(self.inference_requests / max(1, self.images), 3),
            "p50_seconds": percentile(self.latencies, 0.5),
            "p95_seconds": percentile(self.latencies, 0.95),
            "phases": [
                {
                    "phase": figures.spec.name,
                    "seconds": round(figures.seconds, 1),
                    "uploads": figures.spec.uploads,
                    "endpoint_requests": figures.requests,
                    "per_minute": figures.per_minute,
                    "counted": figures.counted,
                    "recovery_to_last_seconds": figures.recovery_to_last,
                    "succeeded": f"{figures.succeeded}/{figures.images}",
                    "p95_seconds": figures.percentile(0.95),
                    "videos_succeeded": f"{figures.videos_succeeded}/{figures.videos}",
                    "bad_videos_failed": f"{figures.bad_videos_failed}/{figures.bad_videos}",
                    "video_recovery_to_last_seconds": figures.video_recovery_to_last,
                    "video_endpoint_attempts": figures.video_attempts,
                }
                for figures in self.phases
            ],
            "videos": {
                "uploads": len(self.videos),
                "states": dict(self.video_states),
                "frames_sampled": sum(self.video_frames.values()),
                "dlq_depth": self.video_dlq_depth,
                "segment_work_left": len(self.work_left),
                "p95_seconds": percentile(self.video_latencies, 0.95),
            },
        }


SOAK_BEGIN = "<!-- soak: written by make soak -->"  # benchmarks/__main__.py carries this block over


def write_benchmarks_section(report: SoakReport, options: SoakOptions) -> None:
    """Replace the soak block at the end of docs/benchmarks.md with this run's figures."""
    from s3kp.paths import project_root

    root = project_root()
    if root is None:
        print("(not in a checkout: docs/benchmarks.md not updated)")
        return
    path = root / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if SOAK_BEGIN in text:
        text = text[: text.find(SOAK_BEGIN)].rstrip("\n") + "\n"
    problems = report.problems(options)
    verdict = "MISSED: " + "; ".join(problems) if problems else "every target met"
    uploads = len(report.uploads) - len(report.videos)
    phases = ", ".join(
        f"{spec.name} {spec.seconds:.0f} s with {spec.uploads} uploads" for spec in plan_phases(options)
    )
    block = [
        SOAK_BEGIN,
        "### Soak: the offline stack through a flaky endpoint, a 429 storm, an outage and a refused key "
        "(`make soak`, not part of `make bench`)",
        "",
        f"Latest run {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {os.cpu_count()} shared cores "
        f"(other work running; latencies are wall-clock on a loaded machine): {uploads} uploads"
        + (f" and {len(report.videos)} videos" if report.videos else "")
        + ", "
        f"seed {options.seed}; phases: {phases}. Flaky: {options.fault_rate:.0%} transient faults at the "
        "endpoint (429 with Retry-After, 503, connection resets, non-JSON and prediction-less 200s) plus "
        "slow answers, and one ingest worker killed with SIGKILL mid-batch. The template's settings: 120 s "
        "function timeout, 4 attempts per invocation, 15 s × 2^n message backoff, one probe per 15 s while "
        "the circuit is open, deferrals of at most 60 s."
        + (
            f" Videos: {options.videos_per_phase} in each phase (a 5 s clip, uploaded twice in the flaky "
            "phase; a bad video, by turns an image renamed .mp4 and a clip cut in half; a 1.6 s clip), made "
            "at run time from the sample images, sampled at the template's 5 fps, with "
            f"`VIDEO_SEGMENT_SECONDS` {options.video_segment_seconds:g} (the template's 60) so the 5 s clip "
            f"is {math.ceil(5 / options.video_segment_seconds)} segments."
            if options.videos_per_phase
            else ""
        ),
        "",
        "```",
        *report.lines(options),
        "```",
        "",
        f"Verdict: {verdict}.",
        "",
    ]
    path.write_text(text + "\n" + "\n".join(block))


def percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _examples(keys: list[str]) -> str:
    return "" if not keys else "  e.g. " + "; ".join(keys[:3])
