"""`make bench`: every `benchmarks/bench_*.py` module's `run() -> str` (a Markdown section), in order."""
