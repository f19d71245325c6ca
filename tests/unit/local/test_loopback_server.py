"""The plumbing every local server shares (s3kp.local.loopback_server).

Specification: a guarded server is bound to its port when it is built (0: a free one) and answers there
once started, from a daemon thread; its handlers refuse a request that is not this machine's (a foreign
`Host` or `Origin`, in any of its values) with the guard's 403 before anything else; `stop()` ends the
thread and frees the port for the next server, and may be called again; a port already in use fails when
the server is built, with the bind's own error, and leaves the server holding it untouched.
"""

from __future__ import annotations

import errno
import http.client
import json
import threading
from collections.abc import Iterator

import pytest

from s3kp.local.host_guard import REFUSED_MESSAGE, HostGuard
from s3kp.local.loopback_server import GuardedHandler, LoopbackServer, guarded_http_server
from s3kp.local.ports import port_is_free


class Hello(GuardedHandler):
    """What a server's own handler does: the guard first, then its answer."""

    protocol_version = "HTTP/1.1"
    answered: list[str] = []

    def do_GET(self) -> None:
        if self.guard_refuses():
            return
        Hello.answered.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    Hello.answered = []
    running = LoopbackServer(guarded_http_server("127.0.0.1", 0, Hello), thread_name="test-loopback")
    running.start()
    yield running
    running.stop()


def get(port: int, headers: list[tuple[str, str]]) -> tuple[int, bytes]:
    """A GET sent with exactly `headers` (Host included, repeated if the test says so)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.putrequest("GET", "/", skip_host=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_it_serves_on_its_loopback_port_from_a_daemon_thread(server: LoopbackServer) -> None:
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert get(server.port, [("Host", f"127.0.0.1:{server.port}")]) == (200, b"hello")
    assert get(server.port, [("Host", "localhost")]) == (200, b"hello")
    (thread,) = [thread for thread in threading.enumerate() if thread.name == "test-loopback"]
    assert thread.daemon, "a server left running never holds up the process's exit"


@pytest.mark.parametrize(
    "headers",
    [
        [("Host", "attacker.example")],
        [],  # no Host at all
        [("Host", "127.0.0.1"), ("Origin", "https://attacker.example")],
        [("Host", "127.0.0.1"), ("Host", "attacker.example")],
        [("Host", "attacker.example"), ("Host", "127.0.0.1")],
    ],
)
def test_a_request_that_is_not_this_machines_gets_the_guards_403(
    server: LoopbackServer, headers: list[tuple[str, str]]
) -> None:
    status, body = get(server.port, headers)

    assert (status, json.loads(body)) == (403, {"message": REFUSED_MESSAGE})
    assert Hello.answered == [], "the handler's own answer never ran"


def test_a_page_of_this_machine_is_served(server: LoopbackServer) -> None:
    assert get(server.port, [("Host", "127.0.0.1"), ("Origin", "http://localhost:8080")])[0] == 200


def test_the_guard_given_decides_which_names_are_served() -> None:
    """`--allow-remote`: a server bound off loopback on purpose is reached by address."""
    remote = LoopbackServer(
        guarded_http_server("127.0.0.1", 0, Hello, HostGuard.for_bind("0.0.0.0", allow_remote=True)),
        thread_name="test-remote",
    )
    remote.start()
    try:
        assert get(remote.port, [("Host", "192.168.1.5")])[0] == 200
        assert get(remote.port, [("Host", "attacker.example")])[0] == 403
    finally:
        remote.stop()


def test_stop_frees_the_port_for_the_next_server(server: LoopbackServer) -> None:
    port = server.port
    server.stop()
    server.stop()  # idempotent: `s3kp up` stops what it started, whatever failed after

    with pytest.raises(ConnectionRefusedError):
        get(port, [("Host", "127.0.0.1")])
    assert port_is_free("127.0.0.1", port)
    assert not any(thread.name == "test-loopback" for thread in threading.enumerate())
    again = LoopbackServer(guarded_http_server("127.0.0.1", port, Hello), thread_name="test-again")
    again.start()
    try:
        assert get(port, [("Host", "127.0.0.1")]) == (200, b"hello")
    finally:
        again.stop()


def test_a_port_in_use_fails_when_the_server_is_built_and_spares_its_holder(server: LoopbackServer) -> None:
    """The bind's own error, as before (the commands check their ports first and name the holder)."""
    with pytest.raises(OSError, match="Address already in use") as failure:
        guarded_http_server("127.0.0.1", server.port, Hello)

    assert failure.value.errno == errno.EADDRINUSE
    assert get(server.port, [("Host", "127.0.0.1")]) == (200, b"hello")


def test_the_url_names_the_host_it_was_given() -> None:
    """The viewer prints and opens the name the user gave (`--host localhost`), not the address."""
    named = LoopbackServer(guarded_http_server("localhost", 0, Hello), thread_name="t", url_host="localhost")
    try:
        assert named.url == f"http://localhost:{named.port}"
    finally:
        named.stop()
