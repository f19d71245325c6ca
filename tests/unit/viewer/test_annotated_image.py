"""`GET /api/results/{id}/annotated` on the viewer serves images only as images (s3kp.viewer.storage).

Specification: the viewer follows the API's redirect only to the S3 endpoint it was configured with,
reads at most its size cap, and passes the object on only when its bytes are a JPEG or a PNG — typed from
those bytes, with `nosniff` — else it answers a 502 saying why. Stub HTTP servers on loopback stand in for
the results API and for storage.
"""

from __future__ import annotations

import http.server
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
import requests
from PIL import Image

from s3kp.results_api import ResultsApi
from s3kp.viewer.server import Viewer, ViewerServer
from s3kp.viewer.storage import MAX_IMAGE_BYTES, Storage, image_type, storage_for

RESULT_ID = "0123456789abcdef0123456789abcdef"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200
HTML = b"<!doctype html><script>fetch('/api/results').then(r => r.text()).then(steal)</script>"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, "PNG")
    return out.getvalue()


@dataclass
class Stub:
    """An HTTP server answering each path with (status, headers, body); it records the paths asked."""

    answers: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def stubs() -> Iterator[tuple[Stub, Stub, Stub]]:
    """The results API, storage (the configured S3 endpoint) and another host."""
    made, servers = [], []
    for _ in range(3):
        stub = Stub()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        stub.url = f"http://127.0.0.1:{server.server_address[1]}"
        made.append(stub)
        servers.append(server)
    yield made[0], made[1], made[2]
    for server in servers:
        server.shutdown()
        server.server_close()


def _handler(stub: Stub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # no Content-Length needed: the body ends with the connection

        def do_GET(self) -> None:
            stub.asked.append(self.path)
            status, headers, body = stub.answers.get(self.path, (404, {}, b""))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    return Handler


@contextmanager
def _viewer(api: Stub, storage: Stub, max_image_bytes: int) -> Iterator[str]:
    results = ResultsApi(api.url)
    viewer = Viewer(results, storage=Storage(storage.url), max_image_bytes=max_image_bytes)
    server = ViewerServer(viewer, port=0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        results.close()


def _serve(api: Stub, storage: Stub, body: bytes, content_type: str, sized: bool = True) -> None:
    """The API redirects to the object; storage answers it with `content_type`."""
    api.answers[f"/results/{RESULT_ID}/annotated"] = (
        302,
        {"Location": f"{storage.url}/bucket/a.jpg?X-Amz-Signature=s"},
        b"",
    )
    headers = {"Content-Type": content_type} | ({"Content-Length": str(len(body))} if sized else {})
    storage.answers["/bucket/a.jpg?X-Amz-Signature=s"] = (200, headers, body)


def _annotated(api: Stub, storage: Stub, max_image_bytes: int = MAX_IMAGE_BYTES) -> requests.Response:
    with _viewer(api, storage, max_image_bytes) as url:
        return requests.get(f"{url}/api/results/{RESULT_ID}/annotated", timeout=10)


def test_an_object_overwritten_as_html_is_refused_not_served(stubs: tuple[Stub, Stub, Stub]) -> None:
    """GIVEN the annotated object overwritten with a page as text/html WHEN the browser asks the viewer
    for it THEN a 502 JSON message, never the page from the viewer's own origin."""
    api, storage, _ = stubs
    _serve(api, storage, HTML, "text/html")
    response = _annotated(api, storage)
    assert response.status_code == 502
    assert response.headers["Content-Type"] == "application/json"
    assert b"<script" not in response.content
    assert "not a JPEG or PNG" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "expected"), [(JPEG, "image/jpeg"), (_png(), "image/png")], ids=["jpeg", "png"]
)
def test_an_image_is_typed_from_its_bytes_not_from_storage(
    stubs: tuple[Stub, Stub, Stub], body: bytes, expected: str
) -> None:
    api, storage, _ = stubs
    _serve(api, storage, body, "text/html")
    response = _annotated(api, storage)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == expected
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.content == body


def test_a_redirect_to_another_host_is_not_followed(stubs: tuple[Stub, Stub, Stub]) -> None:
    """GIVEN an API that redirects to a host other than the configured S3 endpoint (or storage that
    redirects onwards) THEN 502, and that host is never asked."""
    api, storage, elsewhere = stubs
    elsewhere.answers["/a.jpg"] = (200, {"Content-Type": "image/jpeg"}, JPEG)
    api.answers[f"/results/{RESULT_ID}/annotated"] = (302, {"Location": f"{elsewhere.url}/a.jpg"}, b"")
    refused = _annotated(api, storage)
    assert refused.status_code == 502
    assert "not followed" in refused.json()["message"]

    _serve(api, storage, b"", "image/jpeg")
    storage.answers["/bucket/a.jpg?X-Amz-Signature=s"] = (302, {"Location": f"{elsewhere.url}/a.jpg"}, b"")
    assert _annotated(api, storage).status_code == 502
    assert elsewhere.asked == []


@pytest.mark.parametrize("sized", [True, False], ids=["declared", "streamed"])
def test_an_object_over_the_cap_is_refused(stubs: tuple[Stub, Stub, Stub], sized: bool) -> None:
    """GIVEN an object larger than the cap, with its length declared or not THEN 502 naming the limit."""
    api, storage, _ = stubs
    _serve(api, storage, JPEG + b"\x00" * 3 * 1024 * 1024, "image/jpeg", sized=sized)
    response = _annotated(api, storage, max_image_bytes=1024 * 1024)
    assert response.status_code == 502
    assert "1 MB limit" in response.json()["message"]


def test_the_apis_own_error_passes_through(stubs: tuple[Stub, Stub, Stub]) -> None:
    api, storage, _ = stubs
    message = json.dumps({"message": "no annotated image for this result"}).encode()
    api.answers[f"/results/{RESULT_ID}/annotated"] = (404, {"Content-Type": "application/json"}, message)
    response = _annotated(api, storage)
    assert response.status_code == 404
    assert response.json() == {"message": "no annotated image for this result"}
    assert storage.asked == []


@pytest.mark.parametrize(
    "url",
    [
        "https://my-bucket.s3.amazonaws.com/annotated/a.jpg?X-Amz-Signature=s",
        "https://my-bucket.s3.eu-west-1.amazonaws.com/annotated/a.jpg",
        "https://s3.eu-west-1.amazonaws.com/my.dotted.bucket/annotated/a.jpg",
        "https://my-bucket.s3.dualstack.us-east-1.amazonaws.com/a.jpg",
        "https://my-bucket.s3.cn-north-1.amazonaws.com.cn/a.jpg",
    ],
)
def test_aws_s3_presigned_urls_are_followed_without_an_endpoint(url: str) -> None:
    assert Storage(None).serves(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://my-bucket.s3.amazonaws.com/a.jpg",  # plain http
        "https://my-bucket.s3.amazonaws.com:8443/a.jpg",
        "https://attacker.example/a.jpg",
        "https://s3.amazonaws.com.attacker.example/a.jpg",
        "https://my-bucket.s3.amazonaws.com@attacker.example/a.jpg",
        "https://attacker.example\\@my-bucket.s3.amazonaws.com/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_anything_else_is_not_aws_s3(url: str) -> None:
    assert not Storage(None).serves(url)


def test_a_configured_endpoint_allows_itself_and_its_bucket_subdomains_only() -> None:
    local = Storage("http://127.0.0.1:4566", local=True)
    assert local.serves("http://127.0.0.1:4566/bucket/a.jpg")
    assert not local.serves("http://127.0.0.1:4567/bucket/a.jpg")
    assert not local.serves("https://127.0.0.1:4566/bucket/a.jpg")
    assert not local.serves("http://localhost:4566/bucket/a.jpg")
    named = Storage("http://localhost:4566")
    assert named.serves("http://bucket.localhost:4566/a.jpg")
    assert not named.serves("http://localhost.attacker.example:4566/a.jpg")
    assert Storage("https://minio.lan").serves("https://minio.lan:443/bucket/a.jpg")


def test_the_endpoint_is_the_option_then_the_environment_then_the_local_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    local_api = ResultsApi("http://127.0.0.1:3000")
    assert storage_for(local_api, None) == Storage("http://127.0.0.1:4566", local=True)
    assert storage_for(local_api, "http://127.0.0.1:4600/") == Storage("http://127.0.0.1:4600")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4700")
    assert storage_for(local_api, None) == Storage("http://127.0.0.1:4700")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    deployed = ResultsApi("https://abc123.execute-api.eu-west-1.amazonaws.com", token="t")
    assert storage_for(deployed, None) == Storage(None)


def test_image_type_reads_the_signature() -> None:
    assert image_type(JPEG) == "image/jpeg"
    assert image_type(_png()) == "image/png"
    assert image_type(b"GIF89a") is None
    assert image_type(b"<svg") is None
    assert image_type(b"") is None
