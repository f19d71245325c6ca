"""The client against a real local HTTP server: pooled connections, real read timeouts."""

from __future__ import annotations

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

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).peers.append(self.client_address)
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
    handler = type("Handler", (_Handler,), {"peers": [], "delay": 0.0})
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
