"""A small `make soak`: the offline stack behind the fault-injecting proxy (30 % transient faults), a few
dozen uploads with duplicates and bad files, an ingest worker killed in the middle of a batch, then a
45-second outage (nothing listens on the endpoint's port) with uploads during it. Each phase also uploads
a 5 s clip (three segments of 2 s; uploaded twice in the flaky phase) and a bad video (an image renamed
.mp4 in the flaky phase, a clip cut in half during the outage).

The ingest function's timeout is shortened to 20 s (so the killed batch's lease runs out after ~30 s
instead of ~130 s), the retry backoff base to 2 s and its cap to 20 s (a duplicate video event that finds
its planner still running waits that long), the circuit's probe interval to 3 s and the outage deferral
cap to 10 s, for both functions; everything else is the template's. `make soak` is the full run (with a
429 storm, a ten-minute outage, a 401 phase and three videos in each phase).
"""

from __future__ import annotations

import os

import pytest

from s3kp.local.soak import run_soak
from s3kp.local.soak_report import OUTAGE, SoakOptions

pytestmark = pytest.mark.slow


def test_under_a_flaky_endpoint_a_killed_worker_and_an_outage_nothing_is_lost_or_wrong() -> None:
    options = SoakOptions(
        uploads=40,
        rate_per_second=4.0,
        duplicate_rate=0.15,
        bad_rate=0.1,
        seed=3,
        kill_worker_at=0.3,
        storm_seconds=0,
        outage_seconds=45,
        outage_rate=0.2,
        refused_key_seconds=0,
        ingest_timeout_seconds=20,
        retry_base_delay_seconds=2,
        retry_max_delay_seconds=20,
        circuit_probe_seconds=3,
        outage_max_defer_seconds=10,
        settle_timeout=90,
        result_timeout=120,
        drain_timeout=90,
        latency_target=90,
        recovery_target=60,
        # Issue 19's 6 a minute at one probe per 15 s, scaled to one per 3 s; the outage is shorter than a
        # minute, so all of its requests count (4 attempts before the circuit opens, then the probes).
        outage_requests_per_minute=30,
        videos_per_phase=2,
    )

    environment = dict(os.environ)

    report = run_soak(options, echo=lambda line: None)

    assert dict(os.environ) == environment  # later tests must not talk to the soak's (stopped) moto

    summary = "\n".join(report.lines(options))
    assert report.problems(options) == [], summary
    assert report.killed_worker.startswith("killed"), summary
    assert report.queue_left == 0, summary
    assert sum(report.faults.get(kind, 0) for kind in ("429", "503", "reset")) > 0, summary
    assert report.states["succeeded"] == report.images + report.video_states["succeeded"], summary
    outage = report.phase(OUTAGE)
    assert outage is not None, summary
    assert outage.requests > 0, summary  # the endpoint was tried, and refused
    assert outage.images > 0, summary
    assert outage.succeeded == outage.images, summary
    assert any("circuit OPEN" in change for change in report.circuit_changes), summary
    # Videos: the clip succeeded in both phases (during the outage: deferred, then done after it), each bad
    # video failed with its reason, nothing was left processing or dead-lettered, no segment work is left.
    assert report.video_states == {
        "succeeded": 2,
        "failed video_undecodable": 1,
        "failed video_truncated": 1,
    }, summary
    assert (outage.videos, outage.videos_succeeded) == (1, 1), summary
    assert outage.video_recovery_to_last is not None, summary
    assert report.video_dlq_depth == report.video_queue_left == 0, summary
    assert report.work_left == [], summary
