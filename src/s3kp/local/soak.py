"""`make soak`: the offline stack under a flaky endpoint, a stream of uploads and a killed worker.

What it runs: the local inference server behind a fault-injecting proxy (`fault_proxy`: a seeded mix of
429 with Retry-After, 503, connection resets, slow answers and contract-breaking 200s), the whole
offline stack (moto, the queue runner, Lambda workers) pointed at the proxy, a few hundred uploads at a
steady pace (images, duplicate events of some of them, bad files), and one ingest worker killed with
SIGKILL in the middle of a batch.

What it checks: every upload ends in the state it should (images `succeeded` with a drawing that names
its source and the same detections as every other upload of the same picture; bad files `failed` with
their reason), nothing is missing, nothing reaches the dead-letter queue, and the p95 upload→result
latency stays under the target. It prints the states reached, missing and wrong uploads, DLQ depth,
inference requests per image and p50/p95 latency, and exits 1 when anything is missing or wrong.

Bounded: every wait has a deadline (`--result-timeout`, `--drain-timeout`), after which it reports what
is missing and fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from s3kp import samples
from s3kp.local.fault_proxy import TRANSIENT_FAULTS, FaultMix, FaultProxy
from s3kp.local.processes import ChildProcess
from s3kp.local.stack import LOCAL_API_KEY, LocalStack, StackOptions
from s3kp.paths import cache_dir

IMAGE_SAMPLES = ("astronaut", "faces_2x2", "people_side_by_side", "grace_hopper", "camera")
BAD_FILES: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "object_empty"),
    "truncated": (samples.truncated_jpeg, "image_undecodable"),
    "document": (samples.pdf_named_jpg, "image_undecodable"),
}
FINAL_STATES = frozenset({"succeeded", "failed", "skipped"})


@dataclass(frozen=True)
class SoakOptions:
    uploads: int = 300
    rate_per_second: float = 1.25
    duplicate_rate: float = 0.10  # images whose upload is repeated (same bytes: a duplicate event)
    bad_rate: float = 0.08
    fault_rate: float = 0.30
    slow_rate: float = 0.08
    seed: int = 8
    kill_worker_at: float = 0.4  # fraction of the uploads after which a busy ingest worker is killed
    result_timeout: float = 600.0  # seconds after the last upload for every result to appear
    drain_timeout: float = 300.0  # then for the queue to empty (deferred duplicates included)
    latency_target: float = 120.0
    ingest_timeout_seconds: float | None = None  # the template's 120 s unless shortened (fast drills)
    retry_base_delay_seconds: float | None = None  # the template's 15 s unless shortened
    concurrency: int | None = None


@dataclass
class Upload:
    key: str
    kind: str  # a sample name, or "bad:<name>"
    expected_status: str
    expected_code: str | None
    uploaded_at: float  # epoch seconds of the first put
    duplicated: bool = False


@dataclass
class SoakReport:
    uploads: list[Upload]
    states: Counter[str] = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    dlq_depth: int = 0
    queue_left: int = 0
    inference_requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    killed_worker: str = "no worker was busy when the kill was due"
    crashed_batches: int = 0
    duration_seconds: float = 0.0

    @property
    def images(self) -> int:
        return sum(1 for upload in self.uploads if upload.expected_status == "succeeded")

    def percentile(self, fraction: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]

    def problems(self, latency_target: float) -> list[str]:
        found = []
        if self.missing:
            found.append(f"{len(self.missing)} upload(s) without a final result")
        if self.wrong:
            found.append(f"{len(self.wrong)} upload(s) with a wrong result")
        if self.dlq_depth:
            found.append(f"{self.dlq_depth} message(s) in the dead-letter queue")
        p95 = self.percentile(0.95)
        if p95 is not None and p95 > latency_target:
            found.append(f"p95 upload→result {p95:.1f} s is over the {latency_target:.0f} s target")
        return found

    def lines(self, latency_target: float) -> list[str]:
        p50, p95 = self.percentile(0.50), self.percentile(0.95)
        slowest = max(self.latencies) if self.latencies else None
        transient = sum(self.faults.get(kind, 0) for kind in TRANSIENT_FAULTS)
        faults = ", ".join(f"{kind} {count}" for kind, count in sorted(self.faults.items()))
        per_image = self.inference_requests / self.images if self.images else 0.0
        duplicates = sum(1 for upload in self.uploads if upload.duplicated)
        bad = sum(1 for upload in self.uploads if upload.kind.startswith("bad:"))
        return [
            f"uploads               {len(self.uploads)} ({self.images} images, {duplicates} of them uploaded "
            f"twice, {bad} bad files) in {self.duration_seconds:.0f} s",
            "states reached        " + ", ".join(f"{s} {n}" for s, n in sorted(self.states.items())),
            f"missing               {len(self.missing)}" + _examples(self.missing),
            f"wrong                 {len(self.wrong)}" + _examples(self.wrong),
            f"dead-letter queue     {self.dlq_depth}",
            f"ingest queue left     {self.queue_left}",
            f"inference requests    {self.inference_requests} ({per_image:.2f} per image; "
            f"{transient} transient faults = {transient / max(1, self.inference_requests):.0%})",
            f"injected              {faults}",
            f"killed worker         {self.killed_worker}; crashed batches: {self.crashed_batches}",
            f"upload→result         p50 {_seconds(p50)}, p95 {_seconds(p95)}, max {_seconds(slowest)} "
            f"(target p95 < {latency_target:.0f} s)",
        ]


def run_soak(options: SoakOptions, echo: Callable[[str], None] = print) -> SoakReport:
    """Start everything, run the uploads, check every result, stop everything; return the figures."""
    log_dir = cache_dir() / "logs" / "soak"
    host = "127.0.0.1"
    inference_port = free_port(host)
    model_server = ChildProcess(
        "inference server",
        [sys.executable, "-m", "s3kp.cli", "model-server", "--host", host, "--port", str(inference_port)],
        log_dir / "inference-server.log",
        env=os.environ | {"S3KP_MODEL_SERVER_API_KEY": LOCAL_API_KEY},
    )
    proxy = FaultProxy(
        f"http://{host}:{inference_port}",
        FaultMix(fault_rate=options.fault_rate, slow_rate=options.slow_rate, seed=options.seed),
        host=host,
    )
    overrides = {}
    if options.retry_base_delay_seconds is not None:
        overrides["RETRY_BASE_DELAY_SECONDS"] = str(options.retry_base_delay_seconds)
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
        ),
        echo=echo,
        report_batches=False,
    )
    model_server.start()  # children before any thread (see processes.py)
    try:
        stack.start()
        proxy.start()
        model_server.wait_healthy(f"http://{host}:{inference_port}/health", 300)
        echo(f"  ok  inference server behind the fault proxy  {proxy.url}")
        return _drive(stack, proxy, options, echo)
    finally:
        stack.stop()
        proxy.stop()
        model_server.stop()


def _drive(
    stack: LocalStack, proxy: FaultProxy, options: SoakOptions, echo: Callable[[str], None]
) -> SoakReport:
    import boto3

    resources = stack.resources
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint, region_name=resources.region)
    sqs = boto3.client("sqs", endpoint_url=stack.aws_endpoint, region_name=resources.region)
    table = boto3.resource("dynamodb", endpoint_url=stack.aws_endpoint, region_name=resources.region).Table(
        resources.results_table
    )
    plan = _plan(options, resources.input_prefix)
    report = SoakReport(uploads=[])
    started = time.monotonic()
    kill_at = int(len(plan) * options.kill_worker_at)
    repeats: list[tuple[float, Upload, bytes]] = []
    echo(
        f"\nUploading {len(plan)} objects at {options.rate_per_second:g}/s "
        f"({options.fault_rate:.0%} transient faults at the endpoint) …"
    )
    for index, (key, kind, data, expected_status, expected_code, duplicate) in enumerate(plan):
        due = started + index / options.rate_per_second
        while repeats and repeats[0][0] <= time.monotonic():
            _, upload, repeat_data = repeats.pop(0)
            s3.put_object(Bucket=resources.bucket, Key=upload.key, Body=repeat_data)
        time.sleep(max(0.0, due - time.monotonic()))
        s3.put_object(Bucket=resources.bucket, Key=key, Body=data)
        upload = Upload(key, kind, expected_status, expected_code, time.time(), duplicated=duplicate)
        report.uploads.append(upload)
        if duplicate:  # the same bytes again soon: S3 sends a second event for the same object version
            repeats.append((time.monotonic() + random.Random(index).uniform(0.2, 3.0), upload, data))
            repeats.sort(key=lambda item: item[0])
        if index == kill_at:
            report.killed_worker = _kill_a_busy_worker(stack)
            echo(f"  {report.killed_worker}")
        if index and index % 50 == 0:
            echo(f"  {index} uploaded, {proxy.requests_seen()} inference requests so far")
    for _, upload, repeat_data in repeats:
        s3.put_object(Bucket=resources.bucket, Key=upload.key, Body=repeat_data)

    echo("Waiting for every result …")
    items = _wait_for_results(table, report.uploads, options.result_timeout)
    echo("Waiting for the queue to drain (deferred duplicates included) …")
    report.queue_left = _wait_for_drain(sqs, resources.queue_url, options.drain_timeout)
    report.dlq_depth = _depth(sqs, resources.dlq_url)
    report.duration_seconds = time.monotonic() - started
    report.inference_requests = proxy.requests_seen()
    report.faults = proxy.snapshot()
    report.crashed_batches = sum(1 for batch in stack.batches if batch.error)
    _check(report, items, s3)
    return report


PlannedUpload = tuple[str, str, bytes, str, str | None, bool]


def _plan(options: SoakOptions, prefix: str) -> list[PlannedUpload]:
    """What to upload, in order: (key, kind, bytes, expected status, expected code, upload twice)."""
    rng = random.Random(options.seed)
    pictures = {name: samples.sample_jpeg(name) for name in IMAGE_SAMPLES}
    bad = {name: make() for name, (make, _) in BAD_FILES.items()}
    run = time.strftime("%Y%m%dT%H%M%S")
    plan: list[PlannedUpload] = []
    for index in range(options.uploads):
        if rng.random() < options.bad_rate:
            name = rng.choice(sorted(bad))
            key = f"{prefix}soak-{run}/{index:04d}-bad-{name}.jpg"
            plan.append((key, f"bad:{name}", bad[name], "failed", BAD_FILES[name][1], False))
        else:
            name = rng.choice(IMAGE_SAMPLES)
            key = f"{prefix}soak-{run}/{index:04d}-{name}.jpg"
            duplicate = rng.random() < options.duplicate_rate
            plan.append((key, name, pictures[name], "succeeded", None, duplicate))
    return plan


def free_port(host: str) -> int:
    """A port nobody listens on now (the soak never uses the stack's default ports)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _kill_a_busy_worker(stack: LocalStack, wait: float = 20.0) -> str:
    """SIGKILL an ingest worker in the middle of an invocation, as an out-of-memory kill would."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        for index, worker in enumerate(stack.ingest_workers):
            pid = worker.pid
            if worker.busy and pid is not None:
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


def _wait_for_drain(sqs: Any, queue_url: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        left = _depth(sqs, queue_url, in_flight=True)
        if left == 0 or time.monotonic() > deadline:
            return left
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


def _check(report: SoakReport, items: dict[str, dict[str, Any]], s3: Any) -> None:
    """Fill in states, missing, wrong and latencies from the stored items."""
    answers: dict[str, set[tuple[int, int]]] = {}
    for upload in report.uploads:
        item = items.get(upload.key)
        if item is None or item.get("status") not in FINAL_STATES:
            report.missing.append(upload.key)
            continue
        status = str(item["status"])
        report.states[status] += 1
        report.latencies.append(_epoch(str(item["updated_at"])) - upload.uploaded_at)
        code = (item.get("reason") or {}).get("code")
        if status != upload.expected_status or code != upload.expected_code:
            report.wrong.append(f"{upload.key}: {status} {code or ''} (expected {upload.expected_status})")
            continue
        if status != "succeeded":
            continue
        answers.setdefault(upload.kind, set()).add((int(item["detections"]), int(item["keypoints"])))
        annotated = item.get("annotated") or {}
        try:
            head = s3.head_object(Bucket=annotated["bucket"], Key=annotated["key"])
        except Exception as error:
            report.wrong.append(f"{upload.key}: its drawing is missing ({type(error).__name__})")
            continue
        if head["Metadata"].get("source-key") != quote(upload.key, safe="/"):
            report.wrong.append(f"{upload.key}: its drawing names another source")
    for kind, seen in answers.items():
        if len(seen) > 1:  # the same picture must give the same answer whatever the faults did
            report.wrong.append(f"{kind}: different detections for identical uploads {sorted(seen)}")


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def _examples(keys: list[str]) -> str:
    return "" if not keys else "  e.g. " + "; ".join(keys[:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m s3kp.local.soak", description=__doc__.split("\n")[0])
    defaults = SoakOptions()
    parser.add_argument("--uploads", type=int, default=defaults.uploads)
    parser.add_argument("--rate", type=float, default=defaults.rate_per_second, help="uploads per second")
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
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
        result_timeout=args.result_timeout,
        drain_timeout=args.drain_timeout,
    )
    print("s3kp soak: the offline stack behind a fault-injecting proxy", flush=True)
    try:
        report = run_soak(options, echo=lambda line: print(line, flush=True))
    except KeyboardInterrupt:  # everything started was stopped on the way out
        print("s3kp soak: interrupted", file=sys.stderr)
        return 130
    print()
    for line in report.lines(options.latency_target):
        print(line)
    problems = report.problems(options.latency_target)
    if args.json:
        print(json.dumps(soak_figures(report)))
    if args.write_docs:
        write_benchmarks_section(report, options)
    if problems:
        print("\nFAILED: " + "; ".join(problems))
        return 1
    print("\nOK: nothing missing, nothing wrong, nothing in the DLQ, p95 within the target")
    return 0


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
    verdict = "; ".join(report.problems(options.latency_target)) or "OK: nothing missing or wrong, DLQ empty"
    block = [
        SOAK_BEGIN,
        "### Soak: the offline stack under a flaky endpoint (`make soak`, not part of `make bench`)",
        "",
        f"Latest run {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {os.cpu_count()} shared cores "
        f"(other work running; latencies are wall-clock on a loaded machine): {len(report.uploads)} uploads "
        f"at {options.rate_per_second:g}/s, seed {options.seed}, {options.fault_rate:.0%} transient faults "
        "at the endpoint (429 with Retry-After, 503, connection resets, non-JSON and prediction-less 200s, "
        "plus slow answers), one ingest worker killed with SIGKILL mid-batch, the template's settings "
        "(120 s function timeout, 4 attempts per invocation, 15 s × 2^n message backoff).",
        "",
        "```",
        *report.lines(options.latency_target),
        "```",
        "",
        f"Verdict: {verdict}. The slowest uploads are the killed worker's batch: its messages come back when "
        "their lease (the invocation's timeout + 10 s) runs out, not after the queue's 750 s visibility "
        "timeout.",
        "",
    ]
    path.write_text(text + "\n" + "\n".join(block))


def soak_figures(report: SoakReport) -> dict[str, Any]:
    return {
        "uploads": len(report.uploads),
        "states": dict(report.states),
        "missing": len(report.missing),
        "wrong": len(report.wrong),
        "dlq_depth": report.dlq_depth,
        "inference_requests_per_image": round(report.inference_requests / max(1, report.images), 3),
        "p50_seconds": report.percentile(0.5),
        "p95_seconds": report.percentile(0.95),
    }


if __name__ == "__main__":
    sys.exit(main())
