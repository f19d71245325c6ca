"""The records of a batch in parallel (RECORD_CONCURRENCY): billed duration, cost and peak memory.

- Billed duration: the ingest handler in a Lambda worker process (`s3kp.local.workers`, the offline
  stack's sandbox: its own interpreter, the template's environment, 1024 MB as declared), pinned to one
  CPU while the servers share the other, invoked with real SQS batches of BATCH messages (uploads to moto
  server, received from the ingest queue). The inference endpoint is the project's model server behind a
  proxy that answers each request a fixed time after it arrived (100, 300, 800 ms: a hosted API's round
  trip, e.g. Roboflow's). Billed duration = the invocation's wall time, rounded up to the millisecond, as
  Lambda bills it; per image = / BATCH. Every configuration runs REPEATS batches after one warm-up
  batch (a cold start), interleaved, on fresh uploads; medians.
- Cost: GB-s per image (billed seconds × the function's memory in GB) and USD per million images of the
  ingest function alone (duration plus one request per batch), at the Arm price in PRICES.
- Memory: a batch of BATCH 100-megapixel PNGs (10000×10000 RGB: 381 MiB of decoded pixels each, just
  under the per-image limit) in a fresh worker; its peak RSS (VmHWM). With the default settings, in
  sequence, and with parts of the bounds switched off (`benchmarks/ingest_variants.py`).

The machine is shared: absolute times are noisy; the ratios within one run are the figures to trust.
Lambda at 1024 MB gets about 0.58 of a vCPU, less than the one core the handler gets here, so the CPU
work of a batch (decode, annotate) weighs more there; the CPU time per image is printed for that reason.
"""

from __future__ import annotations

import io
import logging
import math
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from PIL import Image

from benchmarks.servers import aws_environment, latency_proxy, model_server, moto_server
from s3kp import samples
from s3kp.local.lambda_runtime import LambdaContext, failed_message_ids, sqs_event
from s3kp.local.resources import LocalResources, create_resources, ingest_environment
from s3kp.local.template_functions import function_with_handler, template_functions
from s3kp.local.workers import FunctionConfig, LambdaWorker, lambda_environment
from s3kp.paths import cache_dir

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"
MODEL_ID = "faces/1"
BATCH = 10
LATENCIES_MS = (100, 300, 800)
# At 300 ms every concurrency below is measured (the default is chosen from them); elsewhere the ends.
CONCURRENCIES = {100: (1, 10), 300: (1, 2, 5, 10), 800: (1, 10)}
REPEATS = 3
RATIO_GOAL = 1 / 3  # billed duration per image, concurrent / sequential, at 300 ms
MEMORY_GOAL_MIB = 768
HANDLER_CPU = 1  # the worker's CPU; the servers and this process share the others
PRICE_GB_SECOND = 0.0000133334  # USD, Arm, the first 7.5 billion GB-s a month
PRICE_REQUEST = 0.20 / 1_000_000  # USD
PRICE_SOURCE = (
    "AWS Lambda pricing page (aws.amazon.com/lambda/pricing), US East (N. Virginia), Arm: $0.0000133334 "
    "per GB-s and $0.20 per 1M requests, taken from the author's knowledge of the page as of 2025 and "
    "**not fetched**: check it before relying on the dollars"
)


def run() -> str:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with (
        _pinned_away_from(HANDLER_CPU),
        model_server(API_KEY) as inference,
        moto_server() as aws,
        aws_environment(aws.url),
    ):
        resources = create_resources(aws.url, api_key=API_KEY, name_prefix="bench-rc")
        photo = _phone_photo()
        timings = {latency: _billed(resources, inference.url, latency, photo) for latency in LATENCIES_MS}
        memory = _memory(resources, inference.url)
    return _markdown(timings, memory, len(photo))


# --- billed duration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    billed_ms: float  # median billed duration of a batch
    cpu_ms: float  # median CPU time of the worker per batch

    @property
    def per_image_ms(self) -> float:
        return self.billed_ms / BATCH

    @property
    def gb_seconds(self) -> float:
        return self.per_image_ms / 1000 * _memory_gb()

    @property
    def usd_per_million(self) -> float:
        return 1_000_000 * (self.gb_seconds * PRICE_GB_SECOND + PRICE_REQUEST / BATCH)


def _billed(
    resources: LocalResources, inference_url: str, latency_ms: int, photo: bytes
) -> dict[int, Figures]:
    print(f"[bench] record_concurrency: {latency_ms} ms endpoint …", file=sys.stderr, flush=True)
    samples_ms: dict[int, list[tuple[float, float]]] = {c: [] for c in CONCURRENCIES[latency_ms]}
    with latency_proxy(inference_url, latency_ms / 1000) as proxy, ExitStack() as workers:
        running = {c: workers.enter_context(_worker(resources, proxy.url, c)) for c in samples_ms}
        for worker in running.values():
            _invoke(resources, worker, [photo] * BATCH)  # the cold start and first connections
        for _ in range(REPEATS):
            for concurrency, worker in running.items():
                samples_ms[concurrency].append(_invoke(resources, worker, [photo] * BATCH))
    return {
        c: Figures(
            billed_ms=statistics.median(billed for billed, _ in runs),
            cpu_ms=statistics.median(cpu for _, cpu in runs),
        )
        for c, runs in samples_ms.items()
    }


@contextmanager
def _worker(
    resources: LocalResources,
    inference_url: str,
    concurrency: int,
    handler: str = "ingest_handler.lambda_handler",
    extra_environment: dict[str, str] | None = None,
) -> Iterator[LambdaWorker]:
    declared = function_with_handler(template_functions(ROOT / "template.yaml"), "ingest_handler")
    function = FunctionConfig(
        name="bench-rc-ingest",
        code_dir=ROOT / declared.code_uri,
        handler=handler,
        environment=ingest_environment(
            resources,
            inference_url=inference_url,
            model_id=MODEL_ID,
            RECORD_CONCURRENCY=str(concurrency),
            **(extra_environment or {}),
        ),
        timeout_seconds=declared.timeout_seconds,
        memory_mb=declared.memory_mb,
    )
    worker = LambdaWorker(
        function,
        lambda_environment(function, resources.region, {}),
        cache_dir() / "logs" / "bench-record-concurrency.log",
    )
    worker.start()
    assert worker.pid is not None
    if (os.cpu_count() or 1) > HANDLER_CPU:
        os.sched_setaffinity(worker.pid, {HANDLER_CPU})
    try:
        yield worker
    finally:
        worker.close()


def _invoke(resources: LocalResources, worker: LambdaWorker, images: list[bytes]) -> tuple[float, float]:
    """Upload `images` under fresh keys, invoke `worker` with their notifications as one SQS batch;
    the billed ms and the worker's CPU ms. Every image must end `succeeded`."""
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    run = uuid.uuid4().hex[:8]
    keys = [f"{resources.input_prefix}bench-rc/{run}/{index}.jpg" for index in range(len(images))]
    for key, image in zip(keys, images, strict=True):
        s3.put_object(Bucket=resources.bucket, Key=key, Body=image)
    messages = _receive(sqs, resources.queue_url, len(images))
    assert worker.pid is not None
    cpu_before = _cpu_seconds(worker.pid)
    started = time.perf_counter()
    response = worker.invoke(sqs_event(messages, resources.queue_arn), LambdaContext(timeout_seconds=120))
    billed = math.ceil((time.perf_counter() - started) * 1000)
    cpu = (_cpu_seconds(worker.pid) - cpu_before) * 1000
    assert failed_message_ids(response) == set(), response
    # What the event source mapping does with the messages of a successful batch.
    sqs.delete_message_batch(
        QueueUrl=resources.queue_url,
        Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)],
    )
    statuses = _statuses(resources, keys)
    assert statuses == ["succeeded"] * len(keys), statuses
    return billed, cpu


def _receive(sqs: Any, queue_url: str, count: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(messages) < count and time.monotonic() < deadline:
        messages += sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, count - len(messages)),
            MessageSystemAttributeNames=["All"],
            WaitTimeSeconds=1,
        ).get("Messages", [])
    assert len(messages) == count, f"{len(messages)} of {count} notifications arrived"
    return messages


def _statuses(resources: LocalResources, keys: list[str]) -> list[str | None]:
    from s3kp_core.results import result_id_for

    table = boto3.resource("dynamodb").Table(resources.results_table)
    items = [
        table.get_item(Key={"result_id": result_id_for(resources.bucket, key)}).get("Item") for key in keys
    ]
    return [str(item["status"]) if item else None for item in items]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


@contextmanager
def _pinned_away_from(cpu: int) -> Iterator[None]:
    """This process (and the servers it starts) off `cpu`, which the handler gets to itself."""
    previous = os.sched_getaffinity(0)
    others = previous - {cpu}
    if cpu in previous and others:
        os.sched_setaffinity(0, others)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)


def _memory_gb() -> float:
    declared = function_with_handler(template_functions(ROOT / "template.yaml"), "ingest_handler")
    return declared.memory_mb / 1024


def _phone_photo() -> bytes:
    """The astronaut at a phone's 12 MP (4000×3000) with sensor-like grain: a ~3 MB JPEG, as a real one."""
    base = samples.astronaut().resize((4000, 3000), Image.Resampling.BICUBIC)
    pixels = np.asarray(base, dtype=np.float32)
    noise = np.random.default_rng(7).normal(0.0, 6.0, pixels.shape).astype(np.float32)
    return samples.encode(Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)))


# --- peak memory ----------------------------------------------------------------------------------

VARIANTS = "benchmarks.ingest_variants.lambda_handler"
# (label, RECORD_CONCURRENCY, handler, extra environment)
MEMORY_CASES: tuple[tuple[str, int, str, dict[str, str]], ...] = (
    ("defaults: RECORD_CONCURRENCY=10, memory budgets", 10, "ingest_handler.lambda_handler", {}),
    ("in sequence: RECORD_CONCURRENCY=1", 1, "ingest_handler.lambda_handler", {}),
    ("RECORD_CONCURRENCY=10, no memory budgets", 10, VARIANTS, {"S3KP_BENCH_BUDGETS": "off"}),
    (
        "RECORD_CONCURRENCY=10, memory budgets, glibc's default mmap threshold",
        10,
        VARIANTS,
        {"S3KP_BENCH_MALLOPT": "off"},
    ),
)


@dataclass(frozen=True)
class MemoryRow:
    label: str
    peak_mib: float
    seconds: float


def _memory(resources: LocalResources, inference_url: str) -> list[MemoryRow]:
    print("[bench] record_concurrency: 100 MP PNGs …", file=sys.stderr, flush=True)
    png = _hundred_megapixel_png()
    rows = []
    for label, concurrency, handler, environment in MEMORY_CASES:
        with _worker(resources, inference_url, concurrency, handler, environment) as worker:
            assert worker.pid is not None
            started = time.perf_counter()
            _invoke(resources, worker, [png] * BATCH)
            rows.append(MemoryRow(label, _peak_rss_mib(worker.pid), time.perf_counter() - started))
    return rows


def _hundred_megapixel_png() -> bytes:
    """10000×10000 RGB (a smooth ramp with the astronaut in the middle): 6 MB, 381 MiB decoded."""
    ramp = Image.linear_gradient("L").resize((10_000, 10_000), Image.Resampling.BILINEAR)
    image = Image.merge(
        "RGB", (ramp, ramp.transpose(Image.Transpose.ROTATE_90), Image.new("L", ramp.size, 90))
    )
    image.paste(samples.astronaut().resize((3000, 3000)), (3500, 3500))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


# --- report ---------------------------------------------------------------------------------------


def _markdown(timings: dict[int, dict[int, Figures]], memory: list[MemoryRow], photo_bytes: int) -> str:
    at_300 = timings[300]
    ratio = at_300[10].per_image_ms / at_300[1].per_image_ms
    verdict = "met" if ratio <= RATIO_GOAL else "**not met**"
    lines = [
        "### Ingest: records of a batch in parallel (`RECORD_CONCURRENCY`), billed duration and cost",
        "",
        f"The ingest handler in a Lambda worker process ({_memory_gb() * 1024:.0f} MB as the template "
        f"declares, pinned to one CPU), SQS batches of {BATCH} messages, each a 12 MP phone photo "
        f"(4000×3000 JPEG with grain, {photo_bytes / 1e6:.1f} MB); the model server (`{MODEL_ID}`) behind a "
        "proxy that answers every request a fixed time after it arrived, as a hosted endpoint "
        "(Roboflow's) would; AWS on moto server. Billed = the invocation's wall time, rounded up to the "
        f"ms; medians of {REPEATS} batches per configuration after a warm-up batch, interleaved. "
        f"Goal at 300 ms: concurrent / sequential billed duration per image ≤ {RATIO_GOAL:.2f}: "
        f"**{ratio:.2f}** ({verdict}). The handler has a whole core here; Lambda at 1024 MB about 0.58 "
        "of a vCPU, which stretches the CPU column by 1/0.58 there: a parallel batch of such photos is "
        "CPU-bound, so its gain on Lambda is smaller than here.",
        "",
        "| endpoint latency | RECORD_CONCURRENCY | billed ms per batch | billed ms per image "
        "| vs in sequence | handler CPU ms per image | GB-s per image | USD per million images |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for latency, by_concurrency in timings.items():
        sequential = by_concurrency[1]
        for concurrency, figures in by_concurrency.items():
            lines.append(
                f"| {latency} ms | {concurrency} | {figures.billed_ms:,.0f} | {figures.per_image_ms:.0f} "
                f"| {figures.per_image_ms / sequential.per_image_ms:.2f}× | {figures.cpu_ms / BATCH:.0f} "
                f"| {figures.gb_seconds:.4f} | **{figures.usd_per_million:,.2f}** |"
            )
    lines += [
        "",
        f"Cost of the ingest function alone: GB-s × ${PRICE_GB_SECOND:.10f} + one request per batch of "
        f"{BATCH} at ${PRICE_REQUEST * 1e6:.2f} per million. Price source: {PRICE_SOURCE}. Not included: "
        "the endpoint's own price (Roboflow's hosted API bills per call), S3, SQS, DynamoDB.",
        "",
        f"**Peak memory, a batch of {BATCH} 100 MP PNGs** (10000×10000 RGB, 381 MiB of decoded pixels "
        f"each), a fresh worker per case, peak RSS (VmHWM) of its process. Goal with the defaults: "
        f"≤ {MEMORY_GOAL_MIB} MiB.",
        "",
        "| case | peak RSS (MiB) | of the goal | batch time (s) |",
        "|---|---:|---:|---:|",
        *(
            f"| {row.label} | **{row.peak_mib:,.0f}** | {row.peak_mib / MEMORY_GOAL_MIB:.2f}× "
            f"| {row.seconds:.1f} |"
            for row in memory
        ),
    ]
    return "\n".join(lines)
