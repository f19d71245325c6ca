"""Fetch the image named by `image=<url>`: http(s) only, public addresses only, bounded in size and time,
images only.

Blocking (requests); the app runs it in a worker thread. Error messages name the host, not the whole URL,
which may carry a token of its own.

Server-side request forgery: the URL comes from the client, so by default the host must resolve to public
addresses only (not the local moto server, not 169.254.169.254, not the LAN). The check runs for every
connection, so each redirect hop too, and the connection goes to the very address that was checked: a
DNS answer that changes between the check and the connect (rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from s3kp_models.request_errors import BadRequest, InvalidImage, PayloadTooLarge

_ALLOWED_SCHEMES = ("http", "https")
_IMAGE_CONTENT_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 20 * 1024 * 1024
    connect_timeout: float = 5.0
    read_timeout: float = 10.0  # between two bytes
    total_timeout: float = 30.0  # for the whole download
    max_redirects: int = 3
    # Off by default; the project's own tests serve images on 127.0.0.1 and turn it on.
    allow_private_addresses: bool = False


def fetch_image(url: str, limits: FetchLimits) -> bytes:
    """The body of `url`, refusing other schemes, non-public hosts (unless allowed), error statuses,
    non-image types and oversized files."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _ALLOWED_SCHEMES or not parts.hostname:
        raise BadRequest(f"image URL must be http:// or https:// with a host (got scheme {parts.scheme!r})")
    where = parts.hostname
    with requests.Session() as session:
        session.trust_env = False  # no proxy (it would be the address checked) and no .netrc credentials
        session.max_redirects = limits.max_redirects
        adapter = PinnedAddressAdapter(allow_private=limits.allow_private_addresses)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        try:
            with session.get(
                url, stream=True, timeout=(limits.connect_timeout, limits.read_timeout)
            ) as response:
                if response.status_code != 200:
                    raise InvalidImage(
                        f"fetching the image from {where} returned HTTP {response.status_code}"
                    )
                _check_content_type(response.headers.get("Content-Type"), where)
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > limits.max_bytes:
                    raise PayloadTooLarge(
                        f"the image at {where} is {declared} bytes; limit {limits.max_bytes}"
                    )
                return _read_bounded(response, limits, where)
        except requests.RequestException as error:
            raise InvalidImage(f"fetching the image from {where} failed ({type(error).__name__})") from None


def _check_content_type(content_type: str | None, where: str) -> None:
    # A missing type is tolerated (plain file servers); the decoder is the final judge.
    if content_type and not content_type.strip().lower().startswith(_IMAGE_CONTENT_TYPES):
        raise InvalidImage(f"the URL at {where} returned {content_type.split(';')[0]!r}, not an image")


def _read_bounded(response: requests.Response, limits: FetchLimits, where: str) -> bytes:
    deadline = time.monotonic() + limits.total_timeout
    chunks: list[bytes] = []
    received = 0
    for chunk in response.iter_content(_CHUNK):
        received += len(chunk)
        if received > limits.max_bytes:
            raise PayloadTooLarge(f"the image at {where} is over the {limits.max_bytes}-byte limit")
        if time.monotonic() > deadline:
            raise InvalidImage(f"fetching the image from {where} took over {limits.total_timeout:.0f} s")
        chunks.append(chunk)
    return b"".join(chunks)


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """False for loopback, private, link-local, multicast, reserved, unspecified and shared (CGNAT)
    addresses, including an IPv4 one wrapped in IPv6 (`::ffff:127.0.0.1`, 6to4 `2002:7f00:1::`)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local:  # deprecated fec0::/10, which `is_global` still counts as global
            return False
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    special = ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_unspecified
    return ip.is_global and not (special or ip.is_multicast or ip.is_reserved)


def resolve_public(host: str, port: int, *, allow_private: bool) -> str:
    """The address to connect to for `host`: the first it resolves to, once every one passed the check."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise requests.ConnectionError(f"cannot resolve {host}") from error
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not allow_private and not all(is_public_address(address) for address in addresses):
        raise BadRequest(
            f"image URL host {host} resolves to a loopback, private, link-local or otherwise non-public "
            "address: refused (start the server with --allow-private-image-urls to allow it)"
        )
    return str(addresses[0])


class PinnedAddressAdapter(HTTPAdapter):
    """Connects to the address `resolve_public` checked, sending the original name as `Host` (and as the
    TLS server name, whose certificate is still verified against it).

    requests calls this for the first request and for every redirect hop; the connection pool is keyed by
    the address, so a kept-alive connection is only reused for the same checked address.
    """

    def __init__(self, *, allow_private: bool) -> None:
        super().__init__()
        self._allow_private = allow_private

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        hostname: str = host_params["host"]
        port: int | None = host_params["port"]
        scheme: str = host_params["scheme"]
        address = resolve_public(hostname, port or _DEFAULT_PORTS[scheme], allow_private=self._allow_private)
        name = f"[{hostname}]" if ":" in hostname else hostname
        # A copy: the caller's header mapping may be shared with other requests.
        request.headers = CaseInsensitiveDict(request.headers)
        request.headers["Host"] = name if port is None else f"{name}:{port}"
        if scheme == "https":
            pool_kwargs["server_hostname"] = hostname
            pool_kwargs["assert_hostname"] = hostname
        host_params["host"] = f"[{address}]" if ":" in address else address
        return host_params, pool_kwargs


_DEFAULT_PORTS = {"http": 80, "https": 443}
