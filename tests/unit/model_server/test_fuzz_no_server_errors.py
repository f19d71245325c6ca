"""Property: whatever schemathesis generates from our OpenAPI schema is answered, never with a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from s3kp.local.host_guard import HostGuard
from s3kp.model_server.app import create_app
from tests.unit.model_server.fake_pipeline import FakePipeline

# schemathesis's ASGI client names the host "testserver": let that one name through the host check.
TESTSERVER = HostGuard(remote=True, names=frozenset({"testserver"}))
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app({"fake/1": FakePipeline()}, guard=TESTSERVER)
)


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_generated_requests_never_get_a_server_error(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"
