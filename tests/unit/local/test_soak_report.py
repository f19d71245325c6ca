"""`make soak`'s phases and targets: what the run is made of, how the outage is measured (requests in each
minute, time from recovery to the last result) and which figures make it fail (issue 19's targets)."""

from __future__ import annotations

import json

import pytest

from s3kp.local.soak import logged_attempts
from s3kp.local.soak_report import (
    FLAKY,
    OUTAGE,
    REFUSED_KEY,
    STORM,
    PhaseFigures,
    PhaseSpec,
    SoakOptions,
    SoakReport,
    Upload,
    per_minute,
    plan_phases,
    recovery_to_last,
)

T0 = 1_800_000_000.0
OUTAGE_SPEC = PhaseSpec(OUTAGE, "connection refused", 3, 600)


def test_the_default_run_is_300_uploads_flaky_then_a_storm_a_ten_minute_outage_and_a_401_phase() -> None:
    phases = plan_phases(SoakOptions())

    assert [(spec.name, spec.seconds, spec.uploads) for spec in phases] == [
        (FLAKY, 80.0, 100),
        (STORM, 120.0, 40),
        (OUTAGE, 600.0, 120),
        (REFUSED_KEY, 120.0, 40),
    ]


def test_phases_given_no_time_are_left_out_and_too_few_uploads_are_refused() -> None:
    assert [
        spec.name for spec in plan_phases(SoakOptions(uploads=150, storm_seconds=0, refused_key_seconds=0))
    ] == [
        FLAKY,
        OUTAGE,
    ]
    with pytest.raises(ValueError, match="not enough"):
        plan_phases(SoakOptions(uploads=200))


def test_requests_are_counted_per_whole_minute_from_the_start_of_the_outage() -> None:
    times = [T0 + 1, T0 + 2, T0 + 59.9, T0 + 60, T0 + 150, T0 + 181, T0 - 1]

    assert per_minute(times, T0, T0 + 181) == [3, 1, 1]  # the part-minute after 180 s is left out


def outage(requests_per_minute: list[int], recovered_in: float | None) -> PhaseFigures:
    figures = PhaseFigures(OUTAGE_SPEC, started_at=T0, ended_at=T0 + 60 * len(requests_per_minute))
    figures.per_minute = requests_per_minute
    figures.requests = sum(requests_per_minute)
    figures.recovery_to_last = recovered_in
    return figures


def missed(report: SoakReport) -> list[str]:
    return [target.what for target in report.targets(SoakOptions()) if not target.met]


def healthy_flaky_phase() -> PhaseFigures:
    return PhaseFigures(PhaseSpec(FLAKY, "flaky", 1, 1), latencies=[2.0])


def test_an_outage_within_issue_19s_targets_misses_nothing() -> None:
    report = SoakReport(
        uploads=[], phases=[healthy_flaky_phase(), outage([6, 4, 4, 4, 4, 4, 4, 4, 4, 4], 95.0)]
    )

    assert missed(report) == []


def test_seven_requests_in_one_minute_of_the_outage_miss_the_target_even_if_the_average_is_low() -> None:
    report = SoakReport(
        uploads=[], phases=[healthy_flaky_phase(), outage([7, 4, 4, 4, 4, 4, 4, 4, 4, 3], 95.0)]
    )

    assert missed(report) == ["outage: ≤ 6 endpoint requests in any minute"]
    assert report.targets(SoakOptions())[5].measured == "at most 7 (on average 4.2)"


def test_a_slow_or_incomplete_recovery_and_an_upload_failed_for_the_endpoint_miss_their_targets() -> None:
    slow = SoakReport(uploads=[], phases=[healthy_flaky_phase(), outage([4] * 10, 181.0)])
    incomplete = SoakReport(uploads=[], phases=[healthy_flaky_phase(), outage([4] * 10, None)])
    failed = SoakReport(
        uploads=[], phases=[healthy_flaky_phase()], endpoint_failures=["k: inference_unavailable"]
    )

    assert missed(slow) == ["outage: all done ≤ 180 s after recovery"]
    assert missed(incomplete) == ["outage: all done ≤ 180 s after recovery"]
    assert missed(failed) == ["0 failed for endpoint reasons"]


def test_recovery_is_timed_to_the_last_result_of_what_waited_during_the_outage() -> None:
    figures = PhaseFigures(OUTAGE_SPEC, started_at=T0, ended_at=T0 + 600)
    uploads = [
        Upload("early", "camera", "succeeded", None, T0 - 100, phase=FLAKY),  # done before the outage
        Upload("caught", "camera", "succeeded", None, T0 - 1, phase=FLAKY),  # still waiting when it began
        Upload("during", "camera", "succeeded", None, T0 + 300, phase=OUTAGE),
        Upload("after", "camera", "succeeded", None, T0 + 700, phase=REFUSED_KEY),  # not the outage's
    ]
    done_at = {"early": T0 - 90, "caught": T0 + 640, "during": T0 + 630, "after": T0 + 900}

    assert recovery_to_last(figures, uploads, done_at) == 40.0
    assert recovery_to_last(figures, uploads, {"caught": T0 + 640}) is None  # "during" has no result


def test_the_workers_logged_attempts_are_read_from_their_transient_failure_lines_only() -> None:
    def line(message: str, detail: str) -> str:
        return json.dumps({"message": message, "timestamp": "2027-01-15 08:00:05,250+0000", "detail": detail})

    lines = [
        line(
            "transient failure: the message will be retried", "http://e/m failed after 4 attempt(s): refused"
        ),
        line(
            "inference circuit opened: the endpoint is failing",
            "http://e/m failed after 4 attempt(s): refused",
        ),
        line("transient failure: the message will be retried", "the circuit is open since …; not called"),
        line(
            "transient failure: the message will be retried", "http://e/m failed after 1 attempt(s): refused"
        ),
        "Traceback (most recent call last):",
    ]

    assert logged_attempts(lines) == [(1_800_000_005.25, 4), (1_800_000_005.25, 1)]


def video(key: str, status: str = "succeeded", code: str | None = None, phase: str = FLAKY) -> Upload:
    return Upload(key, f"video:{key}", status, code, T0, phase=phase, video=True, segments=3)


def test_videos_are_counted_apart_from_images_and_a_video_failed_or_work_left_misses_its_target() -> None:
    flaky = healthy_flaky_phase()
    flaky.videos, flaky.videos_succeeded, flaky.bad_videos, flaky.bad_videos_failed = 2, 1, 1, 1
    report = SoakReport(
        uploads=[
            Upload("a.jpg", "camera", "succeeded", None, T0),
            video("clip.mp4"),
            video("other.mp4"),
            video("bad.mp4", "failed", "video_undecodable"),
        ],
        phases=[flaky],
        work_left=["predictions/abc/run/piece-00001.mp4"],
        video_dlq_depth=1,
    )

    assert report.images == 1
    assert len(report.videos) == 3
    assert missed(report) == [
        "dead-letter queues empty (ingest, video)",
        "videos: every clip succeeded, in every phase",
        "videos: no segment work left behind",
    ]
    lines = "\n".join(report.lines(SoakOptions()))
    assert "videos                2 clips (2 of 3 segments; 0 uploaded twice), 1 bad (bad.mp4 1)" in lines
    assert "segment work left 1  e.g. predictions/abc/run/piece-00001.mp4" in lines


def test_a_run_without_videos_has_no_video_targets_or_lines() -> None:
    report = SoakReport(
        uploads=[Upload("a.jpg", "camera", "succeeded", None, T0)], phases=[healthy_flaky_phase()]
    )

    assert not any(target.what.startswith("videos") for target in report.targets(SoakOptions()))
    assert not any(line.startswith("video") for line in report.lines(SoakOptions()))


def test_each_phase_gets_the_videos_asked_for_within_the_video_functions_limits() -> None:
    assert {spec.videos for spec in plan_phases(SoakOptions())} == {3}
    assert {spec.videos for spec in plan_phases(SoakOptions(videos_per_phase=0))} == {0}
    with pytest.raises(ValueError, match="0 to 3"):
        plan_phases(SoakOptions(videos_per_phase=4))
    with pytest.raises(ValueError, match="1 to 3600"):
        plan_phases(SoakOptions(video_segment_seconds=0.5))
