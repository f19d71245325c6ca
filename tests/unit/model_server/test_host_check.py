"""The inference server app answers only the hosts its guard allows (the rule is s3kp.local.host_guard's)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from s3kp.local.host_guard import HostGuard
from s3kp.model_server.app import create_app
from tests.unit.model_server.fake_pipeline import FakePipeline


def test_by_default_only_loopback_names_are_served() -> None:
    app = create_app({"fake/1": FakePipeline()})
    assert TestClient(app, base_url="http://localhost:9001").get("/health").status_code == 200
    refused = TestClient(app).get("/health")  # TestClient's own Host: "testserver"
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/json"


def test_bound_with_allow_remote_it_is_served_by_address_not_by_any_name() -> None:
    """`s3kp model-server --host 0.0.0.0 --allow-remote`: clients on the network name its address."""
    app = create_app({"fake/1": FakePipeline()}, guard=HostGuard.for_bind("0.0.0.0", allow_remote=True))
    assert TestClient(app, base_url="http://192.168.1.5:9001").get("/health").status_code == 200
    assert TestClient(app, base_url="http://attacker.example:9001").get("/health").status_code == 403
