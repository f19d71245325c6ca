"""The InferenceFunction's variables (docs/settings.md): a built-in model, limits a Function URL allows."""

from __future__ import annotations

import pytest
from inference_settings import FUNCTION_URL_MAX_BYTES, InferenceFunctionSettings
from s3kp_core.settings import ConfigurationError
from s3kp_models.model_files import MODEL_IDS, PACKAGED_MODEL_DIR


@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_every_built_in_model_is_accepted_and_read_from_the_models_layer(model_id: str) -> None:
    settings = InferenceFunctionSettings.from_environment({"MODEL_ID": model_id})
    assert settings.model_id == model_id
    assert settings.model_directory == PACKAGED_MODEL_DIR
    assert settings.max_body_bytes == FUNCTION_URL_MAX_BYTES


@pytest.mark.parametrize("model_id", ["my-pose/1", "faces/3", "faces/1 "])
def test_a_model_that_is_not_built_in_fails_the_cold_start_naming_the_choices(model_id: str) -> None:
    with pytest.raises(ConfigurationError, match=r"MODEL_ID.*faces/1, faces/2, pose/1, hands/1"):
        InferenceFunctionSettings.from_environment({"MODEL_ID": model_id})


def test_the_body_limit_cannot_exceed_what_a_function_url_accepts() -> None:
    with pytest.raises(ConfigurationError, match="MAX_BODY_BYTES"):
        InferenceFunctionSettings.from_environment(
            {"MODEL_ID": "faces/1", "MAX_BODY_BYTES": str(FUNCTION_URL_MAX_BYTES + 1)}
        )
