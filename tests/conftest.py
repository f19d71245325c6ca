"""Fixtures shared by every suite: a real moto server (the local AWS) and the local inference server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float = 90.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    """moto in server mode on a free loopback port; every boto3 client in the process points at it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
    )
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_AWS_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)


@pytest.fixture
def fresh_aws(aws_endpoint: str) -> str:
    """The moto server with all state wiped: each test starts from an empty account."""
    requests.post(f"{aws_endpoint}/moto-api/reset", timeout=5).raise_for_status()
    return aws_endpoint


MODEL_SERVER_API_KEY = "test-server-key"


@contextmanager
def running_model_server(extra_env: Mapping[str, str] | None = None) -> Iterator[str]:
    """`s3kp model-server` as a real process on a free port, requiring MODEL_SERVER_API_KEY."""
    port = free_port()
    command = [sys.executable, "-m", "s3kp.cli", "model-server", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--api-key", MODEL_SERVER_API_KEY], cwd=ROOT, env=os.environ | dict(extra_env or {})
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", process=process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def model_server_url() -> Iterator[str]:
    """The project's inference server, shared by the whole session."""
    with running_model_server() as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_powertools_parameter_providers() -> Iterator[None]:
    """Powertools Parameters keeps process-wide default providers, each holding a boto3 client bound to
    the endpoint of the moment it was made; a provider left by one test must not serve the next."""
    yield
    from aws_lambda_powertools.utilities.parameters import base

    base.DEFAULT_PROVIDERS.clear()
