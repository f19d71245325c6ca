"""`s3kp_core.cold_start`: cheaper handler imports in Lambda, and no effect anywhere else."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import gc, os
    from s3kp_core import cold_start
    during = gc.isenabled()
    import pydantic  # a handler's imports
    frozen_before = gc.get_freeze_count()
    cold_start.imports_done()
    froze = gc.get_freeze_count() > frozen_before
    print(during, gc.isenabled(), froze, os.environ.get("PYDANTIC_DISABLE_PLUGINS"))
    """
)


def run_probe(**environment: str) -> list[str]:
    env = {name: value for name, value in os.environ.items() if name not in ("LAMBDA_TASK_ROOT",)}
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], env=env | environment, capture_output=True, text=True, check=True
    )
    return completed.stdout.split()


def test_in_lambda_the_collector_pauses_for_the_imports_and_pydantic_skips_plugin_discovery() -> None:
    assert run_probe(LAMBDA_TASK_ROOT="/var/task") == ["False", "True", "True", "__all__"]


def test_a_deployment_may_still_choose_its_pydantic_plugins() -> None:
    assert run_probe(LAMBDA_TASK_ROOT="/var/task", PYDANTIC_DISABLE_PLUGINS="other")[3] == "other"


def test_outside_lambda_importing_it_changes_nothing() -> None:
    assert run_probe() == ["True", "True", "False", "None"]
