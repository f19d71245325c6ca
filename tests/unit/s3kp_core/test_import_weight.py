"""The ingest function's import path stays free of pydantic (its cold start: docs/ingest-cold-start.md).

Each module is imported in a fresh interpreter laid out like the ingest function (its code and the shared
layer on the path, nothing of the API's), and must not pull pydantic in, directly or through another module.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
INGEST_PATH = f"{ROOT / 'functions' / 'ingest'}:{ROOT / 'layers' / 'shared'}"

# The result types, the settings mechanism, the inference client and everything the ingest builds on them.
PYDANTIC_FREE = (
    "s3kp_core.settings",
    "s3kp_core.inference_wire",
    "s3kp_core.inference",
    "s3kp_core.results",
    "s3kp_core.results_schema",
    "s3kp_core.results_store",
    "s3kp_core.results_store_dynamodb",
    "s3kp_core.results_query",
    "s3kp_core.result_events",
    "s3kp_core.result_events_eventbridge",
    "s3kp_core.errors",
    "s3kp_core.rescale",
    "s3kp_core.annotate",
    "s3kp_core.predictor",
    "s3kp_core.ordering",
    "s3kp_core.processing",
)

PROBE = textwrap.dedent(
    """
    import importlib, sys
    for name in sys.argv[1:]:
        importlib.import_module(name)
        if "pydantic" in sys.modules:
            print(name)
            break
    """
)


def modules_importing_pydantic(*names: str) -> str:
    """The first of `names` whose import brings pydantic in (imported in order), or '' when none does."""
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, *names],
        env={"PYTHONPATH": INGEST_PATH, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.strip()


def test_no_module_of_the_ingest_results_path_imports_pydantic() -> None:
    assert modules_importing_pydantic(*PYDANTIC_FREE) == ""


def test_the_probe_sees_a_module_that_does_import_pydantic() -> None:
    assert modules_importing_pydantic("s3kp_core.results", "pydantic") == "pydantic"
