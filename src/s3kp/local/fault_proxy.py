"""A fault-injecting HTTP proxy in front of an inference server, for soak and fault runs.

Each POST gets one outcome drawn from a seeded random mix: forwarded as is, forwarded after a delay (a
slow answer), or a fault the client must survive — 429 with `Retry-After`, 503, a connection reset (RST,
no answer), a 200 that breaks the contract (an HTML page, or JSON without `predictions`, as a misbehaving
gateway sends), or a 401 (as after a key was rotated). The proxy counts what it did, per outcome.

The mix can change while it runs (`set_mix`: a storm of 429s, a phase of 401s), and the endpoint can go
away altogether (`go_down`: nothing listens on its port, so clients get a real "connection refused";
`come_back`: it listens on the same port again).

Written on the standard library's `ThreadingHTTPServer`: no maintained proxy library injects
application-level faults (status codes, resets, bodies) from a seeded mix, and this is ~100 lines.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

FORWARD = "pass"
SLOW = "slow"
THROTTLED = "429"
UNAVAILABLE = "503"
RESET = "reset"
NOT_JSON = "200-not-json"
NO_PREDICTIONS = "200-no-predictions"
UNAUTHORIZED = "401"
TRANSIENT_FAULTS = (THROTTLED, UNAVAILABLE, RESET, NOT_JSON, NO_PREDICTIONS)
FAULTS = (*TRANSIENT_FAULTS, UNAUTHORIZED)


@dataclass(frozen=True)
class FaultMix:
    """`fault_rate` of requests get one of `faults` (split evenly between them); `slow_rate` of the
    others are forwarded after `slow_seconds`."""

    fault_rate: float = 0.30
    slow_rate: float = 0.08
    slow_seconds: float = 2.0
    retry_after_seconds: int = 1
    seed: int = 8
    faults: tuple[str, ...] = TRANSIENT_FAULTS

    def __post_init__(self) -> None:
        if not 0 <= self.fault_rate <= 1 or not 0 <= self.slow_rate <= 1:
            raise ValueError("fault_rate and slow_rate are fractions between 0 and 1")
        if not self.faults or not set(self.faults) <= set(FAULTS):
            raise ValueError(f"faults must be some of {FAULTS}, got {self.faults}")


class FaultProxy:
    """Listens on `host:port` (0: a free port) and forwards to `upstream` unless the mix says otherwise."""

    def __init__(self, upstream: str, mix: FaultMix, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.mix = mix
        self.outcomes: Counter[str] = Counter()
        self._times: list[float] = []  # when each request came (epoch seconds), for rates over time
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
                elif outcome == UNAUTHORIZED:
                    self._reply(401, b'{"message": "Unauthorized api_key (injected)"}')
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

        self._handler = Handler
        self._server = _Server((host, port), Handler)
        self.host = host
        self.port = int(self._server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._placeholder: socket.socket | None = None  # holds the port while the endpoint is down

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None
        else:
            self._close_server()
        self._upstream.close()

    @property
    def is_down(self) -> bool:
        return self._placeholder is not None

    def go_down(self) -> None:
        """Stop listening: from now on a connection to the port is refused (the kernel answers RST).

        The port stays bound, without a listener, so no other socket takes it before `come_back`; the
        connections already open (idle keep-alives, requests in progress) are cut, as a dying host would.
        """
        if self._placeholder is not None:
            return
        self._close_server()  # the listening socket first: nothing new is accepted meanwhile
        placeholder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            placeholder.bind((self.host, self.port))
        except OSError:
            placeholder.close()
            raise
        self._placeholder = placeholder
        self._server.cut_connections()

    def come_back(self) -> None:
        """Listen on the same port again, with the current mix."""
        if self._placeholder is None:
            return
        self._placeholder.close()
        self._placeholder = None
        self._server = _Server((self.host, self.port), self._handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()

    def set_mix(self, mix: FaultMix) -> None:
        """Draw from `mix` from now on (its own seeded sequence)."""
        with self._lock:
            self.mix = mix
            self._random = random.Random(mix.seed)

    def _close_server(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever for a loop that never ran
            self._server.shutdown()
        self._server.server_close()

    def requests_seen(self) -> int:
        with self._lock:
            return sum(self.outcomes.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.outcomes)

    def request_times(self) -> list[float]:
        with self._lock:
            return list(self._times)

    def _draw(self) -> str:
        with self._lock:
            roll = self._random.random()
            if roll < self.mix.fault_rate:
                outcome = self._random.choice(self.mix.faults)
            elif self._random.random() < self.mix.slow_rate:
                outcome = SLOW
            else:
                outcome = FORWARD
            self.outcomes[outcome] += 1
            self._times.append(time.time())
            return outcome


class _Server(ThreadingHTTPServer):
    """Keeps its open connections, so that `go_down` can cut them (server_close() leaves them open)."""

    daemon_threads = True
    block_on_close = False  # server_close() must not wait for keep-alive connections to end

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                connection.shutdown(socket.SHUT_RDWR)
