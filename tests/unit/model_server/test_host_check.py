"""The inference server app answers only the hosts its guard allows (the rule is s3kp.local.host_guard's)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient

from s3kp.local.host_guard import HostGuard
from s3kp.model_server.app import create_app
from s3kp.model_server.host_check import HostCheck
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


@pytest.mark.parametrize(
    "headers",
    [
        [(b"host", b"localhost:9001"), (b"host", b"attacker.example")],
        [(b"host", b"attacker.example"), (b"host", b"localhost:9001")],
        [
            (b"host", b"localhost:9001"),
            (b"origin", b"https://attacker.example"),
            (b"origin", b"http://localhost"),
        ],
    ],
)
def test_a_foreign_host_or_origin_beside_a_loopback_one_is_refused(
    headers: list[tuple[bytes, bytes]],
) -> None:
    """GIVEN a request repeating `Host` or `Origin` (no browser does; uvicorn passes both on) THEN it is
    refused when any value is foreign, whichever comes first."""
    assert _status(HostCheck(_ok, guard=HostGuard()), headers) == 403
    assert _status(HostCheck(_ok, guard=HostGuard()), [(b"host", b"localhost:9001")]) == 200


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _status(app: HostCheck, headers: list[tuple[bytes, bytes]]) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "headers": headers}, receive, send))
    return int(sent[0]["status"])
