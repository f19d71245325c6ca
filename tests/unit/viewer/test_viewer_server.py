"""The viewer server's own rules: this machine only (host_guard), a bounded image cache, static files only."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import cast

import pytest

from s3kp.results_api import ResultsApi
from s3kp.viewer.server import ImageCache, Viewer, ViewerServer


@pytest.fixture
def server() -> Iterator[ViewerServer]:
    viewer = Viewer(cast(ResultsApi, object()))
    running = ViewerServer(viewer, port=0)
    running.start()
    yield running
    running.stop()


def _get(server: ViewerServer, *repeated: tuple[str, str], **headers: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("GET", "/", skip_host=True)  # the Host header is the test's to choose
    for name, value in [*repeated, *headers.items()]:
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.0.0.2", "localhost"])
def test_loopback_host_names_are_served(server: ViewerServer, host: str) -> None:
    assert _get(server, Host=host).status == 200


@pytest.mark.parametrize("host", ["attacker.example", "127.0.0.1.nip.io:8080", "10.0.0.1:8080"])
def test_other_host_names_are_refused(server: ViewerServer, host: str) -> None:
    assert _get(server, Host=host).status == 403
    assert _get(server).status == 403, "no Host at all"


def test_a_request_from_a_page_elsewhere_is_refused(server: ViewerServer) -> None:
    assert _get(server, Host="127.0.0.1:8080", Origin="https://attacker.example").status == 403
    assert _get(server, Host="127.0.0.1:8080", Origin="http://127.0.0.1:8080").status == 200


def test_a_foreign_host_or_origin_beside_a_loopback_one_is_refused(server: ViewerServer) -> None:
    """A repeated header is judged by every value, not by the one a reader happens to take first."""
    for first, second in (("127.0.0.1:8080", "attacker.example"), ("attacker.example", "127.0.0.1:8080")):
        assert _get(server, ("Host", first), ("Host", second)).status == 403
    own, foreign = "http://127.0.0.1:8080", "https://attacker.example"
    for first, second in ((own, foreign), (foreign, own)):
        assert _get(server, ("Origin", first), ("Origin", second), Host="127.0.0.1:8080").status == 403


def test_the_image_cache_drops_the_least_recently_used_past_its_budget() -> None:
    cache = ImageCache(max_bytes=10)
    cache.put(("a",), b"1234")
    cache.put(("b",), b"1234")
    assert cache.get(("a",)) == b"1234"  # a is now the most recent
    cache.put(("c",), b"1234")
    assert cache.get(("b",)) is None
    assert cache.get(("a",)) == b"1234"
    assert cache.get(("c",)) == b"1234"


def test_only_the_shipped_static_files_are_served() -> None:
    viewer = Viewer(cast(ResultsApi, object()))
    page = viewer.route("/", "")
    assert page.status == 200
    assert b'src="/static/app.js"' in page.body
    assert viewer.route("/static/app.js", "").content_type.startswith("text/javascript")
    assert viewer.route("/static/../server.py", "").status == 404
    assert viewer.route("/static/server.py", "").status == 404
    assert viewer.route("/api/results/not-an-id", "").status == 404
