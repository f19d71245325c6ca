"""`s3kp model-server`: bind the port, load the models once, serve with uvicorn (one process).

One process on purpose: the models are loaded once and shared by a bounded pool of inference threads
(TFLite releases the GIL while it runs), instead of a copy of every model per worker process.
The port is bound before the models load, so a port in use fails at once with one clear line.
"""

from __future__ import annotations

import logging
import os
import socket
import sys

import uvicorn
from PIL import Image
from s3kp_core import redact
from s3kp_models.model_files import ModelFilesMissing
from s3kp_models.pipelines.registry import load_pipelines
from s3kp_models.request_decoding import MAX_IMAGE_PIXELS

from s3kp.local.host_guard import HostGuard
from s3kp.local.ports import is_loopback
from s3kp.model_server.access_log import AccessLog, take_over_uvicorn_access_log
from s3kp.model_server.allocator import keep_freed_memory
from s3kp.model_server.app import create_app
from s3kp.paths import model_dir

PROGRAM = "s3kp model-server"


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 9001,
    api_key: str | None = None,
    workers: int | None = None,
    allow_remote: bool = False,
    allow_private_image_urls: bool = False,
) -> int:
    """Run until interrupted; returns the process exit code. `workers` is the number of inference threads.

    A non-loopback `host` needs `allow_remote`; `allow_private_image_urls` lets `image=<url>` reach
    loopback and private hosts (off by default: see url_fetch.py)."""
    if not is_loopback(host) and not allow_remote:
        print(
            f"{PROGRAM}: --host {host} would expose the inference server (and its image=<url> fetcher) to "
            "the network: add --allow-remote if that is really what you want",
            file=sys.stderr,
        )
        return 2
    threads = max(1, workers or os.cpu_count() or 1)
    keep_freed_memory()  # before the models load: every request reuses what the previous one freed
    try:
        listener = bind(host, port)
    except OSError as error:
        print(f"{PROGRAM}: cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr)
        return 1
    with listener:
        try:
            pipelines = load_pipelines(model_dir())
        except ModelFilesMissing as error:
            print(f"{PROGRAM}: {error}", file=sys.stderr)
            return 1
        # Pillow's own bomb guard, on purpose: it warns above this and refuses twice this many pixels.
        Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
        if api_key:
            redact.register_secret(api_key)
        app = create_app(
            pipelines,
            api_key=api_key,
            threads=threads,
            allow_private_image_urls=allow_private_image_urls,
            guard=HostGuard.for_bind(host, allow_remote=allow_remote),
        )
        # loop="auto" and http="auto" (the defaults) pick uvloop and httptools, both installed with the
        # offline stack: each saves a share of every request's round trip (docs/model-server.md#overhead).
        # The access log line is queued after the response is sent and written by a thread (access_log.py).
        config = uvicorn.Config(AccessLog(app), log_level="info", server_header=False)
        server = uvicorn.Server(config)
        _redact_logs()
        access_log_writer = take_over_uvicorn_access_log()
        access = "API key required" if api_key else "any API key accepted"
        if allow_private_image_urls:
            access += ", image URLs may name private hosts"
        models = ", ".join(sorted(pipelines))
        print(
            f"{PROGRAM}: {models} on http://{host}:{port} ({threads} inference threads, {access})",
            file=sys.stderr,
            flush=True,
        )
        try:
            server.run(sockets=[listener])
        finally:
            access_log_writer.stop()  # writes the lines still queued
    return 0


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when it sees it,
    # and without it every response waits ~40 ms for the client's delayed ACK (Nagle).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart while in TIME_WAIT
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    return listener


def _redact_logs() -> None:
    """uvicorn's access log prints the query string, where the API key travels."""
    ours = logging.getLogger("s3kp")
    if not ours.handlers:
        ours.addHandler(logging.StreamHandler(sys.stderr))
        ours.propagate = False
    for name in ("uvicorn", "s3kp"):
        redact.install(logging.getLogger(name))
    for handler in logging.getLogger("uvicorn.access").handlers:
        handler.addFilter(RedactAccessArgs())


class RedactAccessArgs(logging.Filter):
    """Redacts each argument in place: uvicorn's AccessFormatter unpacks `record.args` itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact.redact(a) if isinstance(a, str) else a for a in record.args)
        return True
