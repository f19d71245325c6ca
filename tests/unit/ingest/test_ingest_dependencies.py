"""The ingest function's AWS clients share one boto3 session per container.

A botocore loader caches the endpoint rules and service models it has read; clients of different sessions
each read them again, which costs cold-start time. The loader a client was built with is botocore's
`_loader` attribute: the one observable trace of the session it came from.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

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
def fresh_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
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


def test_the_idempotency_layer_and_the_first_invocations_clients_share_one_botocore_loader(
    fresh_handler: ModuleType,
) -> None:
    """GIVEN the handler imported at a cold start
    WHEN the first invocation builds the idempotency layer and its collaborators (S3 client, results table)
    THEN every client was built by the same botocore loader, so no service model is read twice."""
    import ingest_dependencies
    from ingest_settings import resolve_api_key

    settings = fresh_handler.settings
    ingest_dependencies.collaborators(settings, resolve_api_key(settings))

    idempotency_client = fresh_handler.persistence_layer().client
    s3_client = ingest_dependencies.s3_client()
    results_table_client = ingest_dependencies.results_store(settings)._table.meta.client
    assert idempotency_client._loader is s3_client._loader is results_table_client._loader


def test_the_import_builds_no_aws_client(fresh_handler: ModuleType) -> None:
    """The idempotency layer's DynamoDB client is the first event's to build, like every other client."""
    import ingest_dependencies

    assert fresh_handler.persistence_layer.cache_info().currsize == 0
    assert ingest_dependencies.aws_session.cache_info().currsize == 0
