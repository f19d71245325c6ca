"""What every local server of ours does around its requests: bind a threaded HTTP server to its port (on
loopback unless told otherwise), serve from a daemon thread or the calling one, stop so that the port is
free for the next run; and, for handlers on `http.server`, answer the `HostGuard`'s 403.

Used by the HTTP API and Function URL bridges, the viewer and the AWS endpoint. The AWS endpoint brings its
own server (werkzeug's, for moto's WSGI app) and applies the guard in WSGI (`aws_server.GuardedApp`), where
werkzeug writes the answer; the inference server is uvicorn's and applies it in ASGI (`host_check`).

The port is bound when the server is built, so a port in use fails there, before any thread starts, with
the bind's own error (`OSError` EADDRINUSE; werkzeug's server says so on stderr and exits). The commands
check their ports first and say which process holds them (`preflight.check_ports`, `s3kp view`).
"""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

from s3kp.local.host_guard import REFUSED_STATUS, HostGuard

# How often a serving loop looks for `stop()`: the longest a stop waits for it.
POLL_SECONDS = 0.1


class GuardedHTTPServer(ThreadingHTTPServer):
    """`ThreadingHTTPServer` with the guard its handlers apply; connection threads never hold up an exit."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[GuardedHandler], guard: HostGuard) -> None:
        self.guard = guard
        super().__init__(address, handler)


class GuardedHandler(BaseHTTPRequestHandler):
    """A request handler of a `GuardedHTTPServer`: it calls `guard_refuses()` before its own answer, once
    its front door has done what comes first (the bridges: reading the body, within their size limit)."""

    def guard_refuses(self) -> bool:
        """True when the request is not this machine's (`HostGuard.refusal_of_all`: every `Host` and
        `Origin` it carries), after sending the 403 (`send_refusal`)."""
        guard = cast(GuardedHTTPServer, self.server).guard
        headers = self.headers
        refusal = guard.refusal_of_all(headers.get_all("Host", []), headers.get_all("Origin", []))
        if refusal is not None:
            self.send_refusal(refusal)
        return refusal is not None

    def send_refusal(self, message: str) -> None:
        """The guard's 403 as `{"message": ...}`; a server whose answers have another shape overrides it."""
        payload = json.dumps({"message": message}).encode()
        self.send_response(REFUSED_STATUS)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def guarded_http_server(
    host: str, port: int, handler: type[GuardedHandler], guard: HostGuard | None = None
) -> GuardedHTTPServer:
    """A threaded HTTP server bound to `host:port` (0: a free port), whose handlers apply `guard`
    (default: loopback names only, `HostGuard()`)."""
    return GuardedHTTPServer((host, port), handler, guard or HostGuard())


class LoopbackServer:
    """A bound server, served from a daemon thread (`start`) or the calling thread (`serve_forever`);
    `stop()` ends either and closes the socket, so that nothing answers on the port any more."""

    def __init__(
        self, server: socketserver.TCPServer, *, thread_name: str, url_host: str | None = None
    ) -> None:
        """`url_host` names the server in `url` (default: the address it is bound to)."""
        self._server = server
        self._thread_name = thread_name
        self._url_host = url_host if url_host is not None else str(server.server_address[0])
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._url_host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_SECONDS},
            name=self._thread_name,
            daemon=True,
        )
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (a process's own server), then close the socket."""
        try:
            self._server.serve_forever(poll_interval=POLL_SECONDS)
        finally:
            self._server.server_close()

    def stop(self) -> None:
        """Stop accepting requests, close the socket and join the serving thread (idempotent)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
