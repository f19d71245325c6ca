"""The InferenceFunction's collaborators, built once per container: the settings and the loaded model."""

from __future__ import annotations

from functools import lru_cache

from inference_settings import InferenceFunctionSettings
from s3kp_models.pipelines.registry import load_pipelines
from s3kp_models.request_decoding import ImageLimits
from s3kp_models.v0_answer import V0Service


@lru_cache(maxsize=1)
def settings() -> InferenceFunctionSettings:
    return InferenceFunctionSettings.from_environment()


@lru_cache(maxsize=1)
def service(settings: InferenceFunctionSettings) -> V0Service:
    """The configured model, loaded (a few hundred ms, in the cold start's init phase): one interpreter,
    since a sandbox serves one request at a time."""
    pipelines = load_pipelines(
        settings.model_directory,
        model_ids=[settings.model_id],
        num_threads=settings.inference_threads or None,
        pool_size=1,
    )
    limits = ImageLimits(max_body_bytes=settings.max_body_bytes, max_pixels=settings.max_image_pixels)
    return V0Service(pipelines, limits)
