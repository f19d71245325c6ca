"""Helpers for the template checks: the SAM/IaC tools in .venv-tools, run offline."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from s3kp.local.cfn_template import TEMPLATE_PATH
from s3kp.samtools import sam_environment

ROOT = TEMPLATE_PATH.parent
TOOLS = ROOT / ".venv-tools" / "bin"


def tool(name: str) -> Path:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make setup` (it installs the SAM CLI, cfn-lint and checkov)")
    return path


def run_tool(
    arguments: list[str], timeout: float = 120, interpreter: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool offline (no telemetry, dummy credentials) in the repo root, `interpreter` first on PATH."""
    # Other suites may point AWS_ENDPOINT_URL at a moto server; these tools must not talk to any AWS.
    environment = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    return subprocess.run(
        arguments,
        cwd=ROOT,
        env=sam_environment(environment, interpreter),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == resource_type}
