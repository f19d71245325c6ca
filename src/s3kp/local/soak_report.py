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
    circuit_probe_seconds: float | None = None  # the template's 15 s unless shortened
    outage_max_defer_seconds: float | None = None  # the template's 60 s unless shortened
    concurrency: int | None = None


@dataclass(frozen=True)
class PhaseSpec:
    name: str
    endpoint: str  # what the endpoint does meanwhile, for people
    uploads: int
    seconds: float  # how long the endpoint behaves so; the uploads are spread evenly over it


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
    phases = [
        PhaseSpec(name, endpoint, round(seconds * rate), seconds)
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
    return [PhaseSpec(FLAKY, endpoint, flaky, flaky / options.rate_per_second), *phases]


@dataclass
class Upload:
    key: str
    kind: str  # a sample name, or "bad:<name>"
    expected_status: str
    expected_code: str | None
    uploaded_at: float  # epoch seconds of the first put
    phase: str = FLAKY
    duplicated: bool = False


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
    inference_requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    killed_worker: str = "no worker was busy when the kill was due"
    crashed_batches: int = 0
    duration_seconds: float = 0.0
    circuit_changes: list[str] = field(default_factory=list)  # as `s3kp up` prints them, with the time
    log_dir: str = ""

    @property
    def images(self) -> int:
        return sum(1 for upload in self.uploads if upload.expected_status == "succeeded")

    def phase(self, name: str) -> PhaseFigures | None:
        return next((figures for figures in self.phases if figures.spec.name == name), None)

    def targets(self, options: SoakOptions) -> list[Target]:
        found = [
            Target("nothing missing", str(len(self.missing)), not self.missing),
            Target("nothing wrong", str(len(self.wrong)), not self.wrong),
            Target(
                "0 failed for endpoint reasons", str(len(self.endpoint_failures)), not self.endpoint_failures
            ),
            Target("dead-letter queue empty", str(self.dlq_depth), self.dlq_depth == 0),
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
        return found

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
        per_image = self.inference_requests / self.images if self.images else 0.0
        duplicates = sum(1 for upload in self.uploads if upload.duplicated)
        bad = sum(1 for upload in self.uploads if upload.kind.startswith("bad:"))
        lines = [
            f"uploads               {len(self.uploads)} ({self.images} images, {duplicates} of them uploaded "
            f"twice, {bad} bad files) in {self.duration_seconds:.0f} s",
            "states reached        " + ", ".join(f"{s} {n}" for s, n in sorted(self.states.items())),
            f"missing               {len(self.missing)}" + _examples(self.missing),
            f"wrong                 {len(self.wrong)}" + _examples(self.wrong),
            f"failed, endpoint      {len(self.endpoint_failures)}" + _examples(self.endpoint_failures),
            f"dead-letter queue     {self.dlq_depth}",
            f"ingest queue left     {self.queue_left}",
            f"inference requests    {self.inference_requests} answered by the proxy "
            f"({per_image:.2f} per image; {transient} transient faults)",
            f"injected              {faults}",
            f"killed worker         {self.killed_worker}; crashed batches: {self.crashed_batches}",
            f"upload→result         all: p50 {seconds(p50)}, p95 {seconds(p95)}, max {seconds(slowest)}",
            "",
            *self.phase_table(),
        ]
        outage = self.phase(OUTAGE)
        if outage is not None:
            counted = outage.counted + (f"; {outage.cross_check}" if outage.cross_check else "")
            minutes = " ".join(str(n) for n in outage.per_minute) or "n/a (shorter than a minute)"
            lines += ["", f"outage, per minute    {minutes}", f"                      ({counted})"]
        if self.circuit_changes:
            lines += [
                "",
                "circuit, as the stack saw it:",
                *(f"  {change}" for change in self.circuit_changes),
            ]
        return [*lines, "", *self.target_table(options)]

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
                }
                for figures in self.phases
            ],
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
    phases = ", ".join(
        f"{spec.name} {spec.seconds:.0f} s with {spec.uploads} uploads" for spec in plan_phases(options)
    )
    block = [
        SOAK_BEGIN,
        "### Soak: the offline stack through a flaky endpoint, a 429 storm, an outage and a refused key "
        "(`make soak`, not part of `make bench`)",
        "",
        f"Latest run {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC on {os.cpu_count()} shared cores "
        f"(other work running; latencies are wall-clock on a loaded machine): {len(report.uploads)} uploads, "
        f"seed {options.seed}; phases: {phases}. Flaky: {options.fault_rate:.0%} transient faults at the "
        "endpoint (429 with Retry-After, 503, connection resets, non-JSON and prediction-less 200s) plus "
        "slow answers, and one ingest worker killed with SIGKILL mid-batch. The template's settings: 120 s "
        "function timeout, 4 attempts per invocation, 15 s × 2^n message backoff, one probe per 15 s while "
        "the circuit is open, deferrals of at most 60 s.",
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
