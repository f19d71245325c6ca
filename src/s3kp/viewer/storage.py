"""Where the viewer reads the results' objects, and how it lets an object through to the browser.

The viewer serves what it reads from the viewer's own origin, so an object is passed on only as what it
must be. The annotated image behind the API's presigned URL is fetched only from the S3 endpoint the
viewer was configured with (never a redirect elsewhere), at most `MAX_IMAGE_BYTES` of it, and only when
its bytes are a JPEG or a PNG; its type then comes from those bytes, never from storage's Content-Type (an
object overwritten as text/html would otherwise become a same-origin page, and a script its CSP admits).
A video's annotated MP4 follows the same rules, read a range at a time (`VIDEO_CHUNK_BYTES` at most, as a
player asks for it) and passed on only when its first bytes are an ISO BMFF `ftyp` box.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from s3kp.results_api import ApiError, ResultsApi

LOCAL_AWS_ENDPOINT = "http://127.0.0.1:4566"
# Far above an annotated copy (2048 px by default, ANNOTATED_MAX_SIDE at most 16384) and the ingest's own
# 50 MB cap on sources; low enough that a hostile object cannot fill the viewer's memory.
MAX_IMAGE_BYTES = 64 * 1024 * 1024
_CHUNK_BYTES = 256 * 1024
# AWS S3's own host names, as presigned URLs name them: s3.amazonaws.com, <bucket>.s3.<region>.amazonaws.com,
# s3.dualstack.<region>..., s3-fips..., and the .cn partition.
_AWS_S3_HOST = re.compile(r"^(?:[a-z0-9.-]+\.)?s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?$")
_IMAGE_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))
# A player asks for the whole video and takes what comes (206): a range of this much at most per request.
VIDEO_CHUNK_BYTES = 4 * 1024 * 1024
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


class StorageRefused(RuntimeError):
    """What storage answered is not passed on (a 502 for the page): one line, no URL (it is signed)."""


def image_type(data: bytes) -> str | None:
    """`image/jpeg` or `image/png` from the bytes' signature, None for anything else."""
    return next((kind for magic, kind in _IMAGE_MAGIC if data.startswith(magic)), None)


@dataclass(frozen=True)
class Storage:
    """An S3 endpoint: `endpoint_url`, or AWS S3 itself when None; `local` for the local stack's moto."""

    endpoint_url: str | None
    local: bool = False

    def describe(self) -> str:
        return self.endpoint_url or "AWS S3 (https://*.amazonaws.com)"

    def client(self) -> Any:
        """boto3 S3 on this endpoint: moto's dummy credentials locally, else the user's own."""
        import boto3

        if self.local:
            return boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
            )
        return boto3.client("s3", endpoint_url=self.endpoint_url)

    def serves(self, url: str) -> bool:
        """Whether `url` is on this endpoint (or a bucket's virtual host under it)."""
        parts = urlsplit(url)
        if "\\" in url or parts.username is not None or parts.password is not None or not parts.hostname:
            return False  # nothing a presigned URL has, and what parsers disagree on
        if self.endpoint_url is None:
            return (
                parts.scheme == "https" and _port(parts) == 443 and bool(_AWS_S3_HOST.match(parts.hostname))
            )
        endpoint = urlsplit(self.endpoint_url)
        if (parts.scheme, _port(parts)) != (endpoint.scheme, _port(endpoint)) or not endpoint.hostname:
            return False
        host, base = parts.hostname, endpoint.hostname
        return host == base or (not _is_ip(base) and host.endswith(f".{base}"))


def storage_for(api: ResultsApi, endpoint_url: str | None) -> Storage:
    """`--aws-endpoint-url`, else $AWS_ENDPOINT_URL, else the local stack's moto for a loopback API (no
    auth), else AWS S3."""
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        return Storage(endpoint.rstrip("/"))
    if api.auth_mode == "none":
        return Storage(LOCAL_AWS_ENDPOINT, local=True)
    return Storage(None)


def fetch_image(
    api: ResultsApi, url: str, storage: Storage, max_bytes: int = MAX_IMAGE_BYTES
) -> tuple[str, bytes]:
    """The content type (from the bytes) and the bytes of the image at the presigned `url`."""
    if not storage.serves(url):
        raise StorageRefused(
            f"the API redirected the image to {urlsplit(url).netloc or '?'}, not to the S3 endpoint the "
            f"viewer reads ({storage.describe()}; --aws-endpoint-url sets it): not followed"
        )
    try:
        response = api.download(url)
    except ApiError as error:
        raise StorageRefused(str(error)) from None
    with response:
        if response.status_code != 200:
            raise StorageRefused(
                f"the annotated image could not be read (HTTP {response.status_code} from storage)"
            )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise StorageRefused(_too_large(max_bytes))
        body = bytearray()
        for chunk in response.iter_content(_CHUNK_BYTES):
            body += chunk
            if len(body) > max_bytes:
                raise StorageRefused(_too_large(max_bytes))
    kind = image_type(bytes(body[:8]))
    if kind is None:
        raise StorageRefused("storage answered something that is not a JPEG or PNG image: not passed on")
    return kind, bytes(body)


@dataclass(frozen=True)
class VideoPart:
    """Bytes `first` to `last` (inclusive) of a video of `total` bytes."""

    first: int
    last: int
    total: int
    body: bytes


def fetch_video_part(
    api: ResultsApi, url: str, storage: Storage, first: int, last: int | None, chunk: int = VIDEO_CHUNK_BYTES
) -> VideoPart:
    """Bytes `first` to `last` (None: to the end), at most `chunk` of them, of the MP4 at the presigned
    `url`; refused unless the object starts with an ISO BMFF `ftyp` box (read with its own small range)."""
    if not storage.serves(url):
        raise StorageRefused(
            f"the API redirected the video to {urlsplit(url).netloc or '?'}, not to the S3 endpoint the "
            f"viewer reads ({storage.describe()}; --aws-endpoint-url sets it): not followed"
        )
    head = _read_range(api, url, 0, 11)
    if head.body[4:8] != b"ftyp":
        raise StorageRefused("storage answered something that is not an MP4 video: not passed on")
    if first >= head.total:
        raise StorageRefused(f"the video has {head.total} bytes: nothing at {first}")
    last = min(head.total - 1, first + chunk - 1, last if last is not None else head.total - 1)
    return head if (first, last) == (0, 11) else _read_range(api, url, first, last)


def _read_range(api: ResultsApi, url: str, first: int, last: int) -> VideoPart:
    try:
        response = api.download(url, (first, last))
    except ApiError as error:
        raise StorageRefused(str(error)) from None
    with response:
        if response.status_code != 206:
            raise StorageRefused(f"the video could not be read (HTTP {response.status_code} from storage)")
        found = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if found is None:
            raise StorageRefused("storage answered a range without a valid Content-Range: not passed on")
        start, end, total = (int(value) for value in found.groups())
        body = bytearray()
        for piece in response.iter_content(_CHUNK_BYTES):
            body += piece
            if len(body) > last - first + 1:
                raise StorageRefused("storage answered more than the range asked for: not passed on")
    if (start, end) != (first, first + len(body) - 1):
        raise StorageRefused("storage answered another range than the one asked for: not passed on")
    return VideoPart(start, end, total, bytes(body))


def _too_large(max_bytes: int) -> str:
    return f"the annotated image is over the viewer's {max_bytes // (1024 * 1024)} MB limit: not passed on"


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:  # a port that is not a number
        return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
