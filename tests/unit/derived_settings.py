"""The domain's settings as the ingest function derives them, from the defaults it declares.

Unit tests of the shared layer start from these and override what they specify, so no test restates a
default (the defaults are declared once, in `ingest_settings.IngestSettings`; see docs/settings.md).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ingest_settings import IngestSettings
from s3kp_core.inference import InferenceSettings
from s3kp_core.processing import ProcessingSettings
from s3kp_core.video_processing import VideoProcessingSettings
from video_settings import VideoSettings

# The variables without a default.
REQUIRED_VARIABLES = {
    "MODEL_ID": "faces/1",
    "ROBOFLOW_API_KEY": "unit-test-key",
    "RESULTS_TABLE": "results",
    "IDEMPOTENCY_TABLE": "idempotency",
}


def processing_settings(**overrides: Any) -> ProcessingSettings:
    """The defaults, `model_id` faces/1 and no fingerprint, with `overrides`."""
    derived = IngestSettings.from_environment(REQUIRED_VARIABLES).processing_settings()
    return replace(derived, **{"fingerprint": None} | overrides)


def inference_settings(**overrides: Any) -> InferenceSettings:
    """The defaults (the hosted endpoint, `model_id` faces/1, the unit-test key) with `overrides`."""
    ingest = IngestSettings.from_environment(REQUIRED_VARIABLES)
    derived = ingest.inference_settings(REQUIRED_VARIABLES["ROBOFLOW_API_KEY"])
    return replace(derived, **overrides)


def video_processing_settings(**overrides: Any) -> VideoProcessingSettings:
    """The video function's defaults (VIDEO_FPS 5, 60 s segments...) with `overrides`; `processing=` takes
    `processing_settings(...)`'s overrides as a dict."""
    derived = VideoSettings.from_environment(REQUIRED_VARIABLES).video_processing_settings()
    processing = replace(derived.processing, **{"fingerprint": None} | overrides.pop("processing", {}))
    return replace(derived, processing=processing, **overrides)
