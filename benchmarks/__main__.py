"""Runs the benchmarks and writes their figures to docs/benchmarks.md (and stdout).

Usage: `python -m benchmarks [NAME ...]` where NAME is a module suffix (`models`, `model_server`,
`ingest`, `record_concurrency`, `api`, `viewer_export`, `video`); no name runs them all. Each module
exposes `run() -> str` returning a Markdown section.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ORDER = [
    "models",
    "model_server",
    "imaging",
    "ingest",
    "builtin",
    "record_concurrency",
    "api",
    "cold_start",
    "viewer_export",
    "backfill",
    "video",
]
OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SOAK_BEGIN = "<!-- soak: written by make soak -->"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str]) -> int:
    names = argv or [n for n in ORDER if (Path(__file__).parent / f"bench_{n}.py").exists()]
    sections = []
    for name in names:
        print(f"[bench] {name} …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"benchmarks.bench_{name}")
        section = module.run()
        print(section, flush=True)
        sections.append(section)
        print(f"[bench] {name} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    header = (
        "# Benchmarks\n\n"
        f"Latest `make bench` output, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on {os.cpu_count()} cores "
        f"({_cpu_model()}), Python {platform.python_version()}. Regenerate with `make bench`.\n"
    )
    if not argv:  # a partial run does not overwrite the full report
        # `make soak` keeps its latest figures in a marked block of the same file: carry it over.
        previous = OUTPUT.read_text() if OUTPUT.exists() else ""
        soak = previous[previous.find(SOAK_BEGIN) :] if SOAK_BEGIN in previous else ""
        OUTPUT.write_text(header + "\n" + "\n\n".join(sections) + "\n" + ("\n" + soak if soak else ""))
        print(f"[bench] wrote {OUTPUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
