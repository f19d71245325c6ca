"""Which samples a video has and how segments split them: exact fractions, every sample exactly once."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st
from s3kp_core.video_plan import exact, plan_segments, sample_count, sample_time


def test_samples_are_every_k_over_fps_before_the_end() -> None:
    assert sample_count(Fraction(1), Fraction(5)) == 5  # 0, 0.2, 0.4, 0.6, 0.8: 1.0 is the end, not a frame
    assert sample_count(Fraction(101, 10), Fraction(5)) == 51  # 10.0 s is before 10.1 s
    assert sample_count(Fraction(0), Fraction(5)) == 0
    assert sample_time(6, Fraction(30)) == Fraction(1, 5)  # exactly the time of sample 1 at 5 fps


def test_settings_and_header_values_are_read_exactly() -> None:
    assert exact(2.5) == Fraction(5, 2)
    assert exact("0.1") == Fraction(1, 10)  # a float 0.1 would be 3602879701896397/36028797018963968
    assert exact(5) == Fraction(5)


def test_a_ten_minute_video_at_five_fps_is_ten_segments_of_300_samples() -> None:
    segments = plan_segments(Fraction(600), Fraction(5), Fraction(60))
    assert [(s.index, s.first, s.stop) for s in segments[:2]] == [(0, 0, 300), (1, 300, 600)]
    assert len(segments) == 10
    assert segments[-1].stop == 3000


def test_a_short_video_is_one_segment() -> None:
    assert [(s.first, s.stop) for s in plan_segments(Fraction(4), Fraction(5), Fraction(60))] == [(0, 20)]


@given(
    duration=st.fractions(min_value=Fraction(1, 100), max_value=Fraction(4000)),
    fps=st.sampled_from([Fraction(1, 2), Fraction(1), Fraction(5, 2), Fraction(5), Fraction(30)]),
    segment_seconds=st.sampled_from([Fraction(2), Fraction(10), Fraction(60)]),
)
def test_segments_cover_every_sample_once_in_order_within_their_span(
    duration: Fraction, fps: Fraction, segment_seconds: Fraction
) -> None:
    segments = plan_segments(duration, fps, segment_seconds)
    covered = [k for segment in segments for k in range(segment.first, segment.stop)]
    assert covered == list(range(sample_count(duration, fps)))
    for segment in segments:
        assert segment.samples > 0
        span = int(sample_time(segment.first, fps) // segment_seconds)
        assert sample_time(segment.stop - 1, fps) < (span + 1) * segment_seconds
    assert [segment.index for segment in segments] == list(range(len(segments)))
