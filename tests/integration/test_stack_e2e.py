"""`s3kp up` driven as a user would: start it, upload with the `aws` CLI, query the HTTP API, Ctrl-C.

The stack runs as a real process tree on free loopback ports (moto server, the inference server, Lambda
workers); the test only uses what `s3kp up` prints and public interfaces (the `aws` CLI, HTTP).
"""

from __future__ import annotations

import io
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from PIL import Image
from s3kp_core.results import result_id_for

from s3kp import samples
from s3kp.local.ports import port_is_free
from tests.conftest import ROOT, free_port

AWS_CLI = Path(sys.executable).with_name("aws")
READY_TIMEOUT = 240.0  # a cold machine: models load while moto, the resources and the workers start
RESULT_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    output: list[str] = field(default_factory=list)
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    def read_until(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"`s3kp up` never printed {pattern!r}; it printed:\n" + "".join(self.output))

    def printed(self, pattern: str) -> re.Match[str]:
        match = re.search(pattern, "".join(self.output), re.MULTILINE)
        assert match, f"`s3kp up` did not print {pattern!r}"
        return match

    def exports(self) -> dict[str, str]:
        """The `export NAME=value` lines it tells the user to paste into a shell."""
        return dict(re.findall(r"^\s*export (\w+)=(\S+)$", "".join(self.output), re.MULTILINE))


def start_stack(tmp_path: Path, *extra: str) -> RunningStack:
    ports = {"aws": free_port(), "inference": free_port(), "api": free_port()}
    command = [
        sys.executable, "-m", "s3kp.cli", "up",
        "--aws-port", str(ports["aws"]), "--inference-port", str(ports["inference"]),
        "--api-port", str(ports["api"]), "--log-dir", str(tmp_path / "logs"), *extra,
    ]  # fmt: skip
    # Its own session, like a shell job: the test's Ctrl-C goes to that process group only.
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    stack = RunningStack(process, ports)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stack.output.append(line)
            stack.lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return stack


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, read from /proc (children of every thread)."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = {int(child) for child in (task / "children").read_text().split()}
            except OSError:
                continue
            pending.extend(children - found)
            found |= children
    return found


def still_alive(pids: set[int], grace: float) -> list[int]:
    """The processes still running after `grace` seconds. Helpers such as multiprocessing's resource
    tracker exit when they read EOF from the stopped parent: a few milliseconds after it, not before."""
    deadline = time.monotonic() + grace
    while True:
        running = sorted(pid for pid in pids if alive(pid))
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RunningStack]:
    running = start_stack(tmp_path)
    yield running
    if running.process.poll() is None:  # the test failed before its own Ctrl-C
        os.killpg(running.process.pid, signal.SIGKILL)
        running.process.wait()


@pytest.mark.slow
def test_upload_with_the_aws_cli_then_query_the_api_then_ctrl_c_leaves_nothing_behind(
    stack: RunningStack, tmp_path: Path
) -> None:
    """GIVEN `s3kp up` on free ports
    WHEN a photo is uploaded with the `aws` CLI to the printed bucket, using the printed exports
    THEN the HTTP API serves its result, with a presigned link to an annotated JPEG of the photo's size,
    AND Ctrl-C stops the whole process tree and frees every port."""
    stack.read_until(r"^Ready\.", READY_TIMEOUT)
    bucket = stack.printed(r"^\s*bucket\s+(\S+)$").group(1)
    api_url = stack.printed(r"^\s*HTTP API\s+(http://\S+)").group(1)
    cp_command = shlex.split(stack.printed(r"^\s*(aws --endpoint-url .* s3 cp .*)$").group(1))
    assert f"http://127.0.0.1:{stack.ports['aws']}" in cp_command

    photo = tmp_path / "astronaut photo.jpg"
    photo.write_bytes(samples.sample_jpeg("astronaut"))
    key = "incoming/e2e/astronaut photo.jpg"
    env = (
        os.environ
        | stack.exports()
        | {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    )
    upload = [str(AWS_CLI), *cp_command[1:-2], str(photo), f"s3://{bucket}/{key}"]
    subprocess.run(upload, env=env, check=True, capture_output=True, timeout=60)

    result_url = f"{api_url}/results/{result_id_for(bucket, key)}"
    result = poll_json(result_url, RESULT_TIMEOUT)
    assert result["status"] == "succeeded", result
    assert result["source"]["key"] == key
    assert result["detections"] >= 1, "the astronaut's face is found"

    redirect = requests.get(f"{result_url}/annotated", allow_redirects=False, timeout=30)
    assert redirect.status_code == 302
    annotated = requests.get(redirect.headers["Location"], timeout=30)
    assert annotated.status_code == 200
    image = Image.open(io.BytesIO(annotated.content))
    assert image.format == "JPEG"
    assert image.size == samples.astronaut().size

    processes = descendants(stack.process.pid)
    assert len(processes) >= 4, "moto, the inference server and the Lambda workers are child processes"
    os.killpg(stack.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    assert stack.process.wait(STOP_TIMEOUT) == 130  # the shell's status for a job ended by Ctrl-C
    assert still_alive(processes, grace=5.0) == []
    assert all(port_is_free("127.0.0.1", port) for port in stack.ports.values())


def poll_json(url: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = requests.get(url, timeout=30)
        if response.status_code == 200:
            return dict(response.json())
        assert response.status_code == 404, response.text
        time.sleep(0.25)
    raise AssertionError(f"{url} had no result within {timeout} s")


def run_up(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s3kp.cli", "up", "--log-dir", str(tmp_path / "logs"), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_port_in_use_fails_at_once_with_one_clear_line(tmp_path: Path) -> None:
    """GIVEN something listening on the AWS port WHEN `s3kp up` starts THEN it exits 1 naming the port,
    the process holding it and the option, without a traceback and without starting anything."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        completed = run_up(
            tmp_path,
            "--aws-port", str(busy), "--inference-port", str(free_port()), "--api-port", str(free_port()),
        )  # fmt: skip

    assert completed.returncode == 1
    assert f"port {busy} (AWS endpoint) already in use" in completed.stderr
    assert f"held by pid {os.getpid()} (" in completed.stderr, "it names the process holding the port"
    assert "--aws-port" in completed.stderr
    assert "Traceback" not in completed.stderr + completed.stdout
    assert not (tmp_path / "logs" / "moto.log").exists(), "nothing was started"


def test_a_non_loopback_host_needs_an_explicit_flag(tmp_path: Path) -> None:
    completed = run_up(tmp_path, "--host", "0.0.0.0", "--aws-port", str(free_port()))
    assert completed.returncode == 1
    assert "--allow-remote" in completed.stderr
    assert "Traceback" not in completed.stderr
