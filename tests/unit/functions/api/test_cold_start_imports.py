"""What the API function's cold start builds: its response models' validators wait for their first use.

A pydantic model builds its validator and serializer when its class is created unless `defer_build` is set;
Powertools builds a route's request and response validation on that route's first request. The import
(benchmarks/bench_cold_start.py, issue 9) therefore builds none of them, and a request builds only what
its route needs. Checked in a fresh interpreter with the environment Lambda's runtime sets.
"""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.bench_cold_start import ROOT, environment

_PROBE = """
import json, sys
import api_handler, api_models

models = {name: getattr(api_models, name) for name in ("ResultPage", "ErrorBody", "Health")}
print(json.dumps({
    "built": sorted(name for name, model in models.items() if model.__pydantic_complete__),
    "boto3": "boto3" in sys.modules,
}))
"""


def test_the_import_builds_no_response_model_and_no_aws_client() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env=environment("api"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert loaded == {"built": [], "boto3": False}
