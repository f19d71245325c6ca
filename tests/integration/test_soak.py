"""A small `make soak`: the offline stack behind the fault-injecting proxy (30 % transient faults), a few
dozen uploads with duplicates and bad files, and an ingest worker killed in the middle of a batch.

The function timeout is shortened to 20 s (so the killed batch's lease runs out after ~30 s instead of
~130 s) and the retry backoff base to 2 s; everything else is the template's. `make soak` is the full run.
"""

from __future__ import annotations

import os

import pytest

from s3kp.local.soak import SoakOptions, run_soak

pytestmark = pytest.mark.slow


def test_under_a_flaky_endpoint_and_a_killed_worker_nothing_is_lost_or_wrong() -> None:
    options = SoakOptions(
        uploads=30,
        rate_per_second=4.0,
        duplicate_rate=0.15,
        bad_rate=0.1,
        seed=3,
        kill_worker_at=0.3,
        ingest_timeout_seconds=20,
        retry_base_delay_seconds=2,
        result_timeout=150,
        drain_timeout=90,
        latency_target=90,
    )

    environment = dict(os.environ)

    report = run_soak(options, echo=lambda line: None)

    assert dict(os.environ) == environment  # later tests must not talk to the soak's (stopped) moto

    summary = "\n".join(report.lines(options.latency_target))
    assert report.problems(options.latency_target) == [], summary
    assert report.killed_worker.startswith("killed"), summary
    assert report.queue_left == 0, summary
    assert sum(report.faults.get(kind, 0) for kind in ("429", "503", "reset")) > 0, summary
    assert report.states["succeeded"] == report.images, summary
