"""The ingest function's AWS clients: none built at import, and one boto3 session for all of them.

A botocore session's loader caches the endpoint rules and service models it has read; clients of
different sessions each read them again, which costs cold-start time. So what is specified is which
botocore session creates each client (seen through `Session.create_client`, botocore's public entry).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from botocore.session import Session

# Everything a cold start imports afresh: the handler's modules and the Powertools objects they share.
COLD_START_MODULES = (
    "ingest_handler",
    "ingest_dependencies",
    "ingest_settings",
    "s3_events",
    "s3kp_core.observability",
)
ENVIRONMENT = {
    "MODEL_ID": "faces/1",
    "ROBOFLOW_API_KEY": "unit-test-key",
    "RESULTS_TABLE": "results",
    "IDEMPOTENCY_TABLE": "idempotency",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


@pytest.fixture
def client_sessions(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(service, id of the botocore session) of every client created from now on."""
    created: list[tuple[str, int]] = []
    create_client = Session.create_client

    def recording(self: Session, service_name: str, *args: Any, **kwargs: Any) -> Any:
        created.append((service_name, id(self)))
        return create_client(self, service_name, *args, **kwargs)

    monkeypatch.setattr(Session, "create_client", recording)
    return created


@pytest.fixture
def fresh_handler(
    monkeypatch: pytest.MonkeyPatch, client_sessions: list[tuple[str, int]]
) -> Iterator[ModuleType]:
    """The handler imported as at a cold start; the modules loaded before are put back afterwards, so
    later tests never see a logger or metrics object configured with this test's environment."""
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    previous = {name: sys.modules.pop(name) for name in COLD_START_MODULES if name in sys.modules}
    try:
        yield importlib.import_module("ingest_handler")
    finally:
        for name in COLD_START_MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(previous)


def test_the_import_builds_no_aws_client(
    fresh_handler: ModuleType, client_sessions: list[tuple[str, int]]
) -> None:
    """GIVEN the handler imported at a cold start
    THEN no client of the function's exists yet: each is built when the first event needs it."""
    assert [service for service, _ in client_sessions if service != "xray"] == []


def test_the_idempotency_layer_and_the_first_invocations_clients_share_one_botocore_session(
    fresh_handler: ModuleType, client_sessions: list[tuple[str, int]]
) -> None:
    """GIVEN the handler imported at a cold start
    WHEN the first invocation builds its idempotent processing (the idempotency layer's DynamoDB client)
    and its collaborators (S3 client, results table)
    THEN one botocore session created every client, so no service model is read twice."""
    import ingest_dependencies
    from ingest_settings import resolve_api_key

    settings = fresh_handler.settings
    fresh_handler.idempotent(fresh_handler.process_once)
    ingest_dependencies.collaborators(settings, resolve_api_key(settings))

    # The X-Ray SDK builds its own sampling clients at import; they are not the function's.
    ours = [(service, session) for service, session in client_sessions if service != "xray"]
    services = [service for service, _ in ours]
    assert services.count("dynamodb") == 2  # the idempotency layer's and the results table's
    assert "s3" in services
    assert len({session for _, session in ours}) == 1, ours


def test_the_idempotent_processing_is_built_once_per_container(fresh_handler: ModuleType) -> None:
    first = fresh_handler.idempotent(fresh_handler.process_once)

    assert fresh_handler.idempotent(fresh_handler.process_once) is first
    assert first.__wrapped__ is fresh_handler.process_once  # the key names `ingest_handler.process_once`


def test_the_builtin_backend_signs_with_the_functions_credentials_for_its_region(
    fresh_handler: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN INFERENCE_AUTH aws_iam WHEN the first invocation builds the inference client
    THEN it signs with the function's credentials for the function's region, and sends no key."""
    import ingest_dependencies
    from ingest_settings import IngestSettings

    from tests.unit.s3kp_core.fakes import record_signers

    settings = IngestSettings.from_environment({**ENVIRONMENT, "INFERENCE_AUTH": "aws_iam"})
    signers = record_signers(monkeypatch)
    client = ingest_dependencies.guarded_inference.client(settings.inference_settings(None))

    assert client.settings.auth == "aws_iam"
    assert client.settings.api_key is None
    (signer,) = signers
    assert (signer.region, signer.service) == ("us-east-1", "lambda")


def test_build_shared_creates_every_client_before_records_run_in_parallel(
    fresh_handler: ModuleType, client_sessions: list[tuple[str, int]]
) -> None:
    """boto3 sessions are not safe to create clients from in several threads at once: what the records
    of a batch share is built by `build_shared`, in the handler's thread, and the records build none."""
    import ingest_dependencies
    from ingest_settings import resolve_api_key

    settings = fresh_handler.settings
    ingest_dependencies.build_shared(settings)
    built = [service for service, _ in client_sessions if service != "xray"]
    ingest_dependencies.collaborators(settings, resolve_api_key(settings))
    fresh_handler.idempotent(fresh_handler.process_once)

    assert sorted(built) == ["dynamodb", "dynamodb", "s3", "sqs"]
    assert [service for service, _ in client_sessions if service != "xray"] == built


def test_the_shared_dynamodb_tables_are_written_with_string_expressions_only() -> None:
    """The record threads share the stores' Table resources. boto3's one stateful part behind them, the
    condition builder (placeholder counters reset per request), serves `Attr`/`Key` condition objects
    only: the stores must not use them."""
    import inspect

    from s3kp_core import circuit_dynamodb, results_store_dynamodb

    for module in (results_store_dynamodb, circuit_dynamodb):
        source = inspect.getsource(module)
        assert "boto3.dynamodb.conditions" not in source, module.__name__
        assert "Attr(" not in source, module.__name__
        assert "Key(" not in source, module.__name__
