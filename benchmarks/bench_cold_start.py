"""Cold start of both functions as a ratio of `import boto3`, measured side by side in one run.

Absolute import times swing 2x with the load of a shared machine; the ratio to a floor measured in the
same run, interleaved (boto3, ingest, API, boto3, ...), each in a fresh interpreter with the environment
Lambda's Python runtime sets, much less so. Times are the import's CPU time (`time.process_time`): on
a quiet machine that is its wall time, and under load it does not count the waits for a core.
`import boto3` is the floor: every function that talks to AWS pays it, and the runtime ships it.
Goals (issue 9): ingest <= 2x, API <= 1.2x.
Also: what each handler's import loads beyond boto3 (`-X importtime` self time per top-level package),
so a regression names its cause; and the import plus what the first event builds before any I/O: for
the ingest function the idempotency layer's DynamoDB client, its S3 and results clients and the inference
client; for the API a result's route validation and response serialization (pydantic describing the
result types). Work moved from the import to the first event shows there, not as a saving.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 9
GOALS = {"ingest": 2.0, "api": 1.2}
TOP_PACKAGES = 6

_LAMBDA_ENVIRONMENT = {
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
    "POWERTOOLS_METRICS_NAMESPACE": "S3Keypoints",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "RESULTS_TABLE": "results",
}
_FUNCTIONS = {
    "ingest": {
        "module": "ingest_handler",
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / "ingest"),
        "AWS_LAMBDA_FUNCTION_NAME": "s3kp-ingest",
        "POWERTOOLS_SERVICE_NAME": "s3kp-ingest",
        "MODEL_ID": "faces/1",
        "ROBOFLOW_API_KEY": "bench-key",
        "IDEMPOTENCY_TABLE": "idempotency",
    },
    "api": {
        "module": "api_handler",
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / "api"),
        "AWS_LAMBDA_FUNCTION_NAME": "s3kp-api",
        "POWERTOOLS_SERVICE_NAME": "s3kp-api",
        "CURSOR_SECRET": "bench-cursor-secret-0123456789",
    },
}
# CPU time of the import (what a quiet machine's wall time is; 2-3x steadier than wall time under load).
_PROBE = "import time; t = time.process_time(); import {module}; print((time.process_time() - t) * 1000)"
# The import, then the first event's setup before any I/O (no network: the clients are only built): the
# idempotent processing (the idempotency layer's DynamoDB client) and the collaborators.
_INGEST_READY_PROBE = (
    "import time; t = time.process_time(); import ingest_handler; "
    "from ingest_dependencies import collaborators; from ingest_settings import resolve_api_key; "
    "ingest_handler.idempotent(ingest_handler.process_once); "
    "collaborators(ingest_handler.settings, resolve_api_key(ingest_handler.settings)); "
    "print((time.process_time() - t) * 1000)"
)

# The import, then its first request: GET /results/{id} (what a result link opens), the reader answering
# from memory (no AWS). What it builds is Powertools' validation of the route and the response's
# serialization: pydantic describing the result types, which the import leaves for the first request.
_API_FIRST_REQUEST_PROBE = """
import json, sys, time
t = time.process_time()
import api_dependencies, api_handler
from datetime import UTC, datetime
from s3kp_core import results as r
moment = datetime(2026, 1, 1, tzinfo=UTC)
keypoint = r.Keypoint(x=1.0, y=2.0, confidence=0.9, class_id=0, name="nose")
record = r.ResultRecord(
    result_id="0" * 32, status=r.Status.SUCCEEDED, source=r.SourceObject(bucket="b", key="k.jpg"),
    model_id="faces/1", image=r.ImageSize(width=640, height=480), counts={"face": 1}, detections=1,
    keypoints=1, annotated=r.ObjectRef(bucket="b", key="annotated/k.jpg"), created_at=moment,
    updated_at=moment, predictions=(r.Prediction(x=1.0, y=2.0, width=3.0, height=4.0, confidence=0.9,
    class_name="face", class_id=0, keypoints=(keypoint,)),),
)
class Reader:
    def get(self, result_id): return record
class Context:
    function_name = "s3kp-api"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:s3kp-api"
    aws_request_id = "bench"
api_handler.app.dependency_overrides[api_dependencies.results_reader] = Reader
response = api_handler.lambda_handler(json.loads(sys.stdin.read()), Context())
assert response["statusCode"] == 200, response
print((time.process_time() - t) * 1000)
"""


def _result_request_event() -> str:
    from s3kp.local.apigw import http_api_event

    return json.dumps(http_api_event("GET", "/results/" + "0" * 32, "", {}, b""))


def environment(function: str) -> dict[str, str]:
    """A clean environment for `function` ("ingest" or "api") as Lambda starts it."""
    spec = _FUNCTIONS[function]
    base = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("POWERTOOLS_", "AWS_", "LAMBDA_", "_X_AMZN", "PYTHON"))
    }
    path = os.pathsep.join([spec["LAMBDA_TASK_ROOT"], str(ROOT / "layers" / "shared")])
    extra = {name: value for name, value in spec.items() if name != "module"}
    return base | _LAMBDA_ENVIRONMENT | extra | {"PYTHONPATH": path}


def run_probe(code: str, env: dict[str, str], stdin: str | None = None) -> str:
    """The last line `python -c code` prints, run in a fresh interpreter with `env`."""
    completed = subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.strip().splitlines()[-1]


def _import_ms(module: str, env: dict[str, str], probe: str = _PROBE) -> float:
    return float(run_probe(probe.format(module=module), env))


# The modules a handler's import loads that are not ours (libraries and the standard library), in the
# order they were loaded: importing exactly these is what the handler would cost if our code were free.
_LIBRARY_MODULES_PROBE = (
    "import json, sys; import {module}; "
    "print(json.dumps([name for name, m in list(sys.modules.items()) "
    "if name != '__main__' and not str(getattr(m, '__file__', None) or '').startswith({ours!r})]))"
)
# `cold_start` first, as each handler does (it pauses the garbage collector during the imports). Only
# names that no finder knows are skipped: Cython extensions register pseudo-modules (`cython_runtime`) in
# sys.modules; any other import error fails the benchmark rather than lowering the floor unseen.
_LIBRARIES_PROBE = (
    "from s3kp_core import cold_start; "
    "import importlib, json, sys, time; names = json.loads(sys.stdin.read()); "
    "t = time.process_time()\n"
    "for name in names:\n"
    "    try: importlib.import_module(name)\n"
    "    except ModuleNotFoundError as error:\n"
    "        if error.name != name: raise\n"
    "print((time.process_time() - t) * 1000)"
)


def library_modules(function: str) -> list[str]:
    """The library and standard-library modules `import <handler>` loads, in load order."""
    ours = (str(ROOT / "functions"), str(ROOT / "layers"))
    probe = _LIBRARY_MODULES_PROBE.format(module=_FUNCTIONS[function]["module"], ours=ours)
    names: list[str] = json.loads(run_probe(probe, environment(function)))
    return names


def _libraries_ms(names: list[str], env: dict[str, str]) -> float:
    return float(run_probe(_LIBRARIES_PROBE, env, stdin=json.dumps(names)))


def measure(runs: int = RUNS) -> dict[str, list[float]]:
    """Interleaved fresh-interpreter import times (ms): boto3 (the floor), each handler, and the libraries
    each handler loads imported alone."""
    libraries = {function: library_modules(function) for function in _FUNCTIONS}
    request = _result_request_event()
    samples: dict[str, list[float]] = {
        "boto3": [],
        "ingest": [],
        "api": [],
        "ingest_ready": [],
        "api_first_request": [],
        "ingest_libraries": [],
        "api_libraries": [],
    }
    for _ in range(runs):
        samples["boto3"].append(_import_ms("boto3", environment("ingest")))
        for function, spec in _FUNCTIONS.items():
            samples[function].append(_import_ms(spec["module"], environment(function)))
            samples[f"{function}_libraries"].append(_libraries_ms(libraries[function], environment(function)))
        samples["ingest_ready"].append(_import_ms("", environment("ingest"), _INGEST_READY_PROBE))
        samples["api_first_request"].append(
            float(run_probe(_API_FIRST_REQUEST_PROBE, environment("api"), stdin=request))
        )
    return samples


def importtime_by_package(function: str) -> dict[str, float]:
    """`-X importtime` self time (ms) per top-level package of what the handler imports."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {_FUNCTIONS[function]['module']}"],
        env=environment(function),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    spent: dict[str, float] = {}
    started = False
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        top = name.strip().split(".")[0]
        started = started or top not in ("site", "encodings", "_distutils_hack")
        if started:
            spent[top] = spent.get(top, 0.0) + int(self_us) / 1000
    return spent


def run() -> str:
    samples = measure()
    floor = statistics.median(samples["boto3"])
    ratios = {
        function: statistics.median(t / b for t, b in zip(samples[function], samples["boto3"], strict=True))
        for function in (
            *_FUNCTIONS,
            "ingest_ready",
            "api_first_request",
            "ingest_libraries",
            "api_libraries",
        )
    }
    lines = [
        "### Cold start: each function's import as a multiple of `import boto3`",
        "",
        f"Fresh interpreters with Lambda's environment, interleaved, {RUNS} rounds; CPU time of the import; "
        "ratio = median of the per-round ratios (absolute times drift with the machine's load, the ratio "
        f"much less). Load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.",
        "",
        "| import | ratio to `import boto3` | goal | median CPU ms |",
        "|---|---:|---:|---:|",
        f"| `import boto3` (the floor) | 1.00× | | {floor:.0f} |",
    ]
    for function, spec in _FUNCTIONS.items():
        verdict = "meets" if ratios[function] <= GOALS[function] else "misses"
        lines.append(
            f"| `import {spec['module']}` | **{ratios[function]:.2f}×** | ≤ {GOALS[function]}× ({verdict}) "
            f"| {statistics.median(samples[function]):.0f} |"
        )
    lines.append(
        f"| `import ingest_handler` + its first event's setup (every client built, no I/O) "
        f"| {ratios['ingest_ready']:.2f}× | (no goal) | {statistics.median(samples['ingest_ready']):.0f} |"
    )
    lines.append(
        "| `import api_handler` + its first request (GET /results/{id} answered from memory: the route's "
        "validation and the response's serialization built, no I/O) "
        f"| {ratios['api_first_request']:.2f}× | (no goal) "
        f"| {statistics.median(samples['api_first_request']):.0f} |"
    )
    for function, spec in _FUNCTIONS.items():
        key = f"{function}_libraries"
        lines.append(
            f"| the library modules `import {spec['module']}` loads, imported alone (none of our code runs) "
            f"| {ratios[key]:.2f}× | | {statistics.median(samples[key]):.0f} |"
        )
    lines += [
        "",
        "Beyond boto3 (`-X importtime` self wall time per top-level package, one run: noisy under load):",
        "",
    ]
    boto3_packages = set(importtime_by_package_of_boto3())
    for function in _FUNCTIONS:
        extra = {
            package: ms
            for package, ms in importtime_by_package(function).items()
            if package not in boto3_packages
        }
        top = sorted(extra.items(), key=lambda item: -item[1])[:TOP_PACKAGES]
        lines.append(f"- {function}: " + ", ".join(f"{package} {ms:.0f} ms" for package, ms in top))
    return "\n".join(lines)


def importtime_by_package_of_boto3() -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import boto3"],
        env=environment("ingest"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        line.split("|")[2].strip().split(".")[0]: 0.0
        for line in completed.stderr.splitlines()
        if line.startswith("import time:") and "self [us]" not in line
    }
