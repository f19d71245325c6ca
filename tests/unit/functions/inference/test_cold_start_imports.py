"""What the InferenceFunction's cold start imports: the models and Powertools' logger, nothing of the dev
tooling or of what only the local server installs. Checked in a fresh interpreter with the environment
Lambda's runtime sets (the benchmark's), the configured model loaded from the verified cache."""

from __future__ import annotations

import json
import subprocess
import sys

from benchmarks.bench_builtin import ROOT, _environment

_PROBE = """
import json, sys
import inference_handler
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_the_import_loads_the_model_and_no_dev_tooling_no_aws_sdk_no_opencv() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE], env=_environment("faces/1"), cwd=ROOT, capture_output=True, text=True,
        check=True, timeout=120,
    )  # fmt: skip
    loaded = set(json.loads(completed.stdout.strip().splitlines()[-1]))

    assert {"inference_handler", "s3kp_models", "s3kp_core", "numpy", "ai_edge_litert"} <= loaded
    assert loaded.isdisjoint({"s3kp", "fastapi", "starlette", "pydantic", "uvicorn", "cv2", "boto3"})
