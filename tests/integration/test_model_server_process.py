"""`s3kp model-server` as a process: start-up failures are one clear line, and its logs never hold the key."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import requests

from tests.conftest import ROOT, free_port, wait_for_http


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s3kp.cli", "model-server", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_port_in_use_is_one_line_and_exit_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = start("--port", str(port))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"s3kp model-server: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_missing_model_files_name_the_remedy(tmp_path: Path) -> None:
    result = start("--port", str(free_port()), env=os.environ | {"S3KP_MODEL_DIR": str(tmp_path)})
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("s3kp model-server: model file")
    assert "s3kp models fetch" in last_line
    assert "Traceback" not in result.stderr


def test_access_log_redacts_the_api_key() -> None:
    """GIVEN a server requiring a key WHEN requests carry it (or a wrong one) THEN its log shows neither."""
    key, wrong = "very-secret-key-1234", "wrong-key-5678"
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "s3kp.cli", "model-server", "--port", str(port), "--api-key", key],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # uvicorn's access log goes to stdout
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", process=server)
        for supplied in (key, wrong):
            requests.post(
                f"{url}/faces/1?api_key={supplied}", data=b"eA==", headers={"Content-Type": "text/plain"}
            )
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert output.count("/faces/1?api_key=*** ") == 2
    assert key not in output
    assert wrong not in output


def test_a_non_loopback_host_needs_allow_remote() -> None:
    """GIVEN --host 0.0.0.0 without --allow-remote THEN the server refuses to start, saying which flag."""
    result = start("--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 2
    assert result.stderr.startswith("s3kp model-server: --host 0.0.0.0 would expose the inference server")
    assert "add --allow-remote" in result.stderr
    assert "Traceback" not in result.stderr
