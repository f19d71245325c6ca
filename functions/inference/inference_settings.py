"""The InferenceFunction's configuration: environment variables, validated once at cold start.

Named `inference_settings` (every function directory shares `sys.path` in tests and in the offline
stack). Every variable is documented in docs/settings.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar

from msgspec import Meta
from s3kp_core import imaging
from s3kp_core.settings import EnvironmentSettings, env
from s3kp_models.model_files import MODEL_IDS, PACKAGED_MODEL_DIR

# A Function URL takes at most 6 MB of request payload (Lambda's synchronous invocation limit) and answers
# 413 itself past it; the function refuses the same (as the local server does past its 20 MB).
FUNCTION_URL_MAX_BYTES = 6 * 1024 * 1024


def _builtin_model(value: str) -> str:
    if value not in MODEL_IDS:
        raise ValueError(f"must be one of the built-in models {', '.join(MODEL_IDS)}")
    return value


class InferenceFunctionSettings(EnvironmentSettings, frozen=True, kw_only=True):
    description: ClassVar[str] = "inference"

    # The one model this function loads and serves (the ingest function's MODEL_ID).
    model_id: Annotated[str, env("MODEL_ID", parse=_builtin_model)]
    # Where the .tflite files are; unset: the copy the models layer carries. The offline stack points it
    # at the verified cache.
    model_dir: Annotated[str | None, env("MODEL_DIR")] = None
    max_body_bytes: Annotated[int, env("MAX_BODY_BYTES"), Meta(ge=1024, le=FUNCTION_URL_MAX_BYTES)] = (
        FUNCTION_URL_MAX_BYTES
    )
    max_image_pixels: Annotated[int, env("MAX_IMAGE_PIXELS"), Meta(gt=0)] = imaging.DEFAULT_MAX_IMAGE_PIXELS
    # XNNPACK threads of the model; 0: one per core the sandbox has, at most 2.
    inference_threads: Annotated[int, env("INFERENCE_THREADS"), Meta(ge=0, le=8)] = 0

    @property
    def model_directory(self) -> Path:
        return Path(self.model_dir) if self.model_dir else PACKAGED_MODEL_DIR
