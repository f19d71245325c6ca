"""`s3kp export` and `s3kp view` against the offline stack: export rate and the viewer's first paint.

The stack runs as `s3kp up` runs it (moto server, the API function in its Lambda workers behind the
local HTTP API) but without the inference server: the results are written straight into the local
results table through `s3kp_core`'s `DynamoDBResultsStore` (the ingest side's own writer), which is
what 1,000 inferences would have left there, without spending minutes of CPU on them. Each result has
1-3 faces with 6 keypoints and an annotated JPEG in S3.

- Viewer: with 200 results in the table, headless Chromium (Debian's) loads the gallery; the figures
  are the Performance API's first-contentful-paint, the app's `s3kp:first-page` mark (first page of
  cards in the DOM) and when that page's thumbnails have all loaded.
- Export: 1,000 results in each format through the HTTP API; the baseline is listing alone (paging
  `/results` without the per-result detail reads) in the same process. Memory: the peak traced
  allocation of a JSONL export of 200 and of 1,000 results (flat when it streams).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from s3kp_core.ordering import event_order
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
from s3kp_core.results_store_dynamodb import DynamoDBResultsStore
from s3kp_core.skeletons import FACE_6

from benchmarks.browser import chromium_installed, headless_chromium
from benchmarks.servers import free_port
from s3kp import samples
from s3kp.export.run import ExportOptions, export
from s3kp.local.stack import LocalStack, StackOptions
from s3kp.results_api import ResultsApi
from s3kp.viewer.server import Viewer, ViewerServer
from s3kp.viewer.storage import storage_for

VIEWER_RESULTS = 200
EXPORT_RESULTS = 1000
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


def run() -> str:
    saved = dict(os.environ)
    options = StackOptions(
        aws_port=free_port(),
        api_port=free_port(),
        inference_port=free_port(),
        inference_url="http://127.0.0.1:9",  # nothing is uploaded: no inference server needed
        api_key="unused",
        log_dir=Path(tempfile.mkdtemp(prefix="s3kp-bench-logs-")),
    )
    stack = LocalStack(options, echo=lambda line: None, report_batches=False)
    try:
        stack.start()
        writer = _Writer(stack)
        writer.add(VIEWER_RESULTS)
        viewer = _viewer_figures(stack)
        writer.add(EXPORT_RESULTS - VIEWER_RESULTS)
        exports = _export_figures(stack)
    finally:
        stack.stop()
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(options.log_dir, ignore_errors=True)
    return _report(viewer, exports)


class _Writer:
    def __init__(self, stack: LocalStack) -> None:
        resources = stack.resources
        self.bucket = resources.bucket
        self.s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint, region_name="us-east-1")
        table = boto3.resource("dynamodb", endpoint_url=stack.aws_endpoint, region_name="us-east-1").Table(
            resources.results_table
        )
        self.store = DynamoDBResultsStore(table, self.s3, predictions_prefix=resources.predictions_prefix)
        self.annotated = samples.encode(samples.astronaut().resize((640, 640)))
        self.count = 0
        self.rng = random.Random(11)

    def add(self, count: int) -> None:
        for _ in range(count):
            index = self.count
            self.count += 1
            key = f"incoming/bench/photo-{index:05}.jpg"
            annotated = ObjectRef(bucket=self.bucket, key=f"annotated/bench/photo-{index:05}.jpg")
            self.s3.put_object(Bucket=self.bucket, Key=annotated.key, Body=self.annotated)
            predictions = tuple(self._face() for _ in range(self.rng.randint(1, 3)))
            counts, detections, keypoints = summarize(predictions)
            moment = BASE_TIME + timedelta(seconds=index)
            record = ResultRecord(
                result_id=result_id_for(self.bucket, key),
                status=Status.SUCCEEDED,
                source=SourceObject(bucket=self.bucket, key=key, size=120_000),
                model_id="faces/2",
                image=ImageSize(width=1024, height=768),
                counts=counts,
                detections=detections,
                keypoints=keypoints,
                annotated=annotated,
                created_at=moment,
                updated_at=moment,
                predictions=predictions,
            )
            assert self.store.save(record, order=event_order(None, moment, moment))

    def _face(self) -> Prediction:
        rng = self.rng
        cx, cy, size = rng.uniform(100, 900), rng.uniform(100, 650), rng.uniform(60, 180)
        keypoints = tuple(
            Keypoint(x=cx + rng.uniform(-size / 3, size / 3), y=cy + rng.uniform(-size / 3, size / 3),
                     confidence=rng.uniform(0.3, 1.0), class_id=slot, name=name)
            for slot, name in enumerate(FACE_6.keypoint_names)
        )  # fmt: skip
        return Prediction(
            x=cx, y=cy, width=size, height=size, confidence=rng.uniform(0.5, 1.0),
            class_name="face", class_id=0, keypoints=keypoints,
        )  # fmt: skip


def _export_figures(stack: LocalStack) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    api = ResultsApi(stack.api_url)
    out = Path(tempfile.mkdtemp(prefix="s3kp-bench-export-"))
    try:
        started = time.perf_counter()
        listed = sum(1 for _ in api.iter_results({}))
        figures["listing"] = listed / (time.perf_counter() - started)
        assert listed == EXPORT_RESULTS, listed
        for name in ("jsonl", "csv", "coco"):
            report = export(api, ExportOptions(format=name, output=str(out / f"results.{name}")))
            assert report.counts.results == EXPORT_RESULTS
            figures[name] = (report.rate, (out / f"results.{name}").stat().st_size)
        for limit in (VIEWER_RESULTS, EXPORT_RESULTS):
            tracemalloc.start()
            export(api, ExportOptions(format="jsonl", output=str(out / "peak.jsonl"), filters=_newest(limit)))
            figures[f"peak_{limit}"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    finally:
        api.close()
        shutil.rmtree(out, ignore_errors=True)
    return figures


def _newest(count: int) -> dict[str, str]:
    """A `since` filter that keeps the newest `count` results (one second apart from BASE_TIME)."""
    since = BASE_TIME + timedelta(seconds=EXPORT_RESULTS - count)
    return {"since": since.isoformat().replace("+00:00", "Z")}


def _viewer_figures(stack: LocalStack) -> dict[str, float] | str:
    if not chromium_installed():
        return "n/a (chromium and chromium-driver are not installed)"
    api = ResultsApi(stack.api_url)
    server = ViewerServer(Viewer(api, storage=storage_for(api, stack.aws_endpoint)), port=0)
    server.start()
    profile = tempfile.mkdtemp(prefix="s3kp-bench-chromium-")
    driver = headless_chromium(profile)
    try:
        runs = []
        for _ in range(3):  # the first load also warms the server's thumbnail cache; report each
            driver.get("about:blank")
            driver.get(server.url)
            runs.append(_page_timings(driver))
        return {"cold": runs[0], "warm": runs[-1]}  # type: ignore[dict-item]
    finally:
        driver.quit()
        server.stop()
        api.close()
        shutil.rmtree(profile, ignore_errors=True)


PAGE_TIMINGS = """
const done = arguments[0];
const check = () => {
  const mark = performance.getEntriesByName('s3kp:first-page')[0];
  // Thumbnails load lazily: those in the first screenful are the ones a user waits for.
  const images = [...document.querySelectorAll('.card img')]
    .filter(i => i.getBoundingClientRect().top < window.innerHeight);
  if (!mark || images.length === 0 || !images.every(i => i.complete && i.naturalWidth > 0)) {
    setTimeout(check, 20); return;
  }
  const paint = performance.getEntriesByName('first-contentful-paint')[0];
  done({fcp: paint ? paint.startTime : null, first_page: mark.startTime, thumbnails: performance.now(),
        cards: document.querySelectorAll('.card').length, visible: images.length});
};
check();
"""


def _page_timings(driver: Any) -> dict[str, float]:
    driver.set_script_timeout(120)
    return dict(driver.execute_async_script(PAGE_TIMINGS))


def _report(viewer: dict[str, Any] | str, exports: dict[str, Any]) -> str:
    lines = [
        "## Export and viewer (`s3kp export`, `s3kp view`)",
        "",
        f"Offline stack (moto server, the API function in its Lambda workers behind the local HTTP API); "
        f"{EXPORT_RESULTS} results written straight into the results table with s3kp_core's "
        "`DynamoDBResultsStore` (no inference), 1-3 faces × 6 keypoints each. moto answers each Query by "
        "scanning the table in Python, so listing is slower here than on DynamoDB. The machine is shared: "
        "absolute figures are noisy, the ratios less so.",
        "",
        "| export of 1,000 results | results/s | × listing alone | file size |",
        "|---|---:|---:|---:|",
    ]
    listing = exports["listing"]
    lines.append(f"| listing only (baseline: `/results` pages, no detail reads) | {listing:.0f} | 1.00 | |")
    for name in ("jsonl", "csv", "coco"):
        rate, size = exports[name]
        lines.append(f"| `--format {name}` | {rate:.0f} | {rate / listing:.2f} | {size / 1e6:.2f} MB |")
    peak_small, peak_large = exports[f"peak_{VIEWER_RESULTS}"], exports[f"peak_{EXPORT_RESULTS}"]
    lines += [
        "",
        f"Peak traced memory of a JSONL export: {peak_small / 1e6:.2f} MB for {VIEWER_RESULTS} results, "
        f"{peak_large / 1e6:.2f} MB for {EXPORT_RESULTS} ({peak_large / peak_small:.2f}×: it streams).",
        "",
    ]
    if isinstance(viewer, str):
        lines.append(f"Viewer first paint with {VIEWER_RESULTS} results: {viewer}")
        return "\n".join(lines)
    lines += [
        f"Viewer with {VIEWER_RESULTS} results in the table (headless Chromium, 1280×900; "
        "ms from navigation):",
        "",
        "| load | first-contentful-paint | first page of cards | first screen's thumbnails loaded "
        "| cards (on screen) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("cold", "warm"):
        run = viewer[name]
        timings = f"{run['fcp']:.0f} | {run['first_page']:.0f} | {run['thumbnails']:.0f}"
        lines.append(f"| {name} | {timings} | {run['cards']} ({run['visible']}) |")
    lines.append("")
    lines.append("cold: the viewer's thumbnail cache empty (each annotated JPEG read from S3 and reduced); "
                 "warm: the third load.")  # fmt: skip
    return "\n".join(lines)
