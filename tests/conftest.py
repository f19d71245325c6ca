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
    """moto in server mode as the offline stack runs it (`s3kp.local.aws_server`: its guards, its SQS lock),
    on a free loopback port; every boto3 client in the process points at it."""
    from s3kp.local.aws_server import LocalAwsServer

    server = LocalAwsServer("127.0.0.1", 0)
    server.start()
    endpoint = server.url
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
def running_model_server(
    extra_env: Mapping[str, str] | None = None, port: int | None = None
) -> Iterator[str]:
    """`s3kp model-server` as a real process on `port` (default: a free one); key MODEL_SERVER_API_KEY."""
    port = port or free_port()
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


# --- IAM proof: every AWS call a handler makes is recorded (tests/iam_proof) --------------------------
# In this process during integration tests, and in every process the session starts (the offline stack's
# Lambda workers), through tests/iam_proof/site/sitecustomize.py on their PYTHONPATH.
# tests/integration/test_iam_proof.py runs last and checks every recorded call against the roles.

IAM_PROOF_MARKER = "iam_proof"
# A test that runs a handler with resources the template cannot produce (e.g. OUTPUT_BUCKET naming another,
# missing bucket) is not the template's deployment: its calls are not judged against the template's roles.
OFF_TEMPLATE_MARKER = "off_template"
_INTEGRATION = ROOT / "tests" / "integration"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{IAM_PROOF_MARKER}: runs after every other test (it evaluates the calls they made)"
    )
    config.addinivalue_line(
        "markers",
        f"{OFF_TEMPLATE_MARKER}(reason): runs handlers with resources the template cannot produce; "
        "the IAM proof does not record its calls",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker(IAM_PROOF_MARKER) is not None)  # stable


@pytest.fixture(scope="session", autouse=True)
def aws_call_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's record of AWS calls made by handler code (one JSON object per line)."""
    from tests.iam_proof import recorder
    from tests.iam_proof.proof import recorder_pollers, recorder_settings

    path = tmp_path_factory.getbasetemp() / "aws-calls.jsonl"
    functions, variables = recorder_settings()
    pollers = recorder_pollers()
    site = ROOT / "tests" / "iam_proof" / "site"
    exported = {
        recorder.LOG_VARIABLE: str(path),
        recorder.FUNCTIONS_VARIABLE: ";".join(f"{name}={directory}" for name, directory in functions.items()),
        recorder.POLLERS_VARIABLE: ";".join(f"{name}={module}" for name, module in pollers.items()),
        recorder.ENVIRONMENT_VARIABLE: ",".join(variables),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    }
    saved = {name: os.environ.get(name) for name in exported}
    os.environ.update(exported)
    recorder.configure(path, functions, variables, pollers)
    try:
        yield path
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Handlers run in this process are recorded in integration tests only, fixtures included (unit tests
    fake AWS with made-up names)."""
    from tests.iam_proof import recorder

    on_template = item.get_closest_marker(OFF_TEMPLATE_MARKER) is None
    recorder.set_enabled(Path(str(item.path)).is_relative_to(_INTEGRATION) and on_template)
    try:
        yield
    finally:
        recorder.set_enabled(False)
