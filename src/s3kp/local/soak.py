"""`make soak`: the offline stack through a flaky endpoint, a 429 storm, an outage and a refused key.

What it runs: the local inference server behind a fault-injecting proxy (`fault_proxy`), the whole
offline stack (moto, the queue runners, Lambda workers) pointed at the proxy, and uploads (images,
duplicate events of some of them, bad files, and in each phase a few videos: `soak_videos`) through four
phases, one after the other:

1. **flaky**: a seeded mix of 30 % transient faults (429 with Retry-After, 503, connection resets,
   contract-breaking 200s) and slow answers, uploads at a steady pace, one ingest worker killed with
   SIGKILL in the middle of a batch;
2. **429 storm**: 90 % of requests answered `429 Retry-After: 5`;
3. **outage**: nothing listens on the endpoint's port (connections refused, as from a host that is
   down), uploads continue; the endpoint's connection attempts are counted per minute;
4. **401**: every request answered 401, as after a key was rotated; then the key "works" again.

After each phase the endpoint goes back to the flaky mix and the soak waits (bounded) for every upload so
far to have its result, so each phase's figures are its own.

What it checks (each a target in the printed table; exit 1 if one is missed): every upload ends in the
state it should (images `succeeded` with a drawing that names its source and the same detections as every
other upload of the same picture; bad files `failed` with their reason; videos likewise, never left
`processing`, with their annotated MP4 and frames document and no segment work left behind), nothing is
missing, nothing failed for the endpoint's reasons, nothing reaches either dead-letter queue, the flaky
phase's p95 upload→result latency is under its target, and during the outage the endpoint gets at most 6
requests in any minute (ingest and video workers together: they share the circuit) and everything is
done within 3 minutes of its recovery (issue 19).

Bounded: every wait has a deadline (`--settle-timeout`, `--result-timeout`, `--drain-timeout`), after
which it reports what is missing and fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from s3kp_core import errors

from s3kp import samples
from s3kp.local import soak_videos
from s3kp.local.fault_proxy import THROTTLED, UNAUTHORIZED, FaultMix, FaultProxy
from s3kp.local.processes import ChildProcess
from s3kp.local.soak_report import (
    FLAKY,
    OUTAGE,
    REFUSED_KEY,
    STORM,
    PhaseFigures,
    PhaseSpec,
    PlannedUpload,
    SoakOptions,
    SoakReport,
    Upload,
    per_minute,
    plan_phases,
    recovery_to_last,
    write_benchmarks_section,
)
from s3kp.local.stack import LOCAL_API_KEY, LocalStack, StackOptions
from s3kp.local.syn_counter import SynCounter
from s3kp.paths import cache_dir

IMAGE_SAMPLES = ("astronaut", "faces_2x2", "people_side_by_side", "grace_hopper", "camera")
BAD_FILES: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "object_empty"),
    "truncated": (samples.truncated_jpeg, "image_undecodable"),
    "document": (samples.pdf_named_jpg, "image_undecodable"),
}
FINAL_STATES = frozenset({"succeeded", "failed", "skipped"})
ENDPOINT_REASONS = frozenset(
    {
        errors.INFERENCE_UNAVAILABLE,
        errors.INFERENCE_BAD_RESPONSE,
        errors.INFERENCE_UNAUTHORIZED,
        errors.INFERENCE_REJECTED,
    }
)


def run_soak(options: SoakOptions, echo: Callable[[str], None] = print) -> SoakReport:
    """Start everything, run the phases, check every result, stop everything; return the figures."""
    phases = plan_phases(options)  # before anything starts: a bad combination of options fails at once
    log_dir = cache_dir() / "logs" / "soak" / time.strftime("%Y%m%dT%H%M%S")
    host = "127.0.0.1"
    inference_port = free_port(host)
    model_server = ChildProcess(
        "inference server",
        [sys.executable, "-m", "s3kp.cli", "model-server", "--host", host, "--port", str(inference_port)],
        log_dir / "inference-server.log",
        env=os.environ | {"S3KP_MODEL_SERVER_API_KEY": LOCAL_API_KEY},
    )
    baseline = FaultMix(fault_rate=options.fault_rate, slow_rate=options.slow_rate, seed=options.seed)
    proxy = FaultProxy(f"http://{host}:{inference_port}", baseline, host=host)
    overrides = {
        name: str(value)
        for name, value in (
            ("RETRY_BASE_DELAY_SECONDS", options.retry_base_delay_seconds),
            ("RETRY_MAX_DELAY_SECONDS", options.retry_max_delay_seconds),
            ("CIRCUIT_PROBE_SECONDS", options.circuit_probe_seconds),
            ("OUTAGE_MAX_DEFER_SECONDS", options.outage_max_defer_seconds),
        )
        if value is not None
    }
    circuit_changes: list[str] = []
    clock = _RunClock()

    def stack_echo(line: str) -> None:
        if line.lstrip().startswith("circuit"):  # circuit_watch's lines: keep them, with the run's time
            line = f"[{clock.elapsed():5.0f} s] {line.strip()}"
            circuit_changes.append(line)
            line = "  " + line
        echo(line)

    stack = LocalStack(
        StackOptions(
            host=host,
            aws_port=free_port(host),
            api_port=free_port(host),
            inference_port=inference_port,
            inference_url=proxy.url,
            api_key=LOCAL_API_KEY,
            name_prefix="s3kp-soak",
            log_dir=log_dir,
            concurrency=options.concurrency,
            ingest_timeout_seconds=options.ingest_timeout_seconds,
            ingest_overrides=tuple(overrides.items()),
            # The same endpoint settings (one template parameter each, for both functions), and segments
            # short enough that a 5 s clip is several.
            video_overrides=(
                *overrides.items(),
                ("VIDEO_SEGMENT_SECONDS", f"{options.video_segment_seconds:g}"),
            ),
        ),
        echo=stack_echo,
        report_batches=False,
    )
    model_server.start()  # children before any thread (see processes.py)
    try:
        stack.start()
        proxy.start()
        model_server.wait_healthy(f"http://{host}:{inference_port}/health", 300)
        echo(f"  ok  inference server behind the fault proxy  {proxy.url}")
        clock.reset()
        report = _Driver(stack, proxy, options, phases, baseline, clock, echo).run()
        report.circuit_changes = circuit_changes
        report.log_dir = str(log_dir)
        return report
    finally:
        stack.stop()
        proxy.stop()
        model_server.stop()


class _RunClock:
    def __init__(self) -> None:
        self._started = time.monotonic()

    def reset(self) -> None:
        self._started = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._started


class _Driver:
    """Runs the phases against a started stack and gathers the figures."""

    def __init__(
        self,
        stack: LocalStack,
        proxy: FaultProxy,
        options: SoakOptions,
        phases: list[PhaseSpec],
        baseline: FaultMix,
        clock: _RunClock,
        echo: Callable[[str], None],
    ) -> None:
        import boto3

        resources = stack.resources
        self.stack, self.proxy, self.options, self.specs = stack, proxy, options, phases
        self.baseline, self.clock, self.echo = baseline, clock, echo
        self.s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint, region_name=resources.region)
        self.sqs = boto3.client("sqs", endpoint_url=stack.aws_endpoint, region_name=resources.region)
        self.table = boto3.resource(
            "dynamodb", endpoint_url=stack.aws_endpoint, region_name=resources.region
        ).Table(resources.results_table)
        self.report = SoakReport(uploads=[])
        self.ingest_log = stack.options.log_dir / "ingest.log"
        self.video_log = stack.options.log_dir / "video.log"
        self._requests_before = 0  # the proxy's count when the current phase began

    def run(self) -> SoakReport:
        options, resources = self.options, self.stack.resources
        run = time.strftime("%Y%m%dT%H%M%S")
        folder = f"{resources.input_prefix}soak-{run}/"
        plan = iter(_plan(options, folder))
        for index, spec in enumerate(self.specs):
            figures = PhaseFigures(spec)
            self.report.phases.append(figures)
            videos = soak_videos.phase_videos(
                index,
                spec.videos,
                prefix=folder,
                duplicate_long=options.duplicate_video and spec.name == FLAKY,
                segment_seconds=options.video_segment_seconds,
            )
            self._phase(spec, _interleave([next(plan) for _ in range(spec.uploads)], videos), figures)

        self.say("waiting for every result …")
        items = _wait_for_results(self.table, self.report.uploads, options.result_timeout)
        self.say("waiting for the queues to drain (deferred messages included) …")
        report = self.report
        queues = (resources.queue_url, resources.video_queue_url)
        report.queue_left, report.video_queue_left = _wait_for_drain(self.sqs, queues, options.drain_timeout)
        report.dlq_depth = _depth(self.sqs, resources.dlq_url)
        report.video_dlq_depth = _depth(self.sqs, resources.video_dlq_url)
        report.duration_seconds = self.clock.elapsed()
        report.inference_requests = self.proxy.requests_seen()
        report.faults = self.proxy.snapshot()
        report.crashed_batches = sum(1 for batch in self.stack.batches if batch.error)
        _check(report, items, self.s3, resources.predictions_prefix)
        return report

    def say(self, line: str) -> None:
        self.echo(f"[{self.clock.elapsed():5.0f} s] {line}")

    def _phase(self, spec: PhaseSpec, uploads: list[PlannedUpload], figures: PhaseFigures) -> None:
        self.say(f"{spec.name}: {spec.endpoint} for {spec.seconds:.0f} s, {spec.uploads} uploads")
        counter = self._begin(spec, figures)
        started = time.monotonic()
        log_offset = (_size(self.ingest_log), _size(self.video_log))
        kill_at = int(len(uploads) * self.options.kill_worker_at) if spec.name == FLAKY else -1
        self._upload(spec, uploads, started, kill_at)
        time.sleep(max(0.0, started + spec.seconds - time.monotonic()))
        self._end(spec, figures, counter, log_offset)
        self._settle()

    def _begin(self, spec: PhaseSpec, figures: PhaseFigures) -> SynCounter | None:
        counter = None
        if spec.name == STORM:
            self.proxy.set_mix(
                FaultMix(
                    fault_rate=0.9,
                    slow_rate=0.0,
                    faults=(THROTTLED,),
                    retry_after_seconds=self.options.storm_retry_after,
                    seed=self.options.seed,
                )
            )
        elif spec.name == REFUSED_KEY:
            self.proxy.set_mix(FaultMix(fault_rate=1.0, slow_rate=0.0, faults=(UNAUTHORIZED,)))
        elif spec.name == OUTAGE:
            try:  # the honest count of attempts to a port nobody listens on: the kernel's (syn_counter)
                counter = SynCounter(self.proxy.port).start()
            except OSError as error:
                self.say(
                    f"  (cannot count connection attempts on the wire: {error}; counting the workers' log)"
                )
            self.proxy.go_down()
        figures.started_at = time.time()
        self._requests_before = self.proxy.requests_seen()
        return counter

    def _end(
        self, spec: PhaseSpec, figures: PhaseFigures, counter: SynCounter | None, log_offset: tuple[int, int]
    ) -> None:
        if spec.name == OUTAGE:
            self.proxy.come_back()
        elif spec.name != FLAKY:
            self.proxy.set_mix(self.baseline)
        figures.ended_at = time.time()
        within = (figures.started_at, figures.ended_at)
        if spec.name == OUTAGE:
            logged = logged_attempts(_read_from(self.ingest_log, log_offset[0]))
            by_videos = [(t, n) for t, n in logged_attempts(_read_from(self.video_log, log_offset[1]))
                         if within[0] <= t < within[1]]  # fmt: skip
            figures.video_attempts = sum(n for _, n in by_videos)
            logged_by = f"the ingest workers logged {sum(n for _, n in logged)}, the video workers "
            logged_by += f"{figures.video_attempts}"
            if counter is not None:
                counter.stop()
                seen = [t for t in counter.times() if within[0] <= t < within[1]]
                figures.counted = "connection attempts: SYNs to the endpoint's port seen on lo"
                figures.cross_check = f"{logged_by} attempts"
            else:
                seen = [t for t, n in logged + by_videos for _ in range(n)]
                figures.counted = "attempts the workers logged (no CAP_NET_RAW to count SYNs): " + logged_by
            figures.requests = len(seen)
            figures.per_minute = per_minute(seen, *within)
        else:
            figures.requests = self.proxy.requests_seen() - self._requests_before
            figures.per_minute = per_minute(self.proxy.request_times(), *within)
        self.say(f"{spec.name} over: {figures.requests} endpoint requests ({figures.counted})")

    def _upload(self, spec: PhaseSpec, uploads: list[PlannedUpload], started: float, kill_at: int) -> None:
        resources = self.stack.resources
        repeats: list[tuple[float, Upload, bytes]] = []
        spacing = spec.seconds / max(1, len(uploads))
        killer: threading.Thread | None = None
        for index, planned in enumerate(uploads):
            key, data = planned.key, planned.data
            due = started + index * spacing
            while True:
                while repeats and repeats[0][0] <= time.monotonic():
                    _, upload, repeat_data = repeats.pop(0)
                    self.s3.put_object(Bucket=resources.bucket, Key=upload.key, Body=repeat_data)
                wait = due - time.monotonic()
                if wait <= 0:
                    break
                time.sleep(min(wait, max(0.05, repeats[0][0] - time.monotonic()) if repeats else wait))
            self.s3.put_object(Bucket=resources.bucket, Key=key, Body=data)
            upload = Upload(
                key,
                planned.kind,
                planned.expected_status,
                planned.expected_code,
                time.time(),
                phase=spec.name,
                duplicated=planned.duplicate,
                video=planned.video,
                segments=planned.segments,
            )
            self.report.uploads.append(upload)
            if (
                planned.duplicate
            ):  # the same bytes again soon: S3 sends a second event for the same object version
                repeats.append((time.monotonic() + random.Random(key).uniform(0.2, 3.0), upload, data))
                repeats.sort(key=lambda item: item[0])
            if index == kill_at:  # in a thread: the uploads go on while it waits for a busy worker
                killer = threading.Thread(target=self._kill_worker, name="soak-kill", daemon=True)
                killer.start()
            if index and index % 50 == 0:
                self.say(f"{index} uploaded, {self.proxy.requests_seen()} inference requests so far")
        for _, upload, repeat_data in repeats:
            self.s3.put_object(Bucket=resources.bucket, Key=upload.key, Body=repeat_data)
        if killer is not None:
            killer.join()

    def _kill_worker(self) -> None:
        self.report.killed_worker = _kill_a_busy_worker(self.stack)
        self.say(self.report.killed_worker)

    def _settle(self) -> None:
        """Wait (bounded) until every upload so far has its result, so the next phase starts clean."""
        started = time.monotonic()
        items = _wait_for_results(self.table, self.report.uploads, self.options.settle_timeout)
        done = sum(1 for item in items.values() if item.get("status") in FINAL_STATES)
        if done < len(self.report.uploads):
            self.say(f"  {len(self.report.uploads) - done} results still missing; going on")
        else:
            self.say(f"  every result so far is in ({time.monotonic() - started:.0f} s)")


def _plan(options: SoakOptions, folder: str) -> list[PlannedUpload]:
    """The images and bad image files to upload, in order."""
    rng = random.Random(options.seed)
    pictures = {name: samples.sample_jpeg(name) for name in IMAGE_SAMPLES}
    bad = {name: make() for name, (make, _) in BAD_FILES.items()}
    plan: list[PlannedUpload] = []
    for index in range(options.uploads):
        if rng.random() < options.bad_rate:
            name = rng.choice(sorted(bad))
            key = f"{folder}{index:04d}-bad-{name}.jpg"
            plan.append(PlannedUpload(key, f"bad:{name}", bad[name], "failed", BAD_FILES[name][1]))
        else:
            name = rng.choice(IMAGE_SAMPLES)
            key = f"{folder}{index:04d}-{name}.jpg"
            duplicate = rng.random() < options.duplicate_rate
            plan.append(PlannedUpload(key, name, pictures[name], "succeeded", None, duplicate))
    return plan


def _interleave(images: list[PlannedUpload], videos: list[PlannedUpload]) -> list[PlannedUpload]:
    """The videos spread evenly among the images (the first a little after the phase begins)."""
    merged = list(images)
    for number, video in enumerate(videos):
        merged.insert(round(len(images) * (number + 0.5) / len(videos)) + number, video)
    return merged


_ATTEMPTS = re.compile(r"failed after (\d+) attempt")


def logged_attempts(lines: Iterable[str]) -> list[tuple[float, int]]:
    """(epoch, attempts) of each endpoint call the ingest workers logged as failed: the handler's one
    "transient failure" line per failed call carries the client's "failed after N attempt(s)"."""
    found = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or not str(entry.get("message", "")).startswith("transient failure"):
            continue
        match = _ATTEMPTS.search(str(entry.get("detail", "")))
        when = _log_time(str(entry.get("timestamp", "")))
        if match and when is not None:
            found.append((when, int(match.group(1))))
    return found


def free_port(host: str) -> int:
    """A port nobody listens on now (the soak never uses the stack's default ports)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _kill_a_busy_worker(stack: LocalStack, wait: float = 60.0, busy_for: float = 0.5) -> str:
    """SIGKILL an ingest worker in the middle of an invocation, as an out-of-memory kill would.

    In the middle: a warm worker (its sandbox answered an invocation before) busy for `busy_for` seconds,
    so the handler has leased the batch's messages (its first step) and they come back once the lease
    runs out (function timeout + 10 s). Killed before the lease, as a cold invocation still setting up
    can be, they would wait out the queue's visibility timeout (750 s), longer than a short run."""
    deadline = time.monotonic() + wait
    seen_busy: dict[tuple[int, int | None, int], float] = {}  # (worker, pid, invocation) -> first seen
    while time.monotonic() < deadline:
        for index, worker in enumerate(stack.ingest_workers):
            pid = worker.pid
            if not worker.busy or pid is None or worker.invocations == 0:
                continue
            since = seen_busy.setdefault((index, pid, worker.invocations), time.monotonic())
            if time.monotonic() - since >= busy_for and worker.busy and worker.pid == pid:
                os.kill(pid, signal.SIGKILL)
                return f"killed ingest worker {index} (pid {pid}) in the middle of a batch"
        time.sleep(0.05)
    return "no worker was busy when the kill was due"


def _wait_for_results(table: Any, uploads: list[Upload], timeout: float) -> dict[str, dict[str, Any]]:
    wanted = {upload.key for upload in uploads}
    deadline = time.monotonic() + timeout
    items: dict[str, dict[str, Any]] = {}
    while True:
        items = {item["source"]["key"]: item for item in _scan(table) if item["source"]["key"] in wanted}
        done = sum(1 for item in items.values() if item.get("status") in FINAL_STATES)
        if done == len(wanted) or time.monotonic() > deadline:
            return items
        time.sleep(2.0)


def _wait_for_drain(sqs: Any, queue_urls: tuple[str, str], timeout: float) -> tuple[int, int]:
    """Messages left in each queue (visible, in flight or delayed) once both are empty or time is up."""
    deadline = time.monotonic() + timeout
    while True:
        first, second = (_depth(sqs, url, in_flight=True) for url in queue_urls)
        if first + second == 0 or time.monotonic() > deadline:
            return first, second
        time.sleep(2.0)


def _depth(sqs: Any, queue_url: str, in_flight: bool = False) -> int:
    names = ["ApproximateNumberOfMessages"]
    if in_flight:
        names += ["ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in names)


def _scan(table: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    arguments: dict[str, Any] = {}
    while True:
        page = table.scan(**arguments)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return items
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _check(report: SoakReport, items: dict[str, dict[str, Any]], s3: Any, predictions_prefix: str) -> None:
    """Fill in states, missing, wrong, latencies and each phase's figures from the stored items."""
    answers: dict[str, set[tuple[int, int]]] = {}
    phases = {figures.spec.name: figures for figures in report.phases}
    for upload in report.uploads:
        figures = phases[upload.phase]
        _count_expected(figures, upload)
        item = items.get(upload.key)
        if item is None or item.get("status") not in FINAL_STATES:
            stuck = f" (still {item['status']})" if item is not None else ""
            report.missing.append(upload.key + stuck)
            continue
        status = str(item["status"])
        report.states[status] += 1
        latency = _epoch(str(item["updated_at"])) - upload.uploaded_at
        report.latencies.append(latency)
        figures.latencies.append(latency)
        code = (item.get("reason") or {}).get("code")
        if upload.video:
            report.video_states[f"{status} {code}" if code else status] += 1
            report.video_latencies.append(latency)
            figures.video_latencies.append(latency)
            bucket = str(item["source"]["bucket"])
            report.work_left += soak_videos.segment_work_left(
                s3, bucket, predictions_prefix, item["result_id"]
            )
        if status == "failed" and code in ENDPOINT_REASONS:
            report.endpoint_failures.append(f"{upload.key}: {code}")
        if status != upload.expected_status or code != upload.expected_code:
            report.wrong.append(f"{upload.key}: {status} {code or ''} (expected {upload.expected_status})")
            continue
        if status != "succeeded":
            if upload.video:
                figures.bad_videos_failed += 1
            continue
        answers.setdefault(upload.kind, set()).add((int(item["detections"]), int(item["keypoints"])))
        if upload.video:
            problems = soak_videos.check_outputs(item, upload.key, upload.segments, s3)
            report.wrong += problems
            if not problems:
                figures.videos_succeeded += 1
            report.video_frames[upload.key] = int((item.get("video") or {}).get("frames", 0))
            continue
        figures.succeeded += 1
        annotated = item.get("annotated") or {}
        try:
            head = s3.head_object(Bucket=annotated["bucket"], Key=annotated["key"])
        except Exception as error:
            report.wrong.append(f"{upload.key}: its drawing is missing ({type(error).__name__})")
            continue
        if head["Metadata"].get("source-key") != quote(upload.key, safe="/"):
            report.wrong.append(f"{upload.key}: its drawing names another source")
    for kind, seen in answers.items():
        if len(seen) > 1:  # the same picture (or clip) must give the same answer whatever the faults did
            report.wrong.append(f"{kind}: different detections for identical uploads {sorted(seen)}")
    done_at = {
        key: _epoch(str(item["updated_at"]))
        for key, item in items.items()
        if item.get("status") in FINAL_STATES
    }
    videos = [upload for upload in report.uploads if upload.video]
    for figures in report.phases:
        figures.recovery_to_last = recovery_to_last(figures, report.uploads, done_at)
        if videos:
            figures.video_recovery_to_last = recovery_to_last(figures, videos, done_at)


def _count_expected(figures: PhaseFigures, upload: Upload) -> None:
    if upload.video and upload.expected_status == "succeeded":
        figures.videos += 1
    elif upload.video:
        figures.bad_videos += 1
    elif upload.expected_status == "succeeded":
        figures.images += 1


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _log_time(timestamp: str) -> float | None:
    """Powertools' `2026-12-06 20:16:57,123+0000`."""
    try:
        return datetime.strptime(timestamp, "%Y-%m-%d %H:%M:%S,%f%z").timestamp()
    except ValueError:
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> list[str]:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s3kp.local.soak", description=__doc__.split("\n")[0])
    defaults = SoakOptions()
    parser.add_argument("--uploads", type=int, default=defaults.uploads)
    parser.add_argument("--rate", type=float, default=defaults.rate_per_second, help="uploads/s, flaky phase")
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--storm-seconds", type=float, default=defaults.storm_seconds, help="0: no storm")
    parser.add_argument("--outage-seconds", type=float, default=defaults.outage_seconds, help="0: no outage")
    parser.add_argument(
        "--refused-key-seconds", type=float, default=defaults.refused_key_seconds, help="0: no 401 phase"
    )
    parser.add_argument(
        "--videos-per-phase",
        type=int,
        default=defaults.videos_per_phase,
        help="a clip of several segments, a bad video, a one-segment clip (the first N; 0: no videos)",
    )
    parser.add_argument(
        "--video-segment-seconds",
        type=float,
        default=defaults.video_segment_seconds,
        help="VIDEO_SEGMENT_SECONDS (the template's 60)",
    )
    parser.add_argument("--settle-timeout", type=float, default=defaults.settle_timeout)
    parser.add_argument("--result-timeout", type=float, default=defaults.result_timeout)
    parser.add_argument("--drain-timeout", type=float, default=defaults.drain_timeout)
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    parser.add_argument(
        "--write-docs", action="store_true", help="put the figures in docs/benchmarks.md (make soak does)"
    )
    args = parser.parse_args(argv)
    options = SoakOptions(
        uploads=args.uploads,
        rate_per_second=args.rate,
        fault_rate=args.fault_rate,
        seed=args.seed,
        storm_seconds=args.storm_seconds,
        outage_seconds=args.outage_seconds,
        refused_key_seconds=args.refused_key_seconds,
        videos_per_phase=args.videos_per_phase,
        video_segment_seconds=args.video_segment_seconds,
        settle_timeout=args.settle_timeout,
        result_timeout=args.result_timeout,
        drain_timeout=args.drain_timeout,
    )
    try:
        plan_phases(options)
    except ValueError as error:
        parser.error(str(error))
    print("s3kp soak: the offline stack behind a fault-injecting proxy", flush=True)
    try:
        report = run_soak(options, echo=lambda line: print(line, flush=True))
    except KeyboardInterrupt:  # everything started was stopped on the way out
        print("s3kp soak: interrupted", file=sys.stderr)
        return 130
    print()
    for line in report.lines(options):
        print(line)
    print(f"\nlogs: {report.log_dir}")
    problems = report.problems(options)
    if args.json:
        print(json.dumps(report.figures()))
    if args.write_docs:
        write_benchmarks_section(report, options)
    if problems:
        print("\nFAILED: " + "; ".join(problems))
        return 1
    print("\nOK: every target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
