"""The client against a real local HTTP server: pooled connections, real read timeouts."""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest
from s3kp_core.errors import TransientError
from s3kp_core.inference import InferenceClient

from tests.unit.s3kp_core.inference.builders import (
    JPEG,
    OK_BODY,
    assert_key_hidden,
    settings,
)

# --- against a real local HTTP server ----------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable
    delay = 0.0
    peers: list[tuple[str, int]] = []
    together: threading.Barrier | None = None  # answer only once this many requests are in flight

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).peers.append(self.client_address)
        if type(self).together is not None:
            type(self).together.wait(timeout=30)
        time.sleep(type(self).delay)
        payload = json.dumps(OK_BODY).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client may have timed out
            self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"peers": [], "delay": 0.0, "together": None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_one_pooled_connection_serves_consecutive_predictions(
    local_server: tuple[str, type[_Handler]],
) -> None:
    url, handler = local_server
    inference = InferenceClient(settings(base_url=url))

    for _ in range(3):
        assert len(inference.predict(JPEG).predictions) == 1
    inference.close()

    assert len(handler.peers) == 3
    assert len(set(handler.peers)) == 1  # the same client port: one kept-alive connection


def test_as_many_threads_as_connections_reuse_their_connections(
    local_server: tuple[str, type[_Handler]],
) -> None:
    """GIVEN as many threads as the client's `max_connections` (the ingest function's RECORD_CONCURRENCY)
    calling at once, twice WHEN the server answers only once all of them are in flight THEN the second
    round reuses the first round's connections: the pool keeps every one (with urllib3's pool of 4, the
    extra ones were discarded and opened again each round)."""
    url, handler = local_server
    inference = InferenceClient(settings(base_url=url))
    threads = inference.settings.max_connections
    assert threads > 4
    handler.together = threading.Barrier(threads)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for _ in range(2):
            answers = list(pool.map(lambda _: inference.predict(JPEG), range(threads)))
            assert all(len(answer.predictions) == 1 for answer in answers)
    inference.close()

    assert len(handler.peers) == 2 * threads
    assert len(set(handler.peers)) == threads


def test_a_real_read_timeout_is_retried_then_reported(local_server: tuple[str, type[_Handler]]) -> None:
    url, handler = local_server
    handler.delay = 1.0
    inference = InferenceClient(
        settings(base_url=url, read_timeout=0.2, max_attempts=2), sleep=lambda _: None
    )

    with pytest.raises(TransientError) as raised:
        inference.predict(JPEG)

    assert raised.value.message == "inference endpoint did not answer in time (2 attempts)"
    assert raised.value.detail is not None
    assert "timed out (ReadTimeout" in raised.value.detail
    assert_key_hidden(raised.value)
