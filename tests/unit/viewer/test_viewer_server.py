"""The viewer server's own rules: loopback host names only, a bounded image cache, static files only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest

from s3kp.results_api import ResultsApi
from s3kp.viewer.server import ImageCache, Viewer, ViewerServer


@pytest.fixture
def server() -> Iterator[ViewerServer]:
    viewer = Viewer(cast(ResultsApi, object()))
    running = ViewerServer(viewer, port=0)
    yield running
    running.stop()


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "127.0.0.2", "localhost"])
def test_loopback_host_names_are_served(server: ViewerServer, host: str) -> None:
    assert server._allowed_host(host)


@pytest.mark.parametrize("host", [None, "", "attacker.example", "127.0.0.1.nip.io:8080", "10.0.0.1:8080"])
def test_other_host_names_are_refused(server: ViewerServer, host: str | None) -> None:
    assert not server._allowed_host(host)


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
