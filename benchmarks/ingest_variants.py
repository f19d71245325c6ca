"""The ingest handler with parts of its memory bounds switched off, for `bench_record_concurrency` to
compare the default with (never deployed). A Lambda worker imports it as `benchmarks.ingest_variants`;
its environment says what to switch off (read at import, before the handler's):

- `S3KP_BENCH_BUDGETS=off`: no memory budgets (records decode side by side, as many as run at once);
- `S3KP_BENCH_MALLOPT=off`: glibc's default mmap threshold (`s3kp_core.memory.unmap_large_blocks_on_free`
  not called).
"""

from __future__ import annotations

import os
from typing import Any

import ingest_dependencies
from s3kp_core.memory import MemoryBudget, unmap_large_blocks_on_free

dependencies: Any = ingest_dependencies  # its functions are replaced, which mypy would refuse
budgets_on = os.environ.get("S3KP_BENCH_BUDGETS", "on") != "off"
mallopt_on = os.environ.get("S3KP_BENCH_MALLOPT", "on") != "off"


def _pixel_budget() -> MemoryBudget:
    if mallopt_on:
        unmap_large_blocks_on_free()
    return MemoryBudget(ingest_dependencies.PIXEL_BUDGET_BYTES if budgets_on else None, name="pixels")


dependencies.pixel_budget = _pixel_budget
if not budgets_on:
    dependencies.object_budget = lambda: MemoryBudget(None, name="objects")

from ingest_handler import lambda_handler  # noqa: E402 - after the dependencies are replaced

__all__ = ["lambda_handler"]
