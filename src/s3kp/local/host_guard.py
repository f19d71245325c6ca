"""Which requests the local servers answer: those of this machine, not those of a web page elsewhere.

One rule for every local server (the AWS endpoint, the HTTP API, the inference server, the viewer),
against two things a page on any site can make the developer's browser do:

- DNS rebinding: the page's own name starts resolving to 127.0.0.1, so the browser treats the local
  server as the page's origin and lets it read the answers. Its requests carry `Host: attacker.example`:
  only loopback names are accepted (127.0.0.0/8, [::1], `localhost` and names under `.localhost`, which
  browsers resolve to loopback themselves), with or without a port.
- Cross-site requests: the page sends a request to 127.0.0.1 (a form post needs no CORS). The browser
  names the page in `Origin`: a request carrying an `Origin` is accepted only from a page of this machine
  (an http(s) origin whose host passes the same rule), which covers the viewer on whatever port it runs.

The aws CLI, boto3, the Roboflow clients and `requests` send a loopback `Host` and no `Origin`, so they
never notice. With `--allow-remote` a server is meant to be reached from other machines by address: any
IP literal and the name it was bound to are accepted too (a rebinding page always uses a name of its own).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from s3kp.local.ports import is_loopback

REFUSED_STATUS = 403
REFUSED_MESSAGE = "refused: this local server answers only this machine (loopback Host, no foreign Origin)"
# A Host header: a bracketed IPv6 literal or a DNS name / IPv4 literal, then an optional port. Anything
# else (user info, paths, spaces) is refused rather than parsed leniently.
_HOST = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::[0-9]{1,5})?$")
_ORIGIN = re.compile(r"^(?:https?)://(?P<host>[^/?#@]+)$", re.IGNORECASE)


def host_name(host: str | None) -> str | None:
    """The name (lower case, IPv6 without brackets) of a `Host` header value; None when malformed."""
    match = _HOST.match(host or "")
    if match is None:
        return None
    return (match.group("ipv6") or match.group("name")).lower()


def is_loopback_name(name: str) -> bool:
    return is_loopback(name) or name.endswith(".localhost")


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class HostGuard:
    """The rule above; `remote` adds IP literals and `names` (a server bound with --allow-remote)."""

    remote: bool = False
    names: frozenset[str] = frozenset()

    @classmethod
    def for_bind(cls, host: str, *, allow_remote: bool = False) -> HostGuard:
        """The guard for a server bound to `host`: loopback only unless it is bound elsewhere on purpose."""
        if is_loopback(host) or not allow_remote:
            return cls()
        bound = host.strip("[]").lower()
        return cls(remote=True, names=frozenset() if _is_ip_literal(bound) else frozenset({bound}))

    def allows_host(self, host: str | None) -> bool:
        name = host_name(host)
        if name is None:
            return False
        if is_loopback_name(name):
            return True
        return self.remote and (_is_ip_literal(name) or name in self.names)

    def allows_origin(self, origin: str | None) -> bool:
        """No `Origin` (not a browser, or a same-origin GET), or a page served by this machine."""
        if origin is None:
            return True
        match = _ORIGIN.match(origin.strip())
        return match is not None and self.allows_host(match.group("host"))

    def refusal(self, host: str | None, origin: str | None) -> str | None:
        """Why a request with these headers is refused (answer `REFUSED_STATUS`), or None to serve it."""
        if self.allows_host(host) and self.allows_origin(origin):
            return None
        return REFUSED_MESSAGE

    def refusal_of_all(self, hosts: Sequence[str], origins: Sequence[str]) -> str | None:
        """`refusal` for every `Host` and `Origin` a request carries: a repeated header is served only when
        each of its values is (a loopback `Host` does not vouch for a foreign one beside it)."""
        if hosts and all(map(self.allows_host, hosts)) and all(map(self.allows_origin, origins)):
            return None
        return REFUSED_MESSAGE
