"""`image=<url>`: http(s) only, images only, bounded in size; tested against a real local HTTP server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from s3kp import samples
from s3kp.model_server.errors import BadRequest, InvalidImage, PayloadTooLarge
from s3kp.model_server.url_fetch import FetchLimits, fetch_image

JPEG = samples.encode(samples.astronaut().resize((32, 32)))
ROUTES: dict[str, tuple[int, str | None, bytes]] = {
    "/photo.jpg": (200, "image/jpeg", JPEG),
    "/untyped": (200, None, JPEG),
    "/page.html": (200, "text/html; charset=utf-8", b"<html>not an image</html>"),
    "/gone.jpg": (404, "text/plain", b"not found"),
    "/large.jpg": (200, "image/jpeg", JPEG * 4),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
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
    assert fetch_image(f"{host}/photo.jpg", FetchLimits()) == JPEG


def test_a_response_without_content_type_is_left_to_the_decoder(host: str) -> None:
    assert fetch_image(f"{host}/untyped", FetchLimits()) == JPEG


def test_a_non_image_response_is_refused(host: str) -> None:
    with pytest.raises(InvalidImage, match="text/html"):
        fetch_image(f"{host}/page.html", FetchLimits())


def test_an_error_status_is_a_400(host: str) -> None:
    with pytest.raises(InvalidImage, match="HTTP 404"):
        fetch_image(f"{host}/gone.jpg", FetchLimits())


def test_an_oversized_file_is_413(host: str) -> None:
    with pytest.raises(PayloadTooLarge):
        fetch_image(f"{host}/large.jpg", FetchLimits(max_bytes=len(JPEG) * 2))


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x.jpg", "gopher://x", "/relative.jpg"]
)
def test_only_http_and_https_are_allowed(url: str) -> None:
    with pytest.raises(BadRequest, match="http"):
        fetch_image(url, FetchLimits())


def test_an_unreachable_host_is_a_400_naming_the_host_not_the_url() -> None:
    with pytest.raises(InvalidImage, match=r"127\.0\.0\.1") as raised:
        fetch_image("http://127.0.0.1:9/photo.jpg?token=secret", FetchLimits(connect_timeout=1))
    assert "secret" not in raised.value.message
