"""The local servers the benchmarks run against, started on free loopback ports and always stopped.

Child processes go through the offline stack's `ChildProcess` (own process group, exits with its parent,
output in `.cache/logs/bench-<name>.log`). moto can also run in this process (`in_process=True`) where a
benchmark wants the in-process server's behaviour. dynalite, a DynamoDB-only server that answers a Query
from a real sorted index (moto walks the whole table), is installed on demand with npm.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from s3kp.local.processes import ChildProcess
from s3kp.paths import cache_dir

ROOT = Path(__file__).resolve().parents[1]
DYNALITE_VERSION = "4.0.0"
START_TIMEOUT = 120.0  # the model server loads its models before /health answers


@dataclass(frozen=True)
class LocalServer:
    url: str
    pid: int | None  # None when the server runs in this process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def subprocess_server(
    name: str,
    command: Callable[[int], Sequence[str]],
    health_path: str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> Iterator[LocalServer]:
    """Run `command(port)` on a free port; yield it once `{url}{health_path}` answers 200."""
    port = free_port()
    child = ChildProcess(name, command(port), cache_dir() / "logs" / f"bench-{name}.log", env=env)
    child.start()
    url = f"http://127.0.0.1:{port}"
    try:
        child.wait_healthy(f"{url}{health_path}", timeout)
        assert child.pid is not None
        yield LocalServer(url, child.pid)
    finally:
        child.stop()


@contextmanager
def moto_server(*, in_process: bool = False) -> Iterator[LocalServer]:
    """moto server as the offline stack runs it (`s3kp.local.aws_server`), in its own process (its own GIL)
    unless `in_process`."""
    if not in_process:
        command = [sys.executable, "-m", "s3kp.local.aws_server"]
        with subprocess_server("moto", lambda port: [*command, "-p", str(port)], "/moto-api/") as server:
            yield server
        return
    from s3kp.local.aws_server import LocalAwsServer

    threaded = LocalAwsServer("127.0.0.1", 0)
    threaded.start()
    try:
        yield LocalServer(threaded.url, pid=None)
    finally:
        threaded.stop()


@contextmanager
def model_server(api_key: str) -> Iterator[LocalServer]:
    """`s3kp model-server` requiring `api_key`; yields once its models are loaded."""
    command = [sys.executable, "-m", "s3kp.cli", "model-server"]
    # The key travels in the environment, not argv, so `ps` does not show it.
    environment = os.environ | {"S3KP_MODEL_SERVER_API_KEY": api_key}
    with subprocess_server(
        "model-server", lambda port: [*command, "--port", str(port)], "/health", env=environment
    ) as server:
        yield server


@contextmanager
def aws_environment(endpoint: str, **extra: str) -> Iterator[None]:
    """Point this process's boto3 at `endpoint` with dummy credentials; restore the whole environment
    afterwards (handlers measured inside add their own variables)."""
    saved = dict(os.environ)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        **extra,
    )
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def latency_proxy(upstream: str, seconds: float) -> Iterator[LocalServer]:
    """A proxy in front of `upstream` whose every POST is answered `seconds` after it arrived (later only
    if the upstream itself takes longer): a remote endpoint's latency, whatever the local server's own
    time and however many requests are in flight (a hosted API scales out; a local server on shared cores
    would queue them). In this process, on a free port; `s3kp.local.fault_proxy` injects faults instead."""
    import http.server
    import threading
    import time

    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=32))

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            arrived = time.monotonic()
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            answer = session.post(
                upstream + self.path,
                data=body,
                headers={"Content-Type": self.headers.get("Content-Type", "")},
                timeout=120,
            )
            time.sleep(max(0.0, arrived + seconds - time.monotonic()))
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="latency-proxy", daemon=True)
    thread.start()
    try:
        yield LocalServer(f"http://127.0.0.1:{server.server_address[1]}", pid=None)
    finally:
        server.shutdown()
        server.server_close()
        session.close()


def dynalite_command() -> list[str] | None:
    """`node …/dynalite/cli.js`, installing dynalite into the cache first if needed.

    None (and a line on stderr saying why) when node is missing or the install fails: the caller skips
    its dynalite figures rather than the whole benchmark.
    """
    prefix = cache_dir() / "dynalite"
    cli = prefix / "node_modules" / "dynalite" / "cli.js"
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or (npm is None and not cli.exists()):
        print("[bench] node/npm not found: skipping the dynalite figures", file=sys.stderr, flush=True)
        return None
    if not cli.exists():
        assert npm is not None
        package = f"dynalite@{DYNALITE_VERSION}"
        print(f"[bench] installing {package} into {prefix} …", file=sys.stderr, flush=True)
        installed = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--save-exact", package],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        if installed.returncode != 0 or not cli.exists():
            print(f"[bench] npm install {package} failed: skipping the dynalite figures", file=sys.stderr)
            return None
        print(f"[bench] installed {package}", file=sys.stderr, flush=True)
    return [node, str(cli)]


@contextmanager
def dynalite_server(command: Sequence[str]) -> Iterator[LocalServer]:
    """dynalite in memory (no `--path`); tables are ACTIVE at once instead of after 500 ms."""
    with subprocess_server(
        "dynalite",
        lambda port: [*command, "--host", "127.0.0.1", "--port", str(port), "--createTableMs", "0"],
        "/",
    ) as server:
        yield server
