"""`s3kp view`: a small web app on loopback that browses the results API.

The browser only ever talks to this server (same origin: no CORS, no credentials in the page):

    GET /                              the app (static files shipped in this package)
    GET /api/config                    the API it forwards to, the built-in skeletons (s3kp_core)
    GET /api/results?...               forwarded to the API's /results (filters and cursor as is)
    GET /api/results/{id}              forwarded to /results/{id}
    GET /api/results/{id}/annotated    the annotated JPEG: the API's 302 is followed here (to the configured
                                       S3 endpoint only), so the presigned URL's host never meets the
                                       browser; passed on only as the JPEG or PNG its bytes are (storage.py)
    GET /api/results/{id}/thumbnail    the annotated JPEG reduced for the gallery (cached in memory)
    GET /api/results/{id}/source       the source image, upright and reduced, read from S3 with the
                                       user's credentials, for drawing the predictions client-side
    GET /api/results/{id}/video        a video's annotated MP4, a range at a time (206, as players ask),
                                       through the same storage rules (an MP4 or nothing; storage.py)
    GET /api/results/{id}/frames?...   forwarded to /results/{id}/frames (offset, limit)

Requests to the API are signed (SigV4) or carry `--token` as `ResultsApi` decides. Only GET is served,
and only to this machine (`HostGuard`: a loopback `Host` header, no foreign `Origin`): a web page elsewhere
cannot reach the user's results through this server by DNS rebinding.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
import webbrowser
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from s3kp.local.host_guard import REFUSED_STATUS
from s3kp.local.loopback_server import GuardedHandler, LoopbackServer, guarded_http_server
from s3kp.local.ports import is_loopback, port_is_free
from s3kp.results_api import ApiError, InsecureTokenError, ResultsApi
from s3kp.viewer.storage import (
    MAX_IMAGE_BYTES,
    Storage,
    StorageRefused,
    fetch_image,
    fetch_video_part,
    storage_for,
)

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 480
SOURCE_MAX_SIDE = 2048
SOURCE_MAX_PIXELS = 100_000_000
IMAGE_CACHE_BYTES = 64 * 1024 * 1024
POLL_SECONDS = 5
FORWARDED_PARAMS = ("limit", "cursor", "status", "class", "prefix", "since", "until")
FRAMES_PARAMS = ("offset", "limit")
# The first bytes of an annotated MP4 (index first) hold its first frame: a gallery thumbnail for videos.
VIDEO_THUMBNAIL_BYTES = 2 * 1024 * 1024
# A presigned link is reused for the ranges of one playback (it lives PRESIGN_EXPIRY_SECONDS, 300 s).
VIDEO_LINK_SECONDS = 60.0
_RESULT_ROUTE = re.compile(r"^/api/results/([0-9a-f]{32})(?:/(annotated|thumbnail|source|video|frames))?$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    cache: str = "no-store"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, payload: Any) -> Reply:
        return cls(status, "application/json", json.dumps(payload).encode())


class ImageCache:
    """A byte-bounded LRU of encoded images, keyed by result id, kind and version (`updated_at`)."""

    def __init__(self, max_bytes: int = IMAGE_CACHE_BYTES) -> None:
        self._items: OrderedDict[tuple[str, ...], bytes] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, ...], value: bytes) -> None:
        with self._lock:
            if key in self._items:
                self._bytes -= len(self._items.pop(key))
            self._items[key] = value
            self._bytes += len(value)
            while self._bytes > self._max and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)


class Viewer:
    """What the routes do, independent of the HTTP server (so it is testable without one)."""

    def __init__(
        self, api: ResultsApi, *, storage: Storage | None = None, max_image_bytes: int = MAX_IMAGE_BYTES
    ) -> None:
        """`storage` is where the objects are read (None: no source images, no annotated image either)."""
        self.api = api
        self.storage = storage
        self._max_image_bytes = max_image_bytes
        self._s3: Any = None
        self._s3_lock = threading.Lock()
        self.images = ImageCache()
        self._video_links: dict[str, tuple[float, str]] = {}

    def config(self) -> dict[str, Any]:
        from s3kp_core.skeletons import BUILT_IN

        return {
            "api": self.api.describe(),
            "poll_seconds": POLL_SECONDS,
            "source_images": self.storage is not None,
            "skeletons": {
                name: {"keypoint_names": list(s.keypoint_names), "edges": [list(e) for e in s.edges]}
                for name, s in BUILT_IN.items()
            },
        }

    def route(self, path: str, query: str, byte_range: str | None = None) -> Reply:
        if path in ("/", "/index.html"):
            return self.static("index.html")
        if path.startswith("/static/"):
            return self.static(path.removeprefix("/static/"))
        if path == "/favicon.ico":
            return self.static("favicon.svg")
        if path == "/api/config":
            return Reply.json(200, self.config())
        if path == "/api/results":
            params = {k: v for k, v in parse_qsl(query) if k in FORWARDED_PARAMS}
            return self.forward("/results", params)
        match = _RESULT_ROUTE.match(path)
        if match is None:
            return Reply.json(404, {"message": "Not Found"})
        result_id, kind = match.groups()
        if kind is None:
            return self.forward(f"/results/{result_id}", {})
        if kind == "frames":
            params = {k: v for k, v in parse_qsl(query) if k in FRAMES_PARAMS}
            return self.forward(f"/results/{result_id}/frames", params)
        if kind == "video":
            return self.video(result_id, byte_range)
        options = dict(parse_qsl(query))
        version = options.get("v", "")
        if kind == "annotated":
            return self.annotated(result_id)
        if kind == "thumbnail":
            return self.thumbnail(result_id, version, video=options.get("media") == "video")
        return self.source(result_id, version)

    def static(self, name: str) -> Reply:
        content_type = _STATIC.get(name)
        if content_type is None:
            return Reply.json(404, {"message": "Not Found"})
        body = resources.files("s3kp.viewer").joinpath("static", name).read_bytes()
        return Reply(200, content_type, body, cache="no-cache")

    def forward(self, path: str, params: dict[str, str]) -> Reply:
        response = self.api.get(path, params)
        content_type = response.headers.get("Content-Type", "application/json")
        return Reply(response.status, content_type, response.body)

    def annotated(self, result_id: str) -> Reply:
        response = self.api.get(f"/results/{result_id}/annotated")
        location = response.headers.get("Location")
        if response.status >= 400:  # the API's own error (no such result, not annotated), as forward()
            return Reply(
                response.status, response.headers.get("Content-Type", "application/json"), response.body
            )
        if response.status not in (301, 302, 303, 307) or not location:
            return Reply.json(502, {"message": f"the API answered HTTP {response.status} without a redirect "
                                               "to the annotated image"})  # fmt: skip
        if self.storage is None:
            return Reply.json(502, {"message": "no S3 endpoint is configured to read the annotated image"})
        try:
            content_type, body = fetch_image(self.api, location, self.storage, self._max_image_bytes)
        except StorageRefused as error:
            return Reply.json(502, {"message": str(error)})
        return Reply(200, content_type, body, cache="private, max-age=300")

    def thumbnail(self, result_id: str, version: str, *, video: bool = False) -> Reply:
        key = (result_id, "thumbnail", version)
        cached = self.images.get(key)
        if cached is not None:
            return Reply(200, "image/jpeg", cached, cache="private, max-age=3600")
        from s3kp_core.imaging import decode, encode_jpeg

        if video:
            first = self._first_video_frame(result_id)
            if isinstance(first, Reply):
                return first
            image = first
        else:
            full = self.annotated(result_id)
            if full.status != 200:
                return full
            image = decode(full.body, max_pixels=SOURCE_MAX_PIXELS, draft_to=THUMBNAIL_SIDE).image
        body = encode_jpeg(image, max_side=THUMBNAIL_SIDE, quality=80)
        self.images.put(key, body)
        return Reply(200, "image/jpeg", body, cache="private, max-age=3600")

    def video(self, result_id: str, byte_range: str | None) -> Reply:
        """A range of the annotated MP4 (a player asks for `bytes=N-`; it gets VIDEO_CHUNK_BYTES at most
        and asks again). No Range header is read as `bytes=0-`."""
        match = _RANGE.match(byte_range or "bytes=0-")
        if match is None:
            return Reply.json(416, {"message": "only one `bytes=first-[last]` range is served"})
        first, last = int(match.group(1)), int(match.group(2)) if match.group(2) else None
        link = self._video_link(result_id)
        if isinstance(link, Reply):
            return link
        assert self.storage is not None  # _video_link answered a Reply without one
        try:
            part = fetch_video_part(self.api, link, self.storage, first, last)
        except StorageRefused as error:
            self._video_links.pop(result_id, None)  # an expired link: the next request asks the API again
            return Reply.json(502, {"message": str(error)})
        content_range = ("Content-Range", f"bytes {part.first}-{part.last}/{part.total}")
        return Reply(
            206, "video/mp4", part.body, cache="private, max-age=300",
            headers=(content_range, ("Accept-Ranges", "bytes")),
        )  # fmt: skip

    def _video_link(self, result_id: str) -> str | Reply:
        """The presigned URL the API redirects the annotated MP4 to (kept briefly for the next ranges)."""
        now = time.monotonic()
        cached = self._video_links.get(result_id)
        if cached is not None and now - cached[0] < VIDEO_LINK_SECONDS:
            return cached[1]
        response = self.api.get(f"/results/{result_id}/annotated")
        location = response.headers.get("Location")
        if response.status >= 400:
            return Reply(
                response.status, response.headers.get("Content-Type", "application/json"), response.body
            )
        if response.status not in (301, 302, 303, 307) or not location:
            return Reply.json(502, {"message": f"the API answered HTTP {response.status} without a redirect "
                                               "to the annotated video"})  # fmt: skip
        if self.storage is None:
            return Reply.json(502, {"message": "no S3 endpoint is configured to read the annotated video"})
        self._video_links[result_id] = (now, location)
        return location

    def _first_video_frame(self, result_id: str) -> Any:
        """The annotated MP4's first frame (from its first bytes: the index comes first), or the Reply
        that says why there is none."""
        link = self._video_link(result_id)
        if isinstance(link, Reply):
            return link
        assert self.storage is not None  # _video_link answered a Reply without one
        try:
            part = fetch_video_part(
                self.api, link, self.storage, 0, VIDEO_THUMBNAIL_BYTES - 1, chunk=VIDEO_THUMBNAIL_BYTES
            )
        except StorageRefused as error:
            return Reply.json(502, {"message": str(error)})
        import io

        import av

        try:
            with av.open(io.BytesIO(part.body), mode="r", format="mov") as container:
                for frame in container.decode(video=0):
                    return frame.to_image()  # type: ignore[no-untyped-call]  # PyAV: no hints
        except (av.FFmpegError, ValueError, OSError):
            pass
        return Reply.json(502, {"message": "the annotated video's first frame cannot be read"})

    def source(self, result_id: str, version: str) -> Reply:
        """The source image, upright (EXIF applied as the ingest side does) and reduced: the predictions'
        pixel coordinates refer to its original size, which the page scales to what it shows."""
        if self.storage is None:
            return Reply.json(404, {"message": "source images are not available (no S3 access configured)"})
        key = (result_id, "source", version)
        cached = self.images.get(key)
        if cached is not None:
            return Reply(200, "image/jpeg", cached, cache="private, max-age=3600")
        response = self.api.get(f"/results/{result_id}")
        if response.status != 200:
            return Reply(response.status, "application/json", response.body)
        source = response.json()["source"]
        try:
            found = self._s3_client().get_object(Bucket=source["bucket"], Key=source["key"])
            data = found["Body"].read(self._max_image_bytes + 1)  # no more than the cap in memory
            found["Body"].close()
        except Exception as error:  # any S3 problem means "not available", said plainly
            code = getattr(error, "response", {}).get("Error", {}).get("Code", type(error).__name__)
            return Reply.json(404, {"message": f"the source object cannot be read ({code})"})
        if len(data) > self._max_image_bytes:
            limit = self._max_image_bytes // (1024 * 1024)
            return Reply.json(415, {"message": f"the source object is over the viewer's {limit} MB limit"})
        from s3kp_core.errors import PermanentError
        from s3kp_core.imaging import decode, encode_jpeg

        try:
            decoded = decode(data, max_pixels=SOURCE_MAX_PIXELS, draft_to=SOURCE_MAX_SIDE)
        except PermanentError as error:
            return Reply.json(415, {"message": f"the source object is not a displayable image ({error})"})
        body = encode_jpeg(decoded.image, max_side=SOURCE_MAX_SIDE, quality=88)
        self.images.put(key, body)
        return Reply(200, "image/jpeg", body, cache="private, max-age=3600")

    def _s3_client(self) -> Any:
        with self._s3_lock:
            if self._s3 is None:
                assert self.storage is not None
                self._s3 = self.storage.client()
            return self._s3


class ViewerServer(LoopbackServer):
    """A threading HTTP server for `Viewer` on loopback (this machine only: `HostGuard()`); `start()`
    serves in a thread, `stop()` frees it."""

    def __init__(self, viewer: Viewer, host: str = "127.0.0.1", port: int = 8080) -> None:
        super().__init__(
            guarded_http_server(host, port, _handler_class(viewer)), thread_name="viewer", url_host=host
        )


def _handler_class(viewer: Viewer) -> type[GuardedHandler]:
    class Handler(GuardedHandler):
        server_version = "s3kp-view"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.guard_refuses():
                return
            target = urlsplit(self.path)
            try:
                reply = viewer.route(target.path, target.query, self.headers.get("Range"))
            except ApiError as error:
                reply = Reply.json(502, {"message": str(error)})
            except Exception:
                log.exception("viewer request %s failed", target.path)
                reply = Reply.json(500, {"message": "internal error in the viewer (see its output)"})
            self._send(reply)

        def do_HEAD(self) -> None:
            self.send_error(405)

        def send_refusal(self, message: str) -> None:
            self._send(Reply.json(REFUSED_STATUS, {"message": message}))

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Cache-Control", reply.cache)
            for name, value in reply.headers:
                self.send_header(name, value)
            for name, value in _SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s - %s", self.address_string(), format % args)

    return Handler


def run_view(args: Any) -> int:
    if not is_loopback(args.host):
        print(f"s3kp view: --host {args.host} is not loopback: the viewer forwards with your credentials, "
              "so it only listens on this machine", file=sys.stderr)  # fmt: skip
        return 2
    if args.port and not port_is_free(args.host, args.port):
        print(f"s3kp view: port {args.port} already in use on {args.host}: choose another with --port "
              "(0 picks a free one)", file=sys.stderr)  # fmt: skip
        return 1
    try:
        api = ResultsApi(args.api_url, token=args.token, region=args.region)
    except InsecureTokenError as error:
        print(f"s3kp view: {error}", file=sys.stderr)
        return 2
    except (ApiError, ValueError) as error:
        print(f"s3kp view: {error}", file=sys.stderr)
        return 1
    viewer = Viewer(api, storage=storage_for(api, args.aws_endpoint_url))
    server = ViewerServer(viewer, args.host, args.port)
    try:
        health = api.get("/health")
        if health.status != 200:
            print(f"s3kp view: warning: {api.api_url}/health answered HTTP {health.status}", file=sys.stderr)
    except ApiError as error:
        print(f"s3kp view: warning: {error} (the page retries)", file=sys.stderr)
    print(f"s3kp view: {server.url}  (results API: {api.describe()}; Ctrl-C stops)", flush=True)
    if not args.no_browser:
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    try:
        server.serve_forever()
    finally:
        server.stop()
        api.close()
    return 0
