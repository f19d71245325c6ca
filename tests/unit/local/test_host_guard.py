"""The one rule every local server applies to `Host` and `Origin` (s3kp.local.host_guard).

Specification: a request is served when its `Host` is a loopback name (with or without a port) and it
carries no `Origin` or the `Origin` of a page on this machine; bound with --allow-remote, IP literals and
the bound name are accepted too, but never another DNS name (what a rebinding page sends).
"""

from __future__ import annotations

import pytest

from s3kp.local.host_guard import HostGuard

LOOPBACK_HOSTS = [
    "127.0.0.1",
    "127.0.0.1:4566",
    "127.0.0.2:3000",
    "localhost",
    "localhost:9001",
    "LocalHost:9001",
    "[::1]",
    "[::1]:8080",
    "my-bucket.localhost:4566",  # a virtual-host bucket under a localhost endpoint
]
FOREIGN_HOSTS = [
    None,
    "",
    "attacker.example",
    "attacker.example:4566",
    "127.0.0.1.nip.io:4566",  # a rebinding name that merely starts with a loopback address
    "localhost.attacker.example",
    "10.0.0.1:4566",
    "[2001:db8::1]:4566",
    "attacker.example@127.0.0.1",  # user info: malformed as a Host, refused rather than parsed
    "127.0.0.1:4566/x",
    "::1",  # an IPv6 literal must be bracketed in a Host header
    "127.0.0.1:99999999",
]


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_loopback_host_names_are_served(host: str) -> None:
    assert HostGuard().refusal(host, None) is None


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_any_other_host_is_refused(host: str | None) -> None:
    assert HostGuard().refusal(host, None) is not None


@pytest.mark.parametrize(
    "origin", ["http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080", "https://localhost"]
)
def test_a_page_of_this_machine_may_send_requests(origin: str) -> None:
    """The viewer's origin, whatever port it was given."""
    assert HostGuard().refusal("127.0.0.1:3000", origin) is None


@pytest.mark.parametrize(
    "origin",
    [
        "https://attacker.example",
        "http://127.0.0.1.nip.io:8080",
        "null",  # a sandboxed frame or a file:// page
        "file://",
        "http://127.0.0.1:8080/path",
        "ftp://127.0.0.1",
        "",
    ],
)
def test_a_request_from_any_other_page_is_refused(origin: str) -> None:
    assert HostGuard().refusal("127.0.0.1:3000", origin) is not None


def test_a_loopback_bind_stays_loopback_only_even_with_allow_remote() -> None:
    assert HostGuard.for_bind("127.0.0.1", allow_remote=True) == HostGuard()
    assert HostGuard.for_bind("::1", allow_remote=True) == HostGuard()


def test_a_non_loopback_bind_without_allow_remote_serves_loopback_names_only() -> None:
    assert HostGuard.for_bind("0.0.0.0") == HostGuard()


def test_allow_remote_accepts_addresses_and_the_bound_name_but_no_other_name() -> None:
    """GIVEN a server bound off loopback with --allow-remote THEN clients on the network reach it by
    address (or by the name it was bound to), and loopback names still work; a rebinding page's own name
    is still refused, as is a page of another machine."""
    wildcard = HostGuard.for_bind("0.0.0.0", allow_remote=True)
    for host in ("192.168.1.5:4566", "[fe80::1]:4566", "10.0.0.7", "localhost:4566"):
        assert wildcard.refusal(host, None) is None, host
    assert wildcard.refusal("attacker.example:4566", None) is not None
    assert wildcard.refusal("192.168.1.5:3000", "http://192.168.1.20:8080") is None, "a page on the LAN"
    assert wildcard.refusal("192.168.1.5:3000", "https://attacker.example") is not None

    named = HostGuard.for_bind("devbox.lan", allow_remote=True)
    assert named.refusal("devbox.lan:3000", None) is None
    assert named.refusal("DEVBOX.LAN", None) is None
    assert named.refusal("otherbox.lan:3000", None) is not None


@pytest.mark.parametrize(
    ("hosts", "origins"),
    [
        (["127.0.0.1:3000", "attacker.example"], []),
        (["attacker.example", "127.0.0.1:3000"], []),
        (["127.0.0.1:3000"], ["http://127.0.0.1:8080", "https://attacker.example"]),
        (["127.0.0.1:3000"], ["https://attacker.example", "http://127.0.0.1:8080"]),
        ([], []),
    ],
)
def test_a_repeated_host_or_origin_is_refused_when_any_value_is(hosts: list[str], origins: list[str]) -> None:
    """GIVEN a request that repeats `Host` or `Origin` (no browser does) THEN whichever value a server would
    read, first or last, a foreign one among them gets it refused; and no `Host` at all is refused."""
    assert HostGuard().refusal_of_all(hosts, origins) is not None


def test_a_request_whose_every_host_and_origin_passes_is_served() -> None:
    assert HostGuard().refusal_of_all(["127.0.0.1:3000"], []) is None
    assert HostGuard().refusal_of_all(["localhost:3000", "127.0.0.1:3000"], ["http://127.0.0.1:8080"]) is None
