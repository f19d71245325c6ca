"""Fetch the image named by `image=<url>`: http(s) only, bounded in size and time, images only.

Blocking (requests); the app runs it in a worker thread. Error messages name the host, not the whole URL,
which may carry a token of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from s3kp.model_server.errors import BadRequest, InvalidImage, PayloadTooLarge

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


def fetch_image(url: str, limits: FetchLimits) -> bytes:
    """The body of `url`, refusing other schemes, error statuses, non-image types and oversized files."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _ALLOWED_SCHEMES or not parts.hostname:
        raise BadRequest(f"image URL must be http:// or https:// with a host (got scheme {parts.scheme!r})")
    where = parts.hostname
    with requests.Session() as session:
        session.max_redirects = limits.max_redirects
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
