"""`image=<url>`: http(s) only, public hosts only unless allowed, images only, bounded in size; tested
against a real local HTTP server."""

from __future__ import annotations

import http.server
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from s3kp_models.request_errors import BadRequest, InvalidImage, PayloadTooLarge

from s3kp import samples
from s3kp.model_server import url_fetch
from s3kp.model_server.url_fetch import FetchLimits, fetch_image, is_public_address

# The test server listens on loopback, which the fetcher refuses unless told otherwise.
LOOPBACK_ALLOWED = FetchLimits(allow_private_addresses=True)
JPEG = samples.encode(samples.astronaut().resize((32, 32)))
ROUTES: dict[str, tuple[int, str | None, bytes]] = {
    "/photo.jpg": (200, "image/jpeg", JPEG),
    "/untyped": (200, None, JPEG),
    "/page.html": (200, "text/html; charset=utf-8", b"<html>not an image</html>"),
    "/gone.jpg": (404, "text/plain", b"not found"),
    "/large.jpg": (200, "image/jpeg", JPEG * 4),
}


served: list[tuple[str, str | None]] = []  # (path, Host header) of every request the server answered


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        served.append((self.path, self.headers.get("Host")))
        if self.path.startswith("/redirect-to/"):  # /redirect-to/<ip>: 302 to /photo.jpg on that address
            self.send_response(302)
            port = self.server.server_address[1]
            self.send_header("Location", f"http://{self.path.removeprefix('/redirect-to/')}:{port}/photo.jpg")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, content_type, body = ROUTES.get(self.path, (404, "text/plain", b""))
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:  # keep test output quiet
        pass


@pytest.fixture(scope="module")
def host() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_image_url_is_fetched(host: str) -> None:
    assert fetch_image(f"{host}/photo.jpg", LOOPBACK_ALLOWED) == JPEG


def test_a_response_without_content_type_is_left_to_the_decoder(host: str) -> None:
    assert fetch_image(f"{host}/untyped", LOOPBACK_ALLOWED) == JPEG


def test_a_non_image_response_is_refused(host: str) -> None:
    with pytest.raises(InvalidImage, match="text/html"):
        fetch_image(f"{host}/page.html", LOOPBACK_ALLOWED)


def test_an_error_status_is_a_400(host: str) -> None:
    with pytest.raises(InvalidImage, match="HTTP 404"):
        fetch_image(f"{host}/gone.jpg", LOOPBACK_ALLOWED)


def test_an_oversized_file_is_413(host: str) -> None:
    with pytest.raises(PayloadTooLarge):
        fetch_image(f"{host}/large.jpg", FetchLimits(max_bytes=len(JPEG) * 2, allow_private_addresses=True))


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x.jpg", "gopher://x", "/relative.jpg"]
)
def test_only_http_and_https_are_allowed(url: str) -> None:
    with pytest.raises(BadRequest, match="http"):
        fetch_image(url, LOOPBACK_ALLOWED)


def test_an_unreachable_host_is_a_400_naming_the_host_not_the_url() -> None:
    with pytest.raises(InvalidImage, match=r"127\.0\.0\.1") as raised:
        fetch_image(
            "http://127.0.0.1:9/photo.jpg?token=secret",
            FetchLimits(connect_timeout=1, allow_private_addresses=True),
        )
    assert "secret" not in raised.value.message


# --- server-side request forgery -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",  # loopback: the local moto server, the inference server itself
        "169.254.169.254",  # link-local: the cloud metadata service
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",  # private
        "100.64.0.1",  # shared (carrier-grade NAT)
        "0.0.0.0",  # unspecified
        "224.0.0.1",  # multicast
        "240.0.0.1",  # reserved
        "::1",
        "fe80::1",
        "fc00::1",
        "::",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",
        "2002:7f00:1::",  # 6to4 wrapping 127.0.0.1
    ],
)
def test_non_public_addresses_are_recognised(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_public_addresses_are_recognised(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_loopback_is_refused_by_default_without_any_request(host: str, hostname: str) -> None:
    """GIVEN the default limits WHEN the URL names a loopback host THEN a 400 says why, and the server
    never saw a request."""
    served.clear()
    url = host.replace("127.0.0.1", hostname) + "/photo.jpg"
    with pytest.raises(BadRequest, match="non-public address") as raised:
        fetch_image(url, FetchLimits())
    assert raised.value.status_code == 400
    assert "--allow-private-image-urls" in raised.value.message
    assert served == []


def test_link_local_metadata_address_is_refused_by_default() -> None:
    with pytest.raises(BadRequest, match=r"169\.254\.169\.254 resolves to a .*non-public address"):
        fetch_image("http://169.254.169.254/latest/meta-data/", FetchLimits(connect_timeout=0.5))


def test_every_redirect_hop_is_checked(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """GIVEN a policy under which 127.0.0.1 counts as public but 127.0.0.2 does not WHEN the first host
    redirects to 127.0.0.2 THEN the hop is refused as non-public (not merely unreachable)."""
    first_hop = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(url_fetch, "is_public_address", lambda ip: ip == first_hop)
    assert fetch_image(f"{host}/photo.jpg", FetchLimits()) == JPEG  # the first hop alone is allowed
    with pytest.raises(BadRequest, match=r"127\.0\.0\.2 resolves to"):
        fetch_image(f"{host}/redirect-to/127.0.0.2", FetchLimits())


def test_the_connection_goes_to_the_address_that_was_checked(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: GIVEN a name that resolves to the test server once and to nothing afterwards WHEN it
    is fetched THEN it is resolved once, the connection goes to that answer, and the name is the Host."""
    port = int(host.rsplit(":", 1)[1])
    real_getaddrinfo = socket.getaddrinfo
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]])

    def rebinding_resolver(name: Any, *args: Any, **kwargs: Any) -> Any:
        if name == "images.test":
            answer = next(answers, None)
            if answer is None:
                raise socket.gaierror(socket.EAI_NONAME, "the answer changed")
            return answer
        return real_getaddrinfo(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_resolver)
    served.clear()
    assert fetch_image(f"http://images.test:{port}/photo.jpg", LOOPBACK_ALLOWED) == JPEG
    assert served == [("/photo.jpg", f"images.test:{port}")]


def _self_signed_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_https_to_the_pinned_address_still_verifies_the_certificate_against_the_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN an HTTPS server on 127.0.0.1 whose certificate names `images.test` WHEN two names resolve to
    it THEN `images.test` is fetched (SNI and certificate check use the name, not the pinned address) and
    `other.test` fails the certificate check."""
    cert, key = _self_signed_certificate(tmp_path, "images.test")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    real_getaddrinfo = socket.getaddrinfo

    def resolver(name: Any, *args: Any, **kwargs: Any) -> Any:
        if name in ("images.test", "other.test"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real_getaddrinfo(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    try:
        with requests.Session() as session:
            session.mount("https://", url_fetch.PinnedAddressAdapter(allow_private=True))
            response = session.get(f"https://images.test:{port}/photo.jpg", verify=str(cert), timeout=5)
            assert response.content == JPEG
            with pytest.raises(requests.exceptions.SSLError):
                session.get(f"https://other.test:{port}/photo.jpg", verify=str(cert), timeout=5)
    finally:
        server.shutdown()
        server.server_close()
