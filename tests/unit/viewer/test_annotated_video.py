"""`GET /api/results/{id}/video` on the viewer serves a video's annotated MP4 only as an MP4, by ranges.

Specification: the viewer follows the API's redirect only to the configured S3 endpoint, passes bytes on
only when the object starts with an ISO BMFF `ftyp` box, answers a player's `Range` with a 206 of at most
VIDEO_CHUNK_BYTES (the player asks again for the rest), and the gallery's thumbnail of a video is its first
frame. Stub HTTP servers on loopback stand in for the results API and for storage (which honours ranges).
"""

from __future__ import annotations

import http.server
import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pytest
import requests
from PIL import Image
from s3kp_core.video_encode import PieceWriter, join_pieces

from s3kp.results_api import ResultsApi
from s3kp.viewer.server import Viewer, ViewerServer
from s3kp.viewer.storage import VIDEO_CHUNK_BYTES, Storage

RESULT_ID = "0123456789abcdef0123456789abcdef"
OBJECT = "/bucket/annotated/clip.mp4.run.mp4?X-Amz-Signature=s"


@dataclass
class Stub:
    """Answers each path with (status, headers, body); a 200 body is served by ranges when asked."""

    answers: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    asked: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""


def _handler(stub: Stub) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            wanted = self.headers.get("Range")
            stub.asked.append((self.path, wanted))
            status, headers, body = stub.answers.get(self.path, (404, {}, b""))
            match = re.match(r"^bytes=(\d+)-(\d*)$", wanted or "")
            if status == 200 and match:
                first = int(match.group(1))
                last = min(len(body) - 1, int(match.group(2)) if match.group(2) else len(body) - 1)
                headers = headers | {"Content-Range": f"bytes {first}-{last}/{len(body)}"}
                status, body = 206, body[first : last + 1]
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    return Handler


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


@contextmanager
def _viewer(api: Stub, storage: Stub) -> Iterator[str]:
    results = ResultsApi(api.url)
    server = ViewerServer(Viewer(results, storage=Storage(storage.url)), port=0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
        results.close()


def _mp4(tmp_path: Path, frames: int = 5) -> bytes:
    writer = PieceWriter(fps=Fraction(5), size=(64, 48))
    for n in range(frames):
        writer.add(Image.new("RGB", (64, 48), (200, 40 * n, 0)))
    path = tmp_path / "clip.mp4"
    join_pieces([(0, writer.finish())], Fraction(5), path)
    return path.read_bytes()


def _redirect(api: Stub, to: str) -> None:
    api.answers[f"/results/{RESULT_ID}/annotated"] = (302, {"Location": to}, b"")


def test_a_players_range_gets_that_part_of_the_mp4_with_its_content_range(
    stubs: tuple[Stub, Stub, Stub], tmp_path: Path
) -> None:
    api, storage, _ = stubs
    video = _mp4(tmp_path)
    _redirect(api, f"{storage.url}{OBJECT}")
    storage.answers[OBJECT] = (200, {"Content-Type": "text/html"}, video)  # storage's type is not used
    with _viewer(api, storage) as url:
        part = requests.get(
            f"{url}/api/results/{RESULT_ID}/video", headers={"Range": "bytes=100-199"}, timeout=10
        )
        whole = requests.get(f"{url}/api/results/{RESULT_ID}/video", timeout=10)
    assert part.status_code == 206
    assert part.content == video[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(video)}"
    assert part.headers["Content-Type"] == "video/mp4"
    assert part.headers["X-Content-Type-Options"] == "nosniff"
    assert part.headers["Accept-Ranges"] == "bytes"
    assert (whole.status_code, whole.content) == (206, video)  # no Range: from the start
    assert len([path for path, _ in api.asked if path.endswith("/annotated")]) == 1  # the link is reused


def test_an_open_range_of_a_long_video_gets_one_chunk_and_the_player_asks_for_the_rest(
    stubs: tuple[Stub, Stub, Stub],
) -> None:
    api, storage, _ = stubs
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(VIDEO_CHUNK_BYTES + 1000)
    _redirect(api, f"{storage.url}{OBJECT}")
    storage.answers[OBJECT] = (200, {}, video)
    with _viewer(api, storage) as url:
        first = requests.get(
            f"{url}/api/results/{RESULT_ID}/video", headers={"Range": "bytes=0-"}, timeout=10
        )
        rest = requests.get(
            f"{url}/api/results/{RESULT_ID}/video",
            headers={"Range": f"bytes={VIDEO_CHUNK_BYTES}-"},
            timeout=10,
        )
    assert first.headers["Content-Range"] == f"bytes 0-{VIDEO_CHUNK_BYTES - 1}/{len(video)}"
    assert len(first.content) == VIDEO_CHUNK_BYTES
    assert rest.content == video[VIDEO_CHUNK_BYTES:]


def test_an_object_that_is_not_an_mp4_is_refused_not_served(stubs: tuple[Stub, Stub, Stub]) -> None:
    api, storage, _ = stubs
    page = b"<!doctype html><script>fetch('/api/results').then(steal)</script>" * 4
    _redirect(api, f"{storage.url}{OBJECT}")
    storage.answers[OBJECT] = (200, {"Content-Type": "video/mp4"}, page)
    with _viewer(api, storage) as url:
        response = requests.get(
            f"{url}/api/results/{RESULT_ID}/video", headers={"Range": "bytes=0-"}, timeout=10
        )
    assert response.status_code == 502
    assert b"<script" not in response.content
    assert "not an MP4 video" in response.json()["message"]


def test_a_redirect_to_another_host_is_never_contacted(stubs: tuple[Stub, Stub, Stub]) -> None:
    api, storage, elsewhere = stubs
    _redirect(api, f"{elsewhere.url}{OBJECT}")
    with _viewer(api, storage) as url:
        response = requests.get(f"{url}/api/results/{RESULT_ID}/video", timeout=10)
    assert response.status_code == 502
    assert elsewhere.asked == []


def test_a_videos_thumbnail_is_its_first_frame(stubs: tuple[Stub, Stub, Stub], tmp_path: Path) -> None:
    api, storage, _ = stubs
    _redirect(api, f"{storage.url}{OBJECT}")
    storage.answers[OBJECT] = (200, {}, _mp4(tmp_path))
    with _viewer(api, storage) as url:
        response = requests.get(f"{url}/api/results/{RESULT_ID}/thumbnail?v=1&media=video", timeout=10)
    assert response.status_code == 200
    thumbnail = Image.open(io.BytesIO(response.content))
    assert (thumbnail.format, thumbnail.size) == ("JPEG", (64, 48))
    assert thumbnail.getpixel((32, 24))[0] > 150  # the first frame's red


def test_frames_are_forwarded_with_offset_and_limit_only(stubs: tuple[Stub, Stub, Stub]) -> None:
    api, storage, _ = stubs
    api.answers[f"/results/{RESULT_ID}/frames?offset=50&limit=50"] = (
        200,
        {"Content-Type": "application/json"},
        b'{"items": [], "next_offset": null, "frames": 50}',
    )
    with _viewer(api, storage) as url:
        response = requests.get(
            f"{url}/api/results/{RESULT_ID}/frames", params={"offset": 50, "limit": 50, "x": "y"}, timeout=10
        )
    assert response.status_code == 200
    assert response.json()["frames"] == 50
