"""The results API: handler latency, the listing's cost at 100 vs 10,000 items, and cold-start import time.

The handler runs in this process on real HTTP API v2 events (`s3kp.local.apigw`) against moto server
in its own process (so the two do not share a GIL). Items are loaded with BatchWriteItem.

Two figures for "does a page get slower as the table grows": latency, and the number of items
DynamoDB evaluates per page (`ScannedCount`, summed over the page's Queries), which is what a Query
costs on DynamoDB itself. moto answers a Query by scanning the whole table in Python, so its latency
grows with the table even though the access pattern does not; the evaluated-item count shows the
pattern's own cost.

The same requests are then timed against dynalite (DynamoDB only; S3 and Secrets Manager stay on moto,
`AWS_ENDPOINT_URL_DYNAMODB` redirects the handler's DynamoDB client), which answers a Query from a
sorted index as DynamoDB does: there, a page's latency is the access pattern's, not the stand-in's.
"""

from __future__ import annotations

import importlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from s3kp_core.cursors import CursorCodec
from s3kp_core.results import (
    ImageSize,
    Keypoint,
    ObjectRef,
    Prediction,
    ResultRecord,
    SourceObject,
    Status,
    result_id_for,
    summarize,
)
from s3kp_core.results_query import ListFilters, ResultsQuery
from s3kp_core.results_query_aws import DynamoDBItems, S3Documents
from s3kp_core.results_schema import to_item

from benchmarks.servers import (
    DYNALITE_VERSION,
    aws_environment,
    dynalite_command,
    dynalite_server,
    moto_server,
)
from s3kp.local.apigw import http_api_event, http_response
from s3kp.local.cfn_template import load_template
from s3kp.local.lambda_runtime import LambdaContext
from s3kp.local.resources import (
    RESULTS_TABLE,
    LocalResources,
    _ensure_table,
    api_environment,
    create_resources,
)

ROOT = Path(__file__).resolve().parents[1]
SMALL, LARGE = 100, 10_000
PAGE = 20
REPEATS = 40
LIST_REPEATS = 15
DYNALITE_REPEATS = 100  # dynalite answers in milliseconds: enough samples for a p99 worth the name
LOAD_THREADS = 4
IMPORT_RUNS = 7
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def run() -> str:
    dynalite = dynalite_command()
    with ExitStack() as servers:
        # Both servers before any thread exists: children are forked (see s3kp.local.processes).
        aws = servers.enter_context(moto_server())
        dynamodb = servers.enter_context(dynalite_server(dynalite)) if dynalite else None
        servers.enter_context(aws_environment(aws.url, POWERTOOLS_LOG_LEVEL="WARNING"))
        resources = {
            SMALL: create_resources(aws.url, name_prefix="bench-small"),
            LARGE: create_resources(aws.url, name_prefix="bench-large"),
        }
        items = {size: _items(size, found.bucket) for size, found in resources.items()}
        load_seconds = sum(_load(found.results_table, items[size]) for size, found in resources.items())
        rows = {size: _handler_figures(found, REPEATS, LIST_REPEATS) for size, found in resources.items()}
        shard_reads = _parallel_vs_sequential(resources[LARGE], LIST_REPEATS)
        cold = _cold_start(api_environment(resources[SMALL]))
        faithful = _dynalite_figures(dynamodb.url, resources, items) if dynamodb else None
    return _markdown(rows, shard_reads, cold, load_seconds) + "\n\n" + _dynalite_markdown(faithful, rows)


def _dynalite_figures(
    endpoint: str, resources: dict[int, LocalResources], items: dict[int, list[dict[str, Any]]]
) -> dict[str, Any]:
    """The handler's figures with its DynamoDB reads on dynalite; tables created from template.yaml."""
    with aws_environment(resources[SMALL].endpoint_url, AWS_ENDPOINT_URL_DYNAMODB=endpoint):
        client = boto3.client("dynamodb")
        template = load_template()
        for found in resources.values():
            # The one helper that turns template.yaml's table into a CreateTable request (keys, GSIs):
            # private, but a copy here could drift from the template.
            _ensure_table(client, found.results_table, template, RESULTS_TABLE)
        load_seconds = sum(_load(found.results_table, items[size]) for size, found in resources.items())
        overrides = {"AWS_ENDPOINT_URL_DYNAMODB": endpoint}
        rows = {
            size: _handler_figures(found, DYNALITE_REPEATS, DYNALITE_REPEATS, **overrides)
            for size, found in resources.items()
        }
        shard_reads = _parallel_vs_sequential(resources[LARGE], DYNALITE_REPEATS)
    return {"rows": rows, "shard_reads": shard_reads, "load_seconds": load_seconds}


# ---------------------------------------------------------------------------------------------- data


def _record(index: int, bucket: str) -> ResultRecord:
    status = (Status.SUCCEEDED, Status.SUCCEEDED, Status.FAILED, Status.SKIPPED)[index % 4]
    key = f"incoming/{index % 50:02}/image-{index:06}.jpg"
    moment = BASE_TIME + timedelta(seconds=index)
    predictions = None
    if status is Status.SUCCEEDED:
        keypoints = tuple(Keypoint(x=k, y=k, confidence=0.9, class_id=k, name=f"kp{k}") for k in range(17))
        predictions = (
            Prediction(
                x=50,
                y=60,
                width=70,
                height=80,
                confidence=0.9,
                class_name="person",
                class_id=0,
                keypoints=keypoints,
            ),
        )
    counts, detections, keypoint_count = summarize(predictions or ())
    result_id = result_id_for(bucket, key)
    return ResultRecord(
        result_id=result_id,
        status=status,
        source=SourceObject(bucket=bucket, key=key, size=100_000),
        model_id="pose/1",
        image=ImageSize(width=640, height=480) if predictions else None,
        predictions=predictions,
        counts=counts,
        detections=detections,
        keypoints=keypoint_count,
        timings_ms={"inference": 30.5, "total": 80.25},
        annotated=ObjectRef(bucket=bucket, key=f"annotated/{result_id}.jpg") if predictions else None,
        created_at=moment,
        updated_at=moment,
    )


def _items(count: int, bucket: str) -> list[dict[str, Any]]:
    return [to_item(_record(index, bucket)) for index in range(count)]


def _load(table_name: str, items: list[dict[str, Any]]) -> float:
    """BatchWriteItem (25 items per call, unprocessed items retried) from LOAD_THREADS threads."""

    def write(chunk: list[dict[str, Any]]) -> None:
        table = boto3.session.Session().resource("dynamodb").Table(table_name)  # resources are per thread
        with table.batch_writer() as batch:
            for item in chunk:
                batch.put_item(Item=item)

    started = time.perf_counter()
    with ThreadPoolExecutor(LOAD_THREADS) as pool:
        list(pool.map(write, (items[n::LOAD_THREADS] for n in range(LOAD_THREADS))))
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------- handler


def _import_handler(environment: dict[str, str]) -> ModuleType:
    os.environ.update(environment)
    for folder in (ROOT / "layers" / "shared", ROOT / "functions" / "api"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    import api_dependencies

    api_dependencies.reset()
    sys.modules.pop("api_handler", None)
    return importlib.import_module("api_handler")


def _handler_figures(
    resources: LocalResources, repeats: int, list_repeats: int, **environment: str
) -> dict[str, Any]:
    handler = _import_handler(api_environment(resources, POWERTOOLS_LOG_LEVEL="WARNING", **environment))
    scanned = _ScanCounter()
    record_ids = [
        result_id_for(resources.bucket, _record(i, resources.bucket).source.key) for i in range(0, 100, 7)
    ]

    def call(path: str, query: str = "") -> dict[str, Any]:
        event = http_api_event("GET", path, query, {"user-agent": "bench"}, b"")
        status, _, body = http_response(handler.lambda_handler(event, LambdaContext(function_name="api")))
        assert status == 200, body
        return {"bytes": len(body)}

    call("/results", f"limit={PAGE}")  # warm: clients, connection pool, shard threads
    get_one = _timed(lambda n: call(f"/results/{record_ids[n % len(record_ids)]}"), repeats)
    with scanned.counting():
        first_page = _timed(lambda _: call("/results", f"limit={PAGE}"), list_repeats)
        per_page = scanned.total / list_repeats
    status_page = _timed(lambda _: call("/results", f"limit={PAGE}&status=failed"), list_repeats)
    return {"get_one": get_one, "list": first_page, "status": status_page, "scanned_per_page": per_page}


class _ScanCounter:
    """Sums `ScannedCount` of every Query made by any DynamoDB client while counting."""

    def __init__(self) -> None:
        self.total = 0
        self._active = False
        import api_dependencies

        api_dependencies._dynamodb_client().meta.events.register("after-call.dynamodb.Query", self._count)

    def _count(self, parsed: dict[str, Any], **_: Any) -> None:
        if self._active:
            self.total += int(parsed.get("ScannedCount", 0))

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.total, self._active = 0, True
        try:
            yield
        finally:
            self._active = False


def _parallel_vs_sequential(resources: LocalResources, repeats: int) -> dict[str, list[float]]:
    figures = {}
    for label, parallel in (("parallel (8 threads)", True), ("sequential", False)):
        query = ResultsQuery(
            items=DynamoDBItems(boto3.client("dynamodb"), resources.results_table),
            documents=S3Documents(boto3.client("s3")),
            cursors=CursorCodec(b"bench-cursor-key-0123"),
            table_name=resources.results_table,
            parallel=parallel,
        )
        query.list_results(ListFilters(), PAGE, None)

        def list_page(_: int, query: ResultsQuery = query) -> object:
            return query.list_results(ListFilters(), PAGE, None)

        figures[label] = _timed(list_page, repeats)
        query.close()
    return figures


def _timed(action: Callable[[int], Any], repeats: int) -> list[float]:
    samples = []
    for n in range(repeats):
        started = time.perf_counter()
        action(n)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


# ---------------------------------------------------------------------------------------------- cold start

_IMPORT_PROBE = """
import sys, time
started = time.perf_counter()
import api_handler
imported = time.perf_counter()
from s3kp.local.apigw import http_api_event
from s3kp.local.lambda_runtime import LambdaContext
api_handler.lambda_handler(http_api_event("GET", "/results", "limit=20", {}, b""), LambdaContext())
answered = time.perf_counter()
print(imported - started, answered - imported, "PIL" in sys.modules, "aws_xray_sdk" in sys.modules)
"""

_TRACER_PROBE = """
import time
started = time.perf_counter()
from aws_lambda_powertools import Tracer
Tracer()
print(time.perf_counter() - started)
"""


def _cold_start(environment: dict[str, str]) -> dict[str, Any]:
    env = {**os.environ, **environment, "POWERTOOLS_LOG_LEVEL": "WARNING"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "functions" / "api"), str(ROOT / "layers" / "shared"), str(ROOT / "src")]
    )
    imports, first_calls, pillow, xray = [], [], False, False
    for _ in range(IMPORT_RUNS):
        output = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout.split()
        imports.append(float(output[0]) * 1000)
        first_calls.append(float(output[1]) * 1000)
        pillow, xray = pillow or output[2] == "True", xray or output[3] == "True"
    tracer = [
        float(
            subprocess.run(
                [sys.executable, "-c", _TRACER_PROBE], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        * 1000
        for _ in range(3)
    ]
    return {"import": imports, "first": first_calls, "pillow": pillow, "xray": xray, "tracer": tracer}


# ---------------------------------------------------------------------------------------------- report


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cells(samples: list[float]) -> str:
    return f"{statistics.median(samples):.1f} | {_percentile(samples, 0.99):.1f}"


_REQUESTS_MEASURED = (
    ("GET /results/{id}", "get_one"),
    (f"GET /results?limit={PAGE}", "list"),
    (f"GET /results?status=failed&limit={PAGE}", "status"),
)


def _request_rows(rows: dict[int, dict[str, Any]]) -> list[str]:
    lines = []
    for size, figures in rows.items():
        for label, key in _REQUESTS_MEASURED:
            scanned = f"{figures['scanned_per_page']:.0f}" if key == "list" else ""
            lines.append(f"| {label} | {size:,} | {_cells(figures[key])} | {scanned} |")
    return lines


def _markdown(
    rows: dict[int, dict[str, Any]],
    shard_reads: dict[str, list[float]],
    cold: dict[str, Any],
    load_seconds: float,
) -> str:
    lines = [
        "### Results API (handler in process, moto server as DynamoDB/S3)",
        "",
        f"Real HTTP API v2 events through `api_handler.lambda_handler`: {REPEATS} timed get-one calls, "
        f"{LIST_REPEATS} timed pages of {PAGE}. Tables loaded with BatchWriteItem "
        f"({SMALL + LARGE:,} items in {load_seconds:.1f} s; succeeded items carry 17 keypoints).",
        "",
        "| request | items stored | p50 ms | p99 ms | items evaluated per page |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += _request_rows(rows)
    small, large = rows[SMALL], rows[LARGE]
    latency_ratio = statistics.median(large["list"]) / statistics.median(small["list"])
    scanned_ratio = large["scanned_per_page"] / small["scanned_per_page"]
    sequential = statistics.median(shard_reads["sequential"])
    parallel = statistics.median(shard_reads["parallel (8 threads)"])
    lines += [
        "",
        f"**List page, {LARGE:,} vs {SMALL} items stored: items evaluated ×{scanned_ratio:.2f}** (a page's "
        "cost on DynamoDB, independent of table size); latency ×"
        f"{latency_ratio:.2f} on moto, whose Query walks every item of the table in Python and spends "
        "milliseconds per returned item on projection: its latency is not DynamoDB's.",
        "",
        f"| one page's shard Queries ({LARGE:,} items) | p50 ms | p99 ms |",
        "|---|---:|---:|",
        *(f"| {label} | {_cells(samples)} |" for label, samples in shard_reads.items()),
        "",
        f"Parallel / sequential: ×{sequential / parallel:.2f}. moto serves one CPU-bound process, so threads "
        "cannot overlap its work; against DynamoDB the 8 Queries overlap their network round trips.",
        "",
        f"| cold start (fresh interpreter, {IMPORT_RUNS} runs) | median ms | max ms |",
        "|---|---:|---:|",
        f"| `import api_handler` (settings validated) | {_median_max(cold['import'])} |",
        f"| first request after import (boto3, clients, secret, Queries) | {_median_max(cold['first'])} |",
        f"| for comparison: Powertools `Tracer()` alone (X-Ray SDK) | {_median_max(cold['tracer'])} |",
        "",
        f"Goal: import < 250 ms. Pillow imported: {'yes' if cold['pillow'] else 'no'}; "
        f"X-Ray SDK imported: {'yes' if cold['xray'] else 'no'}.",
    ]
    return "\n".join(lines)


def _dynalite_markdown(faithful: dict[str, Any] | None, moto_rows: dict[int, dict[str, Any]]) -> str:
    heading = "### Results API on dynalite (DynamoDB reads from a real index)"
    if faithful is None:
        return (
            f"{heading}\n\nSkipped: dynalite {DYNALITE_VERSION} could not be run (no `node`, or "
            "`npm install` into `.cache/dynalite` failed; the run's stderr says which). With Node.js and npm "
            "on PATH the benchmark installs it there on first use."
        )
    rows = faithful["rows"]
    lines = [
        heading,
        "",
        f"The same handler, events and items; its DynamoDB client on dynalite {DYNALITE_VERSION} (in memory, "
        "a Query reads a sorted index as DynamoDB does) through `AWS_ENDPOINT_URL_DYNAMODB`, S3 and the "
        f"cursor secret still on moto. {DYNALITE_REPEATS} timed calls per request. Tables created from "
        f"template.yaml's keys and GSIs, loaded with BatchWriteItem ({SMALL + LARGE:,} items in "
        f"{faithful['load_seconds']:.1f} s).",
        "",
        "| request | items stored | p50 ms | p99 ms | items evaluated per page |",
        "|---|---:|---:|---:|---:|",
        *_request_rows(rows),
        "",
        f"| {LARGE:,} / {SMALL} items stored | moto p50 | moto p99 | dynalite p50 | dynalite p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, key in _REQUESTS_MEASURED:
        lines.append(f"| {label} | {_ratios(moto_rows, key)} | {_ratios(rows, key)} |")
    list_p50 = statistics.median(rows[LARGE]["list"]) / statistics.median(rows[SMALL]["list"])
    shard_reads = faithful["shard_reads"]
    sequential = statistics.median(shard_reads["sequential"])
    parallel = statistics.median(shard_reads["parallel (8 threads)"])
    lines += [
        "",
        f"**List page on dynalite, {LARGE:,} vs {SMALL} items stored: latency ×{list_p50:.2f} (p50)**, "
        f"items evaluated ×{rows[LARGE]['scanned_per_page'] / rows[SMALL]['scanned_per_page']:.2f}: a page "
        "costs the same whatever the table holds.",
        "",
        f"| one page's shard Queries on dynalite ({LARGE:,} items) | p50 ms | p99 ms |",
        "|---|---:|---:|",
        *(f"| {label} | {_cells(samples)} |" for label, samples in shard_reads.items()),
        "",
        f"Parallel / sequential: ×{sequential / parallel:.2f}. On loopback a round trip is short and "
        "dynalite answers from one Node.js thread, so threads gain little here; over a network each Query "
        "waits for its round trip, and those the threads overlap.",
    ]
    return "\n".join(lines)


def _ratios(rows: dict[int, dict[str, Any]], key: str) -> str:
    large, small = rows[LARGE][key], rows[SMALL][key]
    p50 = statistics.median(large) / statistics.median(small)
    p99 = _percentile(large, 0.99) / _percentile(small, 0.99)
    return f"×{p50:.2f} | ×{p99:.2f}"


def _median_max(samples: list[float]) -> str:
    return f"{statistics.median(samples):.0f} | {max(samples):.0f}"
