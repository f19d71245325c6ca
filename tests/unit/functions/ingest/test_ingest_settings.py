"""Ingest configuration: defaults, validation messages that name the setting, API key sources."""

from __future__ import annotations

import json

import boto3
import msgspec
import pytest
from ingest_settings import ConfigurationError, IngestSettings, resolve_api_key
from moto import mock_aws
from s3kp_core import redact
from s3kp_core.inference_wiring import CircuitSettings

MINIMAL = {
    "MODEL_ID": "faces/1",
    "ROBOFLOW_API_KEY": "rf-local-key-123",
    "RESULTS_TABLE": "results",
    "IDEMPOTENCY_TABLE": "idempotency",
}


def test_minimal_environment_gets_documented_defaults() -> None:
    settings = IngestSettings.from_environment(MINIMAL)
    assert settings.inference_url == "https://detect.roboflow.com"
    assert (settings.confidence, settings.overlap) == (0.4, 0.3)
    assert settings.classes == ()
    assert (settings.max_side_for_inference, settings.annotated_max_side) == (1024, 2048)
    assert (settings.input_prefix, settings.output_prefix, settings.predictions_prefix) == (
        "incoming/",
        "annotated/",
        "predictions/",
    )
    assert settings.output_bucket is None
    assert settings.skeleton == "auto"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("CONFIDENCE", "1.5", "CONFIDENCE='1.5'"),
        ("OVERLAP", "-0.1", "OVERLAP='-0.1'"),
        ("MODEL_ID", "faces", "MODEL_ID='faces'"),
        ("MODEL_ID", "faces/latest", "MODEL_ID='faces/latest'"),
        ("INFERENCE_URL", "ftp://example.com", "INFERENCE_URL='ftp://example.com': must be an http"),
        ("MAX_SIDE_FOR_INFERENCE", "big", "MAX_SIDE_FOR_INFERENCE='big'"),
        ("MAX_OBJECT_BYTES", "0", "MAX_OBJECT_BYTES='0'"),
        ("SKELETON", "octopus", "SKELETON='octopus': expected one of auto, none, coco17"),
        ("INFERENCE_MAX_ATTEMPTS", "0", "INFERENCE_MAX_ATTEMPTS='0'"),
    ],
)
def test_an_invalid_value_is_reported_by_its_variable_name(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        IngestSettings.from_environment(MINIMAL | {name: value})
    assert expected in str(raised.value)


def test_every_bad_variable_is_named_in_one_message() -> None:
    """An operator fixing a stack's parameters sees them all at once, not one per deployment."""
    environment = {k: v for k, v in MINIMAL.items() if k != "RESULTS_TABLE"}
    with pytest.raises(ConfigurationError) as raised:
        IngestSettings.from_environment(environment | {"CONFIDENCE": "high", "OVERLAP": "2"})
    message = str(raised.value)
    assert message.startswith("invalid ingest configuration: ")
    for named in ("CONFIDENCE='high'", "OVERLAP='2'", "RESULTS_TABLE is required"):
        assert named in message


def test_numbers_may_carry_surrounding_whitespace() -> None:
    settings = IngestSettings.from_environment(MINIMAL | {"MAX_SIDE_FOR_INFERENCE": " 512\n"})
    assert settings.max_side_for_inference == 512


def test_the_api_key_is_never_shown_by_the_settings_repr() -> None:
    settings = IngestSettings.from_environment(MINIMAL)
    assert "rf-local-key-123" not in repr(settings)
    assert "api_key=***" in repr(settings)


@pytest.mark.parametrize("missing", ["MODEL_ID", "RESULTS_TABLE", "IDEMPOTENCY_TABLE"])
def test_a_missing_required_setting_is_named(missing: str) -> None:
    environment = {k: v for k, v in MINIMAL.items() if k != missing}
    with pytest.raises(ConfigurationError, match=f"{missing} is required"):
        IngestSettings.from_environment(environment)


def test_no_api_key_source_is_an_error_naming_both_variables() -> None:
    environment = {k: v for k, v in MINIMAL.items() if k != "ROBOFLOW_API_KEY"}
    with pytest.raises(ConfigurationError) as raised:
        IngestSettings.from_environment(environment)
    for name in ("ROBOFLOW_API_KEY_SECRET_ARN", "ROBOFLOW_API_KEY"):
        assert name in str(raised.value)


def test_validation_messages_never_echo_the_api_key() -> None:
    """GIVEN a rule across variables fails (every variable was read, the key included)."""
    with pytest.raises(ConfigurationError) as raised:
        IngestSettings.from_environment(MINIMAL | {"OUTPUT_PREFIX": "incoming/out/"})
    assert "trigger itself" in str(raised.value)
    assert "rf-local-key-123" not in str(raised.value)


def test_empty_variables_mean_unset_and_lists_are_comma_separated() -> None:
    settings = IngestSettings.from_environment(
        MINIMAL | {"OUTPUT_BUCKET": "", "CLASSES": " face, person ,,", "CONFIDENCE": ""}
    )
    assert settings.output_bucket is None
    assert settings.classes == ("face", "person")
    assert settings.confidence == 0.4


@pytest.mark.parametrize(
    ("input_prefix", "output_prefix"), [("incoming/", "incoming/annotated/"), ("data/in/", "data/")]
)
def test_an_output_prefix_that_would_retrigger_the_function_is_refused(
    input_prefix: str, output_prefix: str
) -> None:
    with pytest.raises(ConfigurationError, match="trigger itself"):
        IngestSettings.from_environment(
            MINIMAL | {"INPUT_PREFIX": input_prefix, "OUTPUT_PREFIX": output_prefix}
        )


@pytest.fixture
def forget_secrets():
    yield
    redact.unregister_all()


@pytest.mark.usefixtures("forget_secrets")
def test_api_key_from_the_environment_is_registered_for_redaction() -> None:
    key = resolve_api_key(IngestSettings.from_environment(MINIMAL))
    assert key == "rf-local-key-123"
    assert redact.redact(f"GET /faces/1?api_key={key}x and {key}") == "GET /faces/1?api_key=*** and ***"


@pytest.mark.usefixtures("forget_secrets")
@pytest.mark.parametrize("secret_string", ["sm-key-456", '{"api_key": "sm-key-456"}', "  sm-key-456\n"])
def test_api_key_from_secrets_manager_plain_or_json(secret_string: str, monkeypatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="rf", SecretString=secret_string)["ARN"]
        environment = {k: v for k, v in MINIMAL.items() if k != "ROBOFLOW_API_KEY"}
        settings = IngestSettings.from_environment(
            environment | {"ROBOFLOW_API_KEY_SECRET_ARN": arn, "API_KEY_CACHE_SECONDS": "0"}
        )
        assert resolve_api_key(settings) == "sm-key-456"
    assert "sm-key-456" in redact.registered_secrets()


@pytest.mark.usefixtures("forget_secrets")
def test_a_json_secret_without_api_key_is_a_configuration_error(monkeypatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        arn = boto3.client("secretsmanager").create_secret(Name="rf2", SecretString=json.dumps({"key": "x"}))[
            "ARN"
        ]
        settings = IngestSettings.from_environment(
            MINIMAL | {"ROBOFLOW_API_KEY_SECRET_ARN": arn, "API_KEY_CACHE_SECONDS": "0"}
        )
        with pytest.raises(ConfigurationError, match="api_key"):
            resolve_api_key(settings)


def test_the_builtin_backend_needs_no_api_key_and_reads_none() -> None:
    """INFERENCE_AUTH aws_iam: the stack's InferenceFunction, called with signed requests."""
    environment = {k: v for k, v in MINIMAL.items() if k != "ROBOFLOW_API_KEY"}
    settings = IngestSettings.from_environment({**environment, "INFERENCE_AUTH": "aws_iam"})
    assert settings.inference_auth == "aws_iam"
    assert resolve_api_key(settings) is None
    inference = settings.inference_settings(None)
    assert (inference.auth, inference.api_key) == ("aws_iam", None)


def test_an_unknown_inference_auth_is_named() -> None:
    with pytest.raises(ConfigurationError, match="INFERENCE_AUTH"):
        IngestSettings.from_environment({**MINIMAL, "INFERENCE_AUTH": "none"})


def test_the_circuit_and_the_deferrals_are_derived_from_their_variables() -> None:
    """The circuit's state item is named by the endpoint's URL and model (never the key) in the
    idempotency table, and a probe may take as long as one attempt (the connect and read timeouts); a
    message is deferred by the retry, outage and retention variables."""
    settings = IngestSettings.from_environment(
        {
            **MINIMAL,
            "INFERENCE_URL": "https://infer.example.test/",
            "CIRCUIT_PROBE_SECONDS": "20",
            "INFERENCE_CONNECT_TIMEOUT": "2.5",
            "INFERENCE_READ_TIMEOUT": "10",
            "RETRY_MAX_DELAY_SECONDS": "240",
            "OUTAGE_MAX_DEFER_SECONDS": "90",
            "MESSAGE_RETENTION_SECONDS": "86400",
        }
    )

    assert settings.circuit_settings() == CircuitSettings(
        endpoint="https://infer.example.test/faces/1",
        table="idempotency",
        probe_interval=20,
        probe_lease=12.5,
    )
    # Compared field by field: another test may have imported `sqs_retries` afresh (a class of its own).
    assert msgspec.structs.asdict(settings.deferral_settings()) == {
        "in_progress_unknown": 240,
        "probe_interval": 20,
        "max_outage_defer": 90,
        "retention": 86_400,
    }
