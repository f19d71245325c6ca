"""The video function's settings: the ingest function's variables plus the video ones, checked together."""

from __future__ import annotations

from fractions import Fraction

import pytest
from ingest_settings import IngestSettings
from s3kp_core.settings import ConfigurationError
from video_settings import VideoSettings

from tests.unit.derived_settings import REQUIRED_VARIABLES


def test_the_defaults_sample_five_frames_a_second_in_one_minute_segments_up_to_half_an_hour() -> None:
    settings = VideoSettings.from_environment(REQUIRED_VARIABLES).video_processing_settings()
    assert (settings.fps, settings.segment_seconds, settings.max_video_seconds) == (
        Fraction(5),
        Fraction(60),
        1800,
    )
    assert settings.processing.model_id == REQUIRED_VARIABLES["MODEL_ID"]  # the ingest function's variables


def test_a_fractional_rate_is_kept_exact() -> None:
    settings = VideoSettings.from_environment({**REQUIRED_VARIABLES, "VIDEO_FPS": "0.1"})
    assert settings.video_processing_settings().fps == Fraction(1, 10)


def test_a_segment_that_would_sample_no_frame_is_refused_at_cold_start() -> None:
    with pytest.raises(ConfigurationError, match="VIDEO_FPS x VIDEO_SEGMENT_SECONDS must be at least 1"):
        VideoSettings.from_environment(
            {**REQUIRED_VARIABLES, "VIDEO_FPS": "0.5", "VIDEO_SEGMENT_SECONDS": "1"}
        )


def test_the_ingest_functions_rules_still_apply() -> None:
    with pytest.raises(ConfigurationError, match="no API key source"):
        VideoSettings.from_environment(
            {k: v for k, v in REQUIRED_VARIABLES.items() if k != "ROBOFLOW_API_KEY"}
        )


def test_the_fingerprint_covers_the_sampling_rate_and_every_use_of_it_sees_the_same() -> None:
    """A video's predictions depend on which frames are sampled: its fingerprint (the planner's idempotency
    key, the run token, the record) is the ingest function's settings plus VIDEO_FPS."""
    from ingest_settings import IngestSettings
    from s3kp_core.fingerprint import inference_fingerprint

    default = VideoSettings.from_environment(REQUIRED_VARIABLES)
    assert default.fingerprint == inference_fingerprint(
        "faces/1", confidence=0.4, overlap=0.3, max_side_for_inference=1024, video_fps=5
    )
    assert default.fingerprint != IngestSettings.from_environment(REQUIRED_VARIABLES).fingerprint
    assert default.video_processing_settings().processing.fingerprint == default.fingerprint

    at_2 = VideoSettings.from_environment({**REQUIRED_VARIABLES, "VIDEO_FPS": "2"})
    assert at_2.fingerprint != default.fingerprint
    assert at_2.video_processing_settings().processing.fingerprint == at_2.fingerprint
    assert VideoSettings.from_environment({**REQUIRED_VARIABLES, "VIDEO_FPS": "5.0"}).fingerprint == (
        default.fingerprint
    )
    # Segments change where the work is done, not which frames are sampled (sample times are global).
    assert VideoSettings.from_environment(
        {**REQUIRED_VARIABLES, "VIDEO_SEGMENT_SECONDS": "10"}
    ).fingerprint == (default.fingerprint)


def test_the_video_function_shares_the_ingest_functions_circuit_and_deferrals() -> None:
    """From the same variables (the template gives both functions the same), the same circuit state item,
    so an outage seen by either function holds both back, and the same deferral rules."""
    environment = {
        **REQUIRED_VARIABLES,
        "INFERENCE_URL": "https://infer.example.test",
        "OUTAGE_MAX_DEFER_SECONDS": "90",
    }
    video, ingest = VideoSettings.from_environment(environment), IngestSettings.from_environment(environment)

    assert video.circuit_settings() == ingest.circuit_settings()
    assert video.deferral_settings() == ingest.deferral_settings()
