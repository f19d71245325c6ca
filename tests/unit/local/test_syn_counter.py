"""The soak counts connection attempts to a port nobody listens on (an endpoint that is down) as the kernel
sees them: every refused attempt once, and nothing sent to other ports."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from s3kp.local.syn_counter import SynCounter


@pytest.fixture
def bound_port() -> Iterator[int]:
    """A port that is bound but not listening: a connection to it is refused."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


@pytest.fixture
def counter(bound_port: int) -> Iterator[SynCounter]:
    try:
        running = SynCounter(bound_port).start()
    except PermissionError:
        pytest.skip("packet sockets need CAP_NET_RAW")
    yield running
    running.stop()


def counted(counter: SynCounter, expected: int) -> int:
    """The count once it reaches `expected`, or whatever it is after a generous bound."""
    deadline = time.monotonic() + 5
    while len(counter.times()) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # and anything counted twice would show up by now
    return len(counter.times())


def test_each_refused_connection_attempt_is_counted_once(counter: SynCounter, bound_port: int) -> None:
    for _ in range(3):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", bound_port), timeout=2)

    assert counted(counter, 3) == 3


def test_traffic_to_other_ports_is_not_counted(counter: SynCounter, bound_port: int) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=2)
        accepted, _ = server.accept()
        client.sendall(b"x" * 10_000)
        accepted.recv(10_000)
        client.close()
        accepted.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", bound_port), timeout=2)

    assert counted(counter, 1) == 1
