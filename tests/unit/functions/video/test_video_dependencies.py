"""The video function's inference client is built as the ingest function's: signed for the builtin
backend, with the API key otherwise."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

import pytest
from video_settings import VideoSettings

from tests.unit.s3kp_core.fakes import record_signers

# What the import loads afresh: the function's modules and the Powertools objects they share.
COLD_START_MODULES = ("video_dependencies", "s3kp_core.observability")
ENVIRONMENT = {
    "MODEL_ID": "faces/1",
    "ROBOFLOW_API_KEY": "unit-test-key",
    "RESULTS_TABLE": "results",
    "IDEMPOTENCY_TABLE": "idempotency",
}


@pytest.fixture
def video_dependencies(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The module, imported when the test runs, never at collection: its import builds the process-wide
    Powertools objects (`s3kp_core.observability`) from the environment as it is then, and a test process
    that built them before a handler test set the function's variables made that test's metrics fail
    ("Must contain a metric namespace"). So the modules it loads afresh are put back afterwards, as
    test_ingest_dependencies does. AWS credentials and region as the Lambda runtime gives them; no cached
    client from another test."""
    previous = {name: sys.modules.pop(name) for name in COLD_START_MODULES if name in sys.modules}
    video_dependencies: ModuleType = importlib.import_module("video_dependencies")
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for cached in (video_dependencies.aws_session, video_dependencies.guarded_inference):
        cached.cache_clear()
    try:
        yield video_dependencies
    finally:
        for cached in (video_dependencies.aws_session, video_dependencies.guarded_inference):
            cached.cache_clear()
        for name in COLD_START_MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(previous)


def test_the_builtin_backend_signs_with_the_functions_credentials_for_its_region(
    monkeypatch: pytest.MonkeyPatch, video_dependencies: ModuleType
) -> None:
    """GIVEN INFERENCE_AUTH aws_iam WHEN the inference client is built
    THEN it signs with the function's credentials for the function's region, and sends no key."""
    settings = VideoSettings.from_environment({**ENVIRONMENT, "INFERENCE_AUTH": "aws_iam"})
    signers = record_signers(monkeypatch)

    client = video_dependencies.guarded_inference.client(settings.inference_settings(None))

    assert client.settings.auth == "aws_iam"
    assert client.settings.api_key is None
    (signer,) = signers
    assert (signer.region, signer.service) == ("eu-west-1", "lambda")


def test_the_roboflow_backend_sends_the_api_key_and_signs_nothing(
    monkeypatch: pytest.MonkeyPatch, video_dependencies: ModuleType
) -> None:
    settings = VideoSettings.from_environment(ENVIRONMENT)
    signers = record_signers(monkeypatch)

    client = video_dependencies.guarded_inference.client(settings.inference_settings("unit-test-key"))

    assert client.settings.auth == "api_key"
    assert client.settings.api_key == "unit-test-key"
    assert signers == []


def test_the_client_pools_as_many_connections_as_the_ingest_settings_give_it(
    video_dependencies: ModuleType,
) -> None:
    settings = VideoSettings.from_environment({**ENVIRONMENT, "RECORD_CONCURRENCY": "3"})

    client = video_dependencies.guarded_inference.client(settings.inference_settings("unit-test-key"))

    assert client.settings.max_connections == 3
