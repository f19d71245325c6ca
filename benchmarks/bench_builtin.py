"""The builtin backend (InferenceBackend=builtin, issue 20): the InferenceFunction's cold start and per-image
time at 1024 px, its peak memory, and what an image costs in Lambda with it and with the roboflow backend.

- InferenceFunction: `inference_handler` in fresh interpreters with Lambda's environment, pinned to one
  core with one inference thread (the template's 1769 MB is one vCPU): the import with the configured
  model's load (Lambda's init phase), the first answer, then steady answers to the Function URL event the
  ingest function sends (a 1024 px JPEG, base64), and the process's peak RSS.
- The whole path, for the cost: `process_object` with the production collaborators (the signing
  inference client, S3 and DynamoDB on moto), calling the InferenceFunction's handler in a Lambda worker
  behind the offline stack's Function URL bridge (signature checked), as in AWS. What each function is
  billed per image follows from the durations measured here and the template's memory sizes.
Absolute times are this machine's (x86_64), not Graviton's; the ratios and the memory hold better.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from benchmarks.servers import aws_environment, free_port, moto_server
from s3kp import samples
from s3kp.local.cfn_template import load_template
from s3kp.paths import model_dir

ROOT = Path(__file__).resolve().parents[1]
SIDE = 1024
# (model, sample image): the sample upscaled to 1024 px on its long side, as the ingest function sends it.
CASES = (("faces/2", "faces_2x2"), ("pose/1", "people_side_by_side"))
COLD_RUNS = 3
STEADY_RUNS = 25
WARMUP = 3
PATH_RUNS = 8
BATCH_SIZE_DEFAULT = 5  # the template's BatchSize: one ingest invocation per batch
# AWS Lambda pricing, arm64, US East (N. Virginia), first duration tier (the first 6 billion GB-s a month).
ARM64_USD_PER_GB_SECOND = 0.0000133334
USD_PER_REQUEST = 0.20 / 1_000_000
PRICE_SOURCE = (
    "AWS Lambda pricing (https://aws.amazon.com/lambda/pricing/), arm64, US East (N. Virginia), first tier: "
    "$0.0000133334 per GB-s and $0.20 per million requests, as transcribed from that page by third parties "
    "(artillery 2.0.28's prices.js; API Evangelist's transcript of 2026-09-20), read 2026-12-06; the page "
    "itself renders its prices client-side"
)

_PROBE = """
import json, os, resource, sys, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core: the template's one vCPU
event = json.loads(sys.stdin.read())
started, cpu = time.perf_counter(), time.process_time()
import inference_handler  # the init phase: imports, settings, the configured model's load
imported, imported_cpu = time.perf_counter(), time.process_time()

class Context:
    function_name = "s3kp-inference"
    memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:s3kp-inference"
    aws_request_id = "bench"

response = inference_handler.lambda_handler(event, Context())
assert response["statusCode"] == 200, response
first = time.perf_counter()
steady = []
for index in range(int(sys.argv[1])):
    t = time.perf_counter()
    inference_handler.lambda_handler(event, Context())
    steady.append((time.perf_counter() - t) * 1000)
print(json.dumps({
    "init_ms": (imported - started) * 1000, "init_cpu_ms": (imported_cpu - cpu) * 1000,
    "first_ms": (first - imported) * 1000, "steady_ms": steady,
    "detections": len(json.loads(response["body"])["predictions"]),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def run() -> str:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    memory = _memory_sizes()
    function = {model: _function(model, image) for model, image in CASES}
    path = _whole_path(memory)
    return _markdown(function, path, memory)


def _memory_sizes() -> dict[str, int]:
    resources = load_template()["Resources"]
    return {
        name: int(resources[name]["Properties"]["MemorySize"])
        for name in ("IngestFunction", "InferenceFunction")
    }


def _event(model_id: str, image: str) -> dict[str, Any]:
    from s3kp.local.apigw import http_api_event

    body = base64.b64encode(samples.upscaled_jpeg(image, SIDE))
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "host": "bench.lambda-url.us-east-1.on.aws",
    }
    return http_api_event("POST", f"/{model_id}", "confidence=0.4&overlap=0.3&format=json", headers, body)


def _environment(model_id: str) -> dict[str, str]:
    task_root = ROOT / "functions" / "inference"
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_", "LAMBDA_", "PYTHON"))
    }
    return base | {
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": "s3kp-inference",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(_memory_sizes()["InferenceFunction"]),
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "s3kp-inference",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "MODEL_ID": model_id,
        "MODEL_DIR": str(model_dir()),
        "INFERENCE_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(
            [str(task_root), str(ROOT / "layers" / "models"), str(ROOT / "layers" / "shared")]
        ),
    }


def _function(model_id: str, image: str) -> dict[str, Any]:
    event = json.dumps(_event(model_id, image))
    runs = []
    for index in range(COLD_RUNS):
        completed = subprocess.run(
            [sys.executable, "-c", _PROBE, str(STEADY_RUNS + WARMUP if index == 0 else 0)],
            input=event,
            env=_environment(model_id),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    steady = runs[0]["steady_ms"][WARMUP:]
    return {
        "init_ms": statistics.median(r["init_ms"] for r in runs),
        "init_cpu_ms": statistics.median(r["init_cpu_ms"] for r in runs),
        "first_ms": statistics.median(r["first_ms"] for r in runs),
        "steady_ms": statistics.median(steady),
        "steady_p90_ms": sorted(steady)[int(0.9 * (len(steady) - 1))],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "detections": runs[0]["detections"],
    }


def _whole_path(memory: dict[str, int]) -> dict[str, dict[str, float]]:
    """Per model: the ingest function's time per image (its own work, and all of it with the wait for
    the InferenceFunction) and the InferenceFunction's, through the signed Function URL."""
    sys.path[:0] = [str(ROOT / "functions" / "ingest"), str(ROOT / "layers" / "shared")]
    results = {}
    for model_id, image in CASES:
        results[model_id] = _through_the_function_url(model_id, image, memory)
    return results


def _through_the_function_url(model_id: str, image: str, memory: dict[str, int]) -> dict[str, float]:
    from botocore.credentials import Credentials, ReadOnlyCredentials

    from s3kp.local.function_url import FunctionUrlBridge
    from s3kp.local.lambda_runtime import LambdaContext
    from s3kp.local.sigv4_check import ExpectedSigner
    from s3kp.local.workers import FunctionConfig, LambdaWorker, lambda_environment

    environment = {
        name: value
        for name, value in _environment(model_id).items()
        if name
        in ("MODEL_ID", "MODEL_DIR", "INFERENCE_THREADS", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_LOG_LEVEL")
    }
    config = FunctionConfig(
        name="bench-inference",
        code_dir=ROOT / "functions" / "inference",
        handler="inference_handler.lambda_handler",
        environment=environment,
        memory_mb=memory["InferenceFunction"],
    )
    worker = LambdaWorker(
        config, lambda_environment(config, "us-east-1", {}), cache_dir_log("bench-inference")
    )
    worker.start()
    handler_ms: list[float] = []

    def timed_invoke(event: dict[str, Any], context: LambdaContext) -> Any:
        started = time.perf_counter()
        try:
            return worker.invoke(event, context)
        finally:
            handler_ms.append((time.perf_counter() - started) * 1000)

    credentials = Credentials("bench-access-key", "bench-secret-key", "bench-token")
    bridge = FunctionUrlBridge(
        "127.0.0.1",
        free_port(),
        timed_invoke,
        signer=ExpectedSigner(
            ReadOnlyCredentials("bench-access-key", "bench-secret-key", "bench-token"), "us-east-1"
        ),
    )
    bridge.start()
    try:
        with moto_server(in_process=True) as aws, aws_environment(aws.url):
            return _ingest_runs(
                aws.url, f"http://127.0.0.1:{bridge.port}/", model_id, image, credentials, handler_ms
            )
    finally:
        bridge.stop()
        worker.close()


def cache_dir_log(name: str) -> Path:
    from s3kp.paths import cache_dir

    return cache_dir() / "logs" / f"{name}.log"


def _ingest_runs(
    aws_url: str, url: str, model_id: str, image: str, credentials: Any, handler_ms: list[float]
) -> dict[str, float]:
    from ingest_settings import IngestSettings
    from s3kp_core.inference import InferenceClient
    from s3kp_core.objects_s3 import S3ObjectStore
    from s3kp_core.processing import Collaborators, ObjectEvent, process_object
    from s3kp_core.request_signing import RequestSigner
    from s3kp_core.results import SourceObject
    from s3kp_core.results_store_dynamodb import DynamoDBResultsStore

    from s3kp.local.resources import create_resources

    resources = create_resources(aws_url, name_prefix="bench-builtin")
    ingest = IngestSettings.from_environment(
        {
            "INFERENCE_URL": url,
            "INFERENCE_AUTH": "aws_iam",
            "MODEL_ID": model_id,
            "RESULTS_TABLE": resources.results_table,
            "IDEMPOTENCY_TABLE": "unused",
        }
    )
    s3 = boto3.client("s3")
    deps = Collaborators(
        objects=S3ObjectStore(s3),
        predictor=InferenceClient(
            ingest.inference_settings(None), signer=RequestSigner(credentials, "us-east-1")
        ),
        results=DynamoDBResultsStore(
            boto3.resource("dynamodb").Table(resources.results_table), s3, predictions_prefix="predictions/"
        ),
    )
    key = f"{resources.input_prefix}bench/{image}.jpg"
    s3.put_object(Bucket=resources.bucket, Key=key, Body=samples.upscaled_jpeg(image, SIDE))
    settings = ingest.processing_settings()
    totals, waits, handlers = [], [], []
    for attempt in range(PATH_RUNS + 1):  # the first run warms connections and is not counted
        head = s3.head_object(Bucket=resources.bucket, Key=key)
        source = SourceObject(
            bucket=resources.bucket, key=key, etag=head["ETag"].strip('"'), size=head["ContentLength"]
        )
        event = ObjectEvent(source=source, event_time=datetime.now(UTC) + timedelta(seconds=attempt))
        handler_ms.clear()
        started = time.perf_counter()
        outcome = process_object(event, settings=settings, deps=deps)
        total = (time.perf_counter() - started) * 1000
        assert outcome.record is not None, outcome
        assert outcome.record.status.value == "succeeded", outcome.record.reason
        if attempt:
            totals.append(total)
            waits.append(outcome.record.timings_ms["inference"])
            handlers.append(sum(handler_ms))
    total_ms = statistics.median(totals)
    wait_ms = statistics.median(waits)
    return {
        "ingest_total_ms": total_ms,
        "ingest_own_ms": total_ms - wait_ms,
        "inference_wait_ms": wait_ms,
        "inference_handler_ms": statistics.median(handlers),
    }


def _cost(gb_seconds: float, requests: float) -> float:
    """USD per one million images."""
    return (gb_seconds * ARM64_USD_PER_GB_SECOND + requests * USD_PER_REQUEST) * 1_000_000


def _markdown(
    function: dict[str, dict[str, Any]], path: dict[str, dict[str, float]], memory: dict[str, int]
) -> str:
    ingest_gb, inference_gb = memory["IngestFunction"] / 1024, memory["InferenceFunction"] / 1024
    lines = [
        "### Builtin backend: the InferenceFunction (cold start, per image at 1024 px, memory)",
        "",
        "`inference_handler` in fresh interpreters with Lambda's environment, pinned to one core with one "
        f"inference thread (the template's {memory['InferenceFunction']} MB is one vCPU); the Function URL "
        f"event the ingest function sends ({SIDE} px JPEG, base64). Medians of {COLD_RUNS} cold starts; "
        f"steady: {STEADY_RUNS} answers after {WARMUP} warm-up ones.",
        "",
        "| model | init: imports + model load (ms) | of which CPU (ms) | first answer (ms) "
        "| cold start total (ms) | steady per image (ms, median / p90) | peak RSS (MB) | detections |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, figures in function.items():
        cold = figures["init_ms"] + figures["first_ms"]
        lines.append(
            f"| `{model}` | {figures['init_ms']:.0f} | {figures['init_cpu_ms']:.0f} "
            f"| {figures['first_ms']:.0f} | {cold:.0f} "
            f"| {figures['steady_ms']:.0f} / {figures['steady_p90_ms']:.0f} "
            f"| {figures['peak_rss_mb']:.0f} | {figures['detections']} |"
        )
    lines += [
        "",
        "### Builtin backend: billed GB-s and USD per image (ingest + inference functions, arm64)",
        "",
        f"The whole path per image, {SIDE} px: `process_object` with the production collaborators (moto "
        "for S3 and DynamoDB) calling the InferenceFunction in a Lambda worker through the signed local "
        f"Function URL. Medians of {PATH_RUNS} runs. Memory from template.yaml: ingest "
        f"{memory['IngestFunction']} MB, inference {memory['InferenceFunction']} MB. Requests: one "
        "InferenceFunction invocation per image, one ingest invocation per SQS batch "
        f"({BATCH_SIZE_DEFAULT} images by default). The ingest function is billed while it waits for the "
        f"InferenceFunction (both run at once). Prices: {PRICE_SOURCE}.",
        "",
        "| model | ingest (ms): own work + wait | InferenceFunction handler (ms) | builtin GB-s per image "
        "| builtin USD per 1M images | roboflow backend's Lambda share: GB-s per image "
        "(+ 1 GB x the hosted round trip) | its USD per 1M images (+ $1.33 per 100 ms of round trip) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model, figures in path.items():
        ingest_gbs = figures["ingest_total_ms"] * ingest_gb / 1000
        builtin_gbs = ingest_gbs + figures["inference_handler_ms"] * inference_gb / 1000
        builtin_usd = _cost(builtin_gbs, 1 / BATCH_SIZE_DEFAULT + 1)
        roboflow_gbs = figures["ingest_own_ms"] * ingest_gb / 1000
        roboflow_usd = _cost(roboflow_gbs, 1 / BATCH_SIZE_DEFAULT)
        lines.append(
            f"| `{model}` | {figures['ingest_own_ms']:.0f} + {figures['inference_wait_ms']:.0f} "
            f"| {figures['inference_handler_ms']:.0f} | {builtin_gbs:.4f} | ${builtin_usd:.2f} "
            f"| {roboflow_gbs:.4f} | ${roboflow_usd:.2f} |"
        )
    per_100_ms = 0.1 * ARM64_USD_PER_GB_SECOND * 1e6
    lines += [
        "",
        "- The roboflow backend's Lambda share is the ingest function's own work plus its wait for the "
        "hosted API, which cannot be measured from here: each 100 ms of round trip adds 0.1 GB-s per image "
        f"at 1 GB ({per_100_ms:.2f} USD per 1M images). The hosted API's own price comes on top "
        '(docs/deploy.md, "Which backend").',
        "- Not in the per-image figures: cold starts (billed as init duration), S3, SQS, DynamoDB and log "
        "costs, the same for both backends.",
    ]
    return "\n".join(lines)
