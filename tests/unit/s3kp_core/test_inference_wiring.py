"""The guarded inference client both functions build (`GuardedInference`): how the client authenticates,
where the circuit keeps its state and how it paces probes, and what is built once per container.

The session and the DynamoDB resource are the function's getters; here a fake session (credentials and a
region) and moto's DynamoDB.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import msgspec
import pytest
from botocore.credentials import Credentials
from moto import mock_aws
from s3kp_core import errors
from s3kp_core.circuit_dynamodb import ITEM_PREFIX
from s3kp_core.errors import EndpointUnavailable
from s3kp_core.inference_wiring import CircuitSettings, GuardedInference
from s3kp_core.request_signing import RequestSigner
from s3kp_core.settings import ConfigurationError

from tests.unit.derived_settings import inference_settings
from tests.unit.s3kp_core.fakes import RecordingLog, record_signers

ENDPOINT = "https://detect.example.test/faces/1"
KEYED = inference_settings(api_key="first-key")
SIGNED = replace(KEYED, api_key=None, auth="aws_iam")
CIRCUIT = CircuitSettings(endpoint=ENDPOINT, table="idempotency", probe_interval=30.0, probe_lease=23.05)


class FakeSession:
    """What a boto3 session gives signing: credentials (None: it found none) and a region."""

    def __init__(self, credentials: Credentials | None, region_name: str = "eu-west-1") -> None:
        self.credentials = credentials
        self.region_name = region_name

    def get_credentials(self) -> Credentials | None:
        return self.credentials


class Getter:
    """A function's cached getter (`aws_session`, `dynamodb_resource`), counting the calls."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        return self.value


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        resource.create_table(
            TableName="idempotency",  # Powertools' layout (template.yaml IdempotencyTable)
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield resource


@pytest.fixture
def signers(monkeypatch: pytest.MonkeyPatch) -> list[RequestSigner]:
    return record_signers(monkeypatch)


def wiring(
    session: FakeSession | None = None, dynamodb: Any = None, log: RecordingLog | None = None
) -> GuardedInference:
    return GuardedInference(
        Getter(session or FakeSession(Credentials("AKIDEXAMPLE", "secret"))),
        Getter(dynamodb),
        log=log or RecordingLog(),
    )


def state_item(dynamodb: Any) -> dict[str, Any]:
    item: dict[str, Any] = dynamodb.Table("idempotency").get_item(Key={"id": ITEM_PREFIX + ENDPOINT})["Item"]
    return item


def endpoint_down() -> EndpointUnavailable:
    return EndpointUnavailable(errors.INFERENCE_UNAVAILABLE, "inference endpoint unreachable")


# --- the client --------------------------------------------------------------------------------------


def test_nothing_is_built_before_it_is_first_asked_for() -> None:
    """GIVEN a function's wiring, made at its import THEN neither its session nor its DynamoDB resource
    has been asked for: the cold start's import pays only for the code."""
    session, resource = Getter(FakeSession(None)), Getter(None)

    GuardedInference(session, resource, log=RecordingLog())

    assert (session.calls, resource.calls) == (0, 0)


def test_the_builtin_backend_signs_with_the_sessions_credentials_for_its_region(
    signers: list[RequestSigner],
) -> None:
    """GIVEN auth aws_iam (the InferenceFunction's AWS_IAM Function URL) WHEN the client is built
    THEN it signs for `lambda` in the session's region, with the session's credentials, and has no key."""
    client = wiring(FakeSession(Credentials("AKIDEXAMPLE", "secret"), "eu-west-1")).client(SIGNED)

    assert (client.settings.auth, client.settings.api_key) == ("aws_iam", None)
    (signer,) = signers
    assert (signer.region, signer.service) == ("eu-west-1", "lambda")


def test_the_builtin_backend_without_credentials_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="INFERENCE_AUTH aws_iam: no AWS credentials"):
        wiring(FakeSession(credentials=None)).client(SIGNED)


def test_a_keyed_endpoint_gets_the_key_and_no_signature_and_the_session_is_not_asked(
    signers: list[RequestSigner],
) -> None:
    session = Getter(FakeSession(Credentials("AKIDEXAMPLE", "secret")))
    built = GuardedInference(session, Getter(None), log=RecordingLog())

    client = built.client(KEYED)

    assert (client.settings.auth, client.settings.api_key) == ("api_key", "first-key")
    assert signers == []
    assert session.calls == 0


def test_the_client_is_kept_until_its_settings_change_and_a_rotated_key_replaces_it() -> None:
    """One pooled HTTP session per container: the same settings get the same client; a new API key
    (Secrets Manager's cached value rotated) gets a new one, which is then kept in its turn."""
    built = wiring()
    first = built.client(KEYED)

    assert built.client(replace(KEYED)) is first  # equal settings, derived afresh for each record
    rotated = built.client(replace(KEYED, api_key="second-key"))
    assert rotated is not first
    assert rotated.settings.api_key == "second-key"
    assert built.client(replace(KEYED, api_key="second-key")) is rotated


# --- the circuit -------------------------------------------------------------------------------------


def test_the_circuit_keeps_its_state_in_the_named_table_under_the_endpoint_and_paces_probes(
    dynamodb: Any,
) -> None:
    """GIVEN a call that failed for the endpoint's reasons THEN the circuit opens in the idempotency
    table's item for the endpoint (named without any key), says so in the log, and waits the probe
    interval before the next call may go."""
    log = RecordingLog()
    breaker = wiring(dynamodb=dynamodb, log=log).breaker(CIRCUIT)

    breaker.failed(breaker.admit(), endpoint_down())
    denied = breaker.admit()

    item = state_item(dynamodb)
    assert float(item["retry_at"]) - float(item["opened_at"]) == pytest.approx(30.0, abs=0.01)
    assert not denied.allowed
    assert 29 < denied.retry_in <= 30
    assert [(level, fields["endpoint"]) for level, _, fields in log.lines] == [("warning", ENDPOINT)]


def test_a_probe_is_leased_for_the_longest_one_attempt_can_take(dynamodb: Any) -> None:
    """GIVEN an open circuit whose next probe is due WHEN a call is admitted as the probe THEN no other
    caller may probe for the lease (the connect and read timeouts), so a probe that dies mid-call does
    not hold the circuit for longer."""
    breaker = wiring(dynamodb=dynamodb).breaker(msgspec.structs.replace(CIRCUIT, probe_interval=0.0))
    breaker.failed(breaker.admit(), endpoint_down())

    probe = breaker.admit()

    assert probe.probe
    item = state_item(dynamodb)
    assert float(item["probe_until"]) - float(item["retry_at"]) == pytest.approx(23.05, abs=1.0)


def test_the_circuit_is_built_once_and_outlives_a_key_rotation(dynamodb: Any) -> None:
    """Every record's predictor shares one circuit (its in-process memory of failures included), and a
    rotated API key replaces the client but not the circuit: the endpoint is the same."""
    built = wiring(dynamodb=dynamodb)
    breaker = built.breaker(CIRCUIT)

    built.predictor(KEYED, CIRCUIT)
    built.predictor(replace(KEYED, api_key="second-key"), msgspec.structs.replace(CIRCUIT))

    assert built.breaker(msgspec.structs.replace(CIRCUIT)) is breaker


def test_the_predictor_asks_the_circuit_before_calling_the_endpoint(dynamodb: Any) -> None:
    """GIVEN the endpoint's circuit open WHEN a record's predictor is asked THEN it answers that the
    endpoint is unavailable, with when to try again, without calling it (nothing listens at the URL)."""
    built = wiring(dynamodb=dynamodb)
    breaker = built.breaker(CIRCUIT)
    breaker.failed(breaker.admit(), endpoint_down())

    with pytest.raises(EndpointUnavailable) as denied:
        built.predictor(KEYED, CIRCUIT).predict(b"not even a JPEG")

    assert denied.value.calls_made is False
    assert denied.value.retry_in is not None
    assert 29 < denied.value.retry_in <= 30


def test_cache_clear_forgets_the_client_and_the_circuit(dynamodb: Any) -> None:
    built = wiring(dynamodb=dynamodb)
    client, breaker = built.client(KEYED), built.breaker(CIRCUIT)

    built.cache_clear()

    assert built.client(KEYED) is not client
    assert built.breaker(CIRCUIT) is not breaker
