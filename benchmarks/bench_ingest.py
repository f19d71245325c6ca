"""The ingest flow per stage against the seed's way (roboflow-python), on the same local servers.

- Ours: `s3kp_core.processing.process_object` with its production collaborators (S3 object store,
  pooled inference client, DynamoDB results store) against moto server and `s3kp model-server`:
  draft-decode, downscale to 1024 px, infer, rescale, annotate at 2048 px, put, write.
- The seed's: get the object to a file, `KeypointDetectionModel(...).predict(path).json()` (re-encodes
  and sends the full image), `.save()` (draws boxes), put the drawing, write the JSON to DynamoDB.
Bytes sent are counted on the wire (every `requests` body), for both clients alike. Keypoint distance
is ours (downscaled, rescaled back) against the seed's answer on the full-resolution image.
Also the cold start: `import ingest_handler` in fresh interpreters with Lambda's environment, the first
invocation's setup, and where the time goes (`-X importtime`, per package).
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import requests
from requests.adapters import HTTPAdapter

from benchmarks.servers import aws_environment, model_server, moto_server
from s3kp import samples

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"
MODEL_ID = "faces/1"
# (label, long side, film grain, repeats). The astronaut at 3464 px square is 12.0 megapixels; upscaled,
# it is unnaturally smooth (1.1 MB), so the "photo" variant adds sensor-like grain, which brings the
# JPEG to the 3-6 MB of a real 12 MP phone photo.
IMAGES = (
    ("12 MP photo (grain)", 3464, 6.0, 5),
    ("12 MP smooth upscale", 3464, 0.0, 5),
    ("640 px JPEG", 640, 0.0, 8),
)
STAGES = ("download", "decode", "resize", "encode", "inference", "parse", "annotate", "put", "write")
IMPORT_RUNS = 7
COLD_START_GOAL_MS = 500


def run() -> str:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    sys.path[:0] = [str(ROOT / "functions" / "ingest"), str(ROOT / "layers" / "shared")]
    # The model server first: moto in process starts threads, and children are forked before any thread.
    with model_server(API_KEY) as inference, moto_server(in_process=True) as aws, aws_environment(aws.url):
        from s3kp.local.resources import create_resources

        resources = create_resources(aws.url, api_key=API_KEY, name_prefix="bench")
        rows = [
            _compare(resources, inference.url, label, _image(side, grain), repeats)
            for label, side, grain, repeats in IMAGES
        ]
    return _markdown(rows) + "\n\n" + cold_start_markdown(cold_start())


def _image(side: int, grain: float) -> bytes:
    if not grain:
        return samples.upscaled_jpeg("astronaut", side)
    import io

    import numpy as np
    from PIL import Image

    upscaled = np.asarray(Image.open(io.BytesIO(samples.upscaled_jpeg("astronaut", side))), dtype=np.float32)
    noise = np.random.default_rng(7).normal(0.0, grain, upscaled.shape).astype(np.float32)
    photo = Image.fromarray(np.clip(upscaled + noise, 0, 255).astype(np.uint8))
    return samples.encode(photo)


# --- ours -----------------------------------------------------------------------------------------


def _ours(resources: Any, inference_url: str, key: str, repeats: int) -> tuple[dict[str, float], Any]:
    from ingest_settings import IngestSettings
    from s3kp_core.inference import InferenceClient
    from s3kp_core.objects_s3 import S3ObjectStore
    from s3kp_core.processing import Collaborators, ObjectEvent, process_object
    from s3kp_core.results import SourceObject
    from s3kp_core.results_store_dynamodb import DynamoDBResultsStore

    # The defaults the ingest function declares, for this endpoint and model.
    ingest = IngestSettings.from_environment(
        {
            "INFERENCE_URL": inference_url,
            "MODEL_ID": MODEL_ID,
            "ROBOFLOW_API_KEY": API_KEY,
            "RESULTS_TABLE": resources.results_table,
            "IDEMPOTENCY_TABLE": "unused",
        }
    )
    s3 = boto3.client("s3")
    deps = Collaborators(
        objects=S3ObjectStore(s3),
        predictor=InferenceClient(ingest.inference_settings(API_KEY)),
        results=DynamoDBResultsStore(
            boto3.resource("dynamodb").Table(resources.results_table), s3, predictions_prefix="predictions/"
        ),
    )
    settings = ingest.processing_settings()
    samples_ms: list[dict[str, float]] = []
    outcome = None
    for attempt in range(repeats + 1):  # the first run warms connections and is not counted
        head = s3.head_object(Bucket=resources.bucket, Key=key)
        source = SourceObject(
            bucket=resources.bucket, key=key, etag=head["ETag"].strip('"'), size=head["ContentLength"]
        )
        event = ObjectEvent(source=source, event_time=datetime.now(UTC) + timedelta(seconds=attempt))
        started = time.perf_counter()
        outcome = process_object(event, settings=settings, deps=deps)
        total = (time.perf_counter() - started) * 1000
        assert outcome.record is not None, outcome
        assert outcome.record.status.value == "succeeded", outcome.record.reason
        if attempt:
            samples_ms.append(outcome.record.timings_ms | {"write": outcome.write_ms, "total": total})
    medians = {
        stage: statistics.median(s.get(stage, 0.0) for s in samples_ms) for stage in (*STAGES, "total")
    }
    return medians, outcome


# --- the seed's way -------------------------------------------------------------------------------


def _seed(
    resources: Any, inference_url: str, key: str, repeats: int
) -> tuple[dict[str, float], dict[str, Any]]:
    from roboflow.models.keypoint_detection import KeypointDetectionModel

    s3 = boto3.client("s3")
    table = boto3.resource("dynamodb").Table(resources.results_table)
    model = KeypointDetectionModel(API_KEY, f"bench/{MODEL_ID}", local=inference_url + "/")
    samples_ms: list[dict[str, float]] = []
    answer: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        source, drawn = Path(scratch) / "source.jpg", Path(scratch) / "drawn.jpg"
        for attempt in range(repeats + 1):
            timings: dict[str, float] = {}
            started = time.perf_counter()
            with _stage(timings, "download"):
                s3.download_file(resources.bucket, key, str(source))
            with _stage(timings, "inference"):  # re-encode at full size + request + parse
                group = model.predict(str(source))
                answer = group.json()
            with _stage(timings, "annotate"):
                group.save(str(drawn))
            with _stage(timings, "put"):
                s3.upload_file(str(drawn), resources.bucket, f"seed-annotated/{Path(key).name}")
            with _stage(timings, "write"):
                table.put_item(Item=_seed_item(key, answer))
            timings["total"] = (time.perf_counter() - started) * 1000
            if attempt:
                samples_ms.append(timings)
    medians = {
        stage: statistics.median(s.get(stage, 0.0) for s in samples_ms) for stage in (*STAGES, "total")
    }
    return medians, answer


def _seed_item(key: str, answer: dict[str, Any]) -> dict[str, Any]:
    import json

    return {"result_id": f"seed#{key}", **json.loads(json.dumps(answer), parse_float=Decimal)}


# --- one image, both ways -------------------------------------------------------------------------


def _compare(resources: Any, inference_url: str, label: str, image: bytes, repeats: int) -> dict[str, Any]:
    key = f"{resources.input_prefix}bench/{label.replace(' ', '-')}.jpg"
    boto3.client("s3").put_object(Bucket=resources.bucket, Key=key, Body=image)
    with _counting_bytes() as sent:
        ours, outcome = _ours(resources, inference_url, key, repeats)
        ours_bytes = sent.pop() if sent else 0
        sent.clear()
        seed, answer = _seed(resources, inference_url, key, repeats)
        seed_bytes = sent.pop() if sent else 0
    record = outcome.record
    return {
        "label": label,
        "size": f"{record.image.width}×{record.image.height}",
        "long_side": max(record.image.width, record.image.height),
        "object_bytes": len(image),
        "ours": ours,
        "seed": seed,
        "ours_bytes": ours_bytes,
        "seed_bytes": seed_bytes,
        "distance": _max_keypoint_distance(record.predictions, answer.get("predictions", [])),
        "detections": (len(record.predictions), len(answer.get("predictions", []))),
    }


def _max_keypoint_distance(ours: Any, theirs: list[dict[str, Any]]) -> float:
    """Largest distance between a keypoint of ours and the same keypoint of the nearest seed detection."""
    worst = 0.0
    for prediction in ours:
        nearest = min(theirs, key=lambda t: math.dist((t["x"], t["y"]), (prediction.x, prediction.y)))
        reference = {k["class_id"]: (k["x"], k["y"]) for k in nearest["keypoints"]}
        for keypoint in prediction.keypoints:
            if keypoint.class_id in reference:
                worst = max(worst, math.dist((keypoint.x, keypoint.y), reference[keypoint.class_id]))
    return worst


@contextmanager
def _stage(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    timings[name] = (time.perf_counter() - started) * 1000


@contextmanager
def _counting_bytes() -> Iterator[list[int]]:
    """Body bytes of every POST to the inference server (the last one is kept per client run)."""
    sent: list[int] = []
    original = HTTPAdapter.send

    def counting_send(self: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        if request.method == "POST" and isinstance(request.body, bytes | str):
            sent.append(len(request.body))
        return original(self, request, *args, **kwargs)

    HTTPAdapter.send = counting_send  # type: ignore[method-assign]
    try:
        yield sent
    finally:
        HTTPAdapter.send = original  # type: ignore[method-assign]


# --- cold start -----------------------------------------------------------------------------------

# What Lambda's Python runtime sets that changes how the handler's libraries start. LAMBDA_TASK_ROOT
# matters most: without it the X-Ray SDK is not "in Lambda" and builds its centralized sampler, two
# botocore X-Ray clients (~115 ms here) that a deployed function never creates. Lambda passes the role's
# credentials in the environment; without them botocore would probe the EC2 metadata endpoint.
LAMBDA_ENVIRONMENT = {
    "LAMBDA_TASK_ROOT": str(ROOT / "functions" / "ingest"),
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
# `import ingest_handler`, then what the first invocation builds before any I/O (the idempotency layer and
# its DynamoDB client, the API key from the environment, the S3 and results clients, the inference client):
# both in ms, as one JSON line.
READY_PROBE = """
import json, time
started = time.perf_counter()
import ingest_handler
imported = time.perf_counter()
from ingest_dependencies import collaborators, processing_settings
from ingest_settings import resolve_api_key
ingest_handler.idempotent(ingest_handler.process_once)
collaborators(ingest_handler.settings, resolve_api_key(ingest_handler.settings))
processing_settings(ingest_handler.settings)
ready = time.perf_counter()
print(json.dumps({"import": (imported - started) * 1000, "ready": (ready - started) * 1000}))
"""
# Compile time of every non-standard-library module the handler imports, from source: what each cold
# start pays when the deployment package ships no bytecode (`sam build` extracts wheels without .pyc,
# and /opt and /var/task are read-only, so Python cannot cache what it compiles).
COMPILE_PROBE = """
import json, sys, sysconfig, time
import ingest_handler
stdlib = sysconfig.get_paths()["stdlib"] + "/"
spent, seen = {}, set()
for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None) or ""
    if not path.endswith(".py") or path in seen or (path.startswith(stdlib) and "-packages" not in path):
        continue
    seen.add(path)
    with open(path, "rb") as source_file:
        source = source_file.read()
    started = time.perf_counter()
    compile(source, path, "exec", dont_inherit=True)
    package = name.split(".")[0]
    spent[package] = spent.get(package, 0.0) + (time.perf_counter() - started) * 1000
print(json.dumps(spent))
"""
OUR_MODULES = frozenset(
    {"ingest_handler", "ingest_dependencies", "ingest_settings", "s3_events", "record_pool", "s3kp_core"}
)
TOP_IMPORTS = 10
OURS = "our modules (s3kp_core, ingest_*)"
STDLIB = "standard library"


@dataclass(frozen=True)
class ColdStart:
    import_ms: float  # median `import ingest_handler` with Lambda's environment
    ready_ms: float  # median import + the first invocation's setup
    outside_lambda_ms: float  # median import without LAMBDA_TASK_ROOT (how this was first measured)
    breakdown_ms: list[tuple[str, float]]  # median self time per package under -X importtime
    importtime_total_ms: float
    compile_ms: dict[str, float]  # source compile time per package (no bytecode shipped)


def cold_start() -> ColdStart:
    """Every figure is the median of IMPORT_RUNS fresh interpreters (one run for the compile estimate)."""
    in_lambda = _handler_environment(lambda_like=True)
    probes = [_run_probe(READY_PROBE, in_lambda) for _ in range(IMPORT_RUNS)]
    outside = [_run_probe(READY_PROBE, _handler_environment(lambda_like=False)) for _ in range(IMPORT_RUNS)]
    breakdowns = [_importtime_by_package(in_lambda) for _ in range(IMPORT_RUNS)]
    packages = {package for breakdown in breakdowns for package in breakdown}
    medians = {
        package: statistics.median(breakdown.get(package, 0.0) for breakdown in breakdowns)
        for package in packages
    }
    return ColdStart(
        import_ms=statistics.median(probe["import"] for probe in probes),
        ready_ms=statistics.median(probe["ready"] for probe in probes),
        outside_lambda_ms=statistics.median(probe["import"] for probe in outside),
        breakdown_ms=sorted(medians.items(), key=lambda item: -item[1]),
        importtime_total_ms=statistics.median(sum(breakdown.values()) for breakdown in breakdowns),
        compile_ms=_run_probe(COMPILE_PROBE, in_lambda),
    )


def _handler_environment(*, lambda_like: bool) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("POWERTOOLS_", "AWS_", "LAMBDA_", "_X_AMZN"))
    }
    environment |= {
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / "ingest"), str(ROOT / "layers" / "shared")]),
        "MODEL_ID": MODEL_ID,
        "ROBOFLOW_API_KEY": API_KEY,
        "RESULTS_TABLE": "results",
        "IDEMPOTENCY_TABLE": "idempotency",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_NAMESPACE": "S3Keypoints",
        "POWERTOOLS_SERVICE_NAME": "s3kp-ingest",
        # Powertools' Tracer is active (and patches botocore/requests) only in a Lambda environment.
        "AWS_LAMBDA_FUNCTION_NAME": "s3kp-ingest",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
    }
    return environment | (LAMBDA_ENVIRONMENT if lambda_like else {})


def _run_probe(code: str, environment: dict[str, str]) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, "-c", code], env=environment, cwd=ROOT, capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _importtime_by_package(environment: dict[str, str]) -> dict[str, float]:
    """`-X importtime` self time (ms) of everything `import ingest_handler` loads, per package.

    Self times add up to the whole import. A standard-library module is charged to the package that
    imported it first (asyncio to Powertools' batch utility, say): what depending on that package costs.
    `ingest_handler`'s own line is its module body: settings validation, Powertools set up.
    """
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import ingest_handler"],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    # Lines are "self µs | cumulative µs | module", the module indented by depth, children before their
    # parent: the handler's import tree is the run of nested lines just above its own top-level line.
    tree: list[tuple[str, int, float]] = []
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, indented = line.removeprefix("import time:").split("|")
        name = indented.strip()
        depth = (len(indented) - len(indented.lstrip()) - 1) // 2
        if depth == 0 and name != "ingest_handler":
            tree = []  # interpreter start-up (site, path hooks): not the handler's
            continue
        tree.append((name, depth, int(self_us) / 1000))
        if depth == 0:
            break
    spent: dict[str, float] = {}
    importers: list[str] = []  # the package charged at each depth of the current branch, root first
    for name, depth, milliseconds in reversed(tree):  # parents first
        del importers[depth:]
        package = _package_label(name)
        if package == STDLIB and importers:
            package = importers[-1]
        importers.append(OURS if name == "ingest_handler" else package)
        spent[package] = spent.get(package, 0.0) + milliseconds
    return spent


def _package_label(module: str) -> str:
    top = module.split(".")[0]
    if module == "ingest_handler":
        return "ingest_handler module body (settings, Powertools set up)"
    if top in OUR_MODULES:
        return OURS
    if top in sys.stdlib_module_names or top.startswith("_"):
        return STDLIB
    return top


# --- report ---------------------------------------------------------------------------------------


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "### Ingest: per-stage time and bytes sent, ours vs the seed's roboflow-python way",
        "",
        f"Model `{MODEL_ID}` on the local inference server, AWS on moto server; medians of "
        + ", ".join(f"{repeats} runs ({label})" for label, _, _, repeats in IMAGES)
        + " after one warm-up. The seed's `predict` re-encodes and sends the full image; its time covers"
        " encode + request + parse (its `.save()` draws boxes only). Every run records the same object"
        " again, so ours' *write* is the ordering-guarded PutItem plus deleting the drawing of the result"
        " it replaces (the seed's: one PutItem); a first upload skips that DeleteObject.",
        "",
    ]
    for row in rows:
        ours, seed = row["ours"], row["seed"]
        lines += [
            f"**{row['label']}** ({row['size']}, {row['object_bytes'] / 1e6:.2f} MB object)",
            "",
            "| stage (ms) | ours | seed |",
            "|---|---:|---:|",
            *(f"| {stage} | {ours[stage]:.1f} | {_seed_cell(seed, stage)} |" for stage in STAGES),
            f"| **total** | **{ours['total']:.1f}** | **{seed['total']:.1f}** |",
            "",
            f"- bytes sent to the endpoint: ours {row['ours_bytes']:,}, seed {row['seed_bytes']:,} "
            f"(seed / ours: **{row['seed_bytes'] / max(row['ours_bytes'], 1):.1f}×**)",
            f"- total time, seed / ours: **{seed['total'] / ours['total']:.2f}×** (above 1: ours is faster)",
            f"- detections ours/seed: {row['detections'][0]}/{row['detections'][1]}; max keypoint distance "
            f"from the full-resolution answer: **{row['distance']:.1f} px** "
            f"({100 * row['distance'] / row['long_side']:.2f} % of the longest side)",
            "",
        ]
    return "\n".join(lines).rstrip()


def cold_start_markdown(figures: ColdStart) -> str:
    verdict = "meets" if figures.import_ms < COLD_START_GOAL_MS else "misses"
    compile_total = sum(figures.compile_ms.values())
    top_compile = sorted(figures.compile_ms.items(), key=lambda item: -item[1])[:4]
    lines = [
        "### Ingest: cold start",
        "",
        f"Fresh interpreters with the environment Lambda's Python runtime sets (`LAMBDA_TASK_ROOT` …), "
        f"Tracer active; medians of {IMPORT_RUNS} runs. Goal: import < {COLD_START_GOAL_MS} ms.",
        "",
        "| measure | ms | vs goal |",
        "|---|---:|---:|",
        f"| `import ingest_handler` (settings validated, Powertools set up; no AWS client) "
        f"| **{figures.import_ms:.0f}** | {figures.import_ms / COLD_START_GOAL_MS:.2f}× ({verdict}) |",
        f"| import + first invocation's setup (idempotency layer, API key, S3/DynamoDB/inference clients; "
        "no I/O) "
        f"| {figures.ready_ms:.0f} | {figures.ready_ms / COLD_START_GOAL_MS:.2f}× |",
        f"| import outside a Lambda environment (no `LAMBDA_TASK_ROOT`: X-Ray builds its sampler's clients) "
        f"| {figures.outside_lambda_ms:.0f} | {figures.outside_lambda_ms / COLD_START_GOAL_MS:.2f}× |",
        f"| + compiling non-stdlib modules from source, when the package ships no `.pyc` "
        f"| +{compile_total:.0f} | |",
        "",
        f"Top import costs (`-X importtime` self time per package, a standard-library module charged to "
        f"the package that imports it first; medians; they add up to {figures.importtime_total_ms:.0f} "
        "ms, importtime's own overhead included):",
        "",
        "| package | ms | share |",
        "|---|---:|---:|",
        *(
            f"| {package} | {milliseconds:.1f} | {100 * milliseconds / figures.importtime_total_ms:.0f} % |"
            for package, milliseconds in figures.breakdown_ms[:TOP_IMPORTS]
        ),
        f"| everything else | {sum(ms for _, ms in figures.breakdown_ms[TOP_IMPORTS:]):.1f} | |",
        "",
        "Compiling from source (no bytecode shipped) would add: "
        + ", ".join(f"{package} {milliseconds:.0f} ms" for package, milliseconds in top_compile)
        + f", {compile_total:.0f} ms in all.",
    ]
    return "\n".join(lines)


def _seed_cell(seed: dict[str, float], stage: str) -> str:
    if stage == "resize":
        return "– (none)"
    if stage in ("decode", "encode", "parse"):
        return "(in inference)"
    return f"{seed[stage]:.1f}"
