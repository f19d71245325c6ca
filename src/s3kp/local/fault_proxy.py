"""A fault-injecting HTTP proxy in front of an inference server, for soak and fault runs.

Each POST gets one outcome drawn from a seeded random mix: forwarded as is, forwarded after a delay (a
slow answer), or a transient fault the client must survive — 429 with `Retry-After`, 503, a connection
reset (RST, no answer), or a 200 that breaks the contract (an HTML page, or JSON without `predictions`,
as a misbehaving gateway sends). The proxy counts what it did, per outcome.

Written on the standard library's `ThreadingHTTPServer`: no maintained proxy library injects
application-level faults (status codes, resets, bodies) from a seeded mix, and this is ~100 lines.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

FORWARD = "pass"
SLOW = "slow"
THROTTLED = "429"
UNAVAILABLE = "503"
RESET = "reset"
NOT_JSON = "200-not-json"
NO_PREDICTIONS = "200-no-predictions"
TRANSIENT_FAULTS = (THROTTLED, UNAVAILABLE, RESET, NOT_JSON, NO_PREDICTIONS)


@dataclass(frozen=True)
class FaultMix:
    """`fault_rate` of requests get a transient fault (split evenly between the kinds); `slow_rate` of
    the others are forwarded after `slow_seconds`."""

    fault_rate: float = 0.30
    slow_rate: float = 0.08
    slow_seconds: float = 2.0
    retry_after_seconds: int = 1
    seed: int = 8

    def __post_init__(self) -> None:
        if not 0 <= self.fault_rate <= 1 or not 0 <= self.slow_rate <= 1:
            raise ValueError("fault_rate and slow_rate are fractions between 0 and 1")


class FaultProxy:
    """Listens on `host:port` (0: a free port) and forwards to `upstream` unless the mix says otherwise."""

    def __init__(self, upstream: str, mix: FaultMix, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.mix = mix
        self.outcomes: Counter[str] = Counter()
        self._random = random.Random(mix.seed)
        self._lock = threading.Lock()
        self._upstream = requests.Session()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outcome = proxy._draw()
                if outcome == RESET:
                    # SO_LINGER 0: close() sends an RST instead of a FIN, as a crashing gateway would.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if outcome == THROTTLED:
                    headers = {"Retry-After": str(proxy.mix.retry_after_seconds)}
                    self._reply(429, b'{"message": "rate limited (injected)"}', headers)
                elif outcome == UNAVAILABLE:
                    self._reply(503, b'{"message": "unavailable (injected)"}')
                elif outcome == NOT_JSON:
                    self._reply(200, b"<html><body>502 Bad Gateway (injected)</body></html>", {}, "text/html")
                elif outcome == NO_PREDICTIONS:
                    self._reply(200, json.dumps({"message": "ok (injected)"}).encode())
                else:
                    if outcome == SLOW:
                        time.sleep(proxy.mix.slow_seconds)
                    self._forward(body)

            def _forward(self, body: bytes) -> None:
                try:
                    upstream = proxy._upstream.post(
                        proxy.upstream + self.path,
                        data=body,
                        headers={"Content-Type": self.headers.get("Content-Type", "")},
                        timeout=120,
                    )
                except requests.RequestException:
                    self._reply(502, b'{"message": "upstream unreachable"}')
                    return
                content_type = upstream.headers.get("Content-Type", "application/json")
                self._reply(upstream.status_code, upstream.content, {}, content_type)

            def _reply(
                self,
                status: int,
                payload: bytes,
                headers: dict[str, str] | None = None,
                content_type: str = "application/json",
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (its own timeout)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever for a loop that never ran
            self._server.shutdown()
        self._server.server_close()
        self._upstream.close()

    def requests_seen(self) -> int:
        with self._lock:
            return sum(self.outcomes.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.outcomes)

    def _draw(self) -> str:
        with self._lock:
            roll = self._random.random()
            if roll < self.mix.fault_rate:
                outcome = self._random.choice(TRANSIENT_FAULTS)
            elif self._random.random() < self.mix.slow_rate:
                outcome = SLOW
            else:
                outcome = FORWARD
            self.outcomes[outcome] += 1
            return outcome
