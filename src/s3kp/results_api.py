"""A client of the results HTTP API, shared by `s3kp export` and `s3kp view`.

    ResultsApi(api_url, token=None)   .get(path, params) / .iter_results(filters) / .detail(id)

Authentication follows the API's modes: a loopback API (the local stack) gets no credentials; `token`
is sent as a bearer (the JWT mode), never over plain http to another machine; anything else is signed
with SigV4 for `execute-api` using the user's own AWS credentials, found by botocore as the AWS CLI finds
them (what awscurl does).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests

from s3kp.local.ports import is_loopback

DEFAULT_API_URL = "http://127.0.0.1:3000"
PAGE_LIMIT = 100  # the API's maximum page size
FRAMES_PAGE_LIMIT = 200  # the API's maximum page of a video's frames
# A listing longer than this many pages (10 million results at 100 a page) is taken for a broken or hostile
# API whose cursors never end, not for a table: the export stops with an error instead of running forever.
MAX_PAGES = 100_000
RESULT_ID = re.compile(r"^[0-9a-f]{32}$")
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")
FILTER_NAMES = ("status", "class", "prefix", "since", "until")


class InsecureTokenError(ValueError):
    """A bearer token would travel in clear text to another machine: a usage error, refused before any
    request is made."""


class ApiError(RuntimeError):
    """The API answered with an error, or could not be reached: one line for the user."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class ResultsApi:
    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        *,
        token: str | None = None,
        region: str | None = None,
        timeout: float = 30.0,
        pool_size: int = 8,
    ) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--api-url must be an http(s) URL, got {api_url!r}")
        if token and parts.scheme == "http" and not is_loopback(parts.hostname):
            # Anyone on the path could read the token and replay it: only https carries it off this machine.
            raise InsecureTokenError(
                f"--token is only sent over https to a host other than this machine, and {api_url!r} is "
                "plain http: use the API's https:// URL"
            )
        self.api_url = api_url.rstrip("/")
        self.auth_mode = "bearer" if token else "none" if is_loopback(parts.hostname) else "sigv4"
        self._token = token
        self._timeout = timeout
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._signer = _SigV4Signer(parts.hostname, region) if self.auth_mode == "sigv4" else None

    def close(self) -> None:
        self._session.close()

    def describe(self) -> str:
        how = {"none": "no auth", "bearer": "bearer token", "sigv4": "SigV4 (your AWS credentials)"}
        return f"{self.api_url} ({how[self.auth_mode]})"

    def get(self, path: str, params: Mapping[str, str] | None = None) -> ApiResponse:
        """GET `path` (e.g. `/results`) without following redirects; raises ApiError when unreachable."""
        url = self.api_url + path
        if params:
            url += "?" + urlencode(params)
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if self._signer is not None:
            headers.update(self._signer.headers(url))
        try:
            response = self._session.get(url, headers=headers, timeout=self._timeout, allow_redirects=False)
        except requests.RequestException as error:
            raise ApiError(f"cannot reach the results API at {self.api_url}: {_short(error)}") from None
        return ApiResponse(response.status_code, response.headers, response.content)

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        response = self.get(path, params)
        if response.status != 200:
            raise ApiError(f"GET {path}: HTTP {response.status}: {_message(response)}", response.status)
        return response.json()

    def iter_results(
        self, filters: Mapping[str, str], limit: int = PAGE_LIMIT, *, max_pages: int = MAX_PAGES
    ) -> Iterator[dict[str, Any]]:
        """Every listed result (summary shape), newest first, following `next_cursor` page by page.

        The API is not trusted to end its listing: a cursor it already gave (a cycle), a page with more
        items than asked for, or more than `max_pages` pages raise ApiError instead of looping forever or
        growing without bound. Seen cursors are kept as digests (32 bytes each, whatever their length).
        """
        params = {name: value for name, value in filters.items() if value}
        params["limit"] = str(limit)
        cursor: str | None = None
        seen: set[bytes] = set()
        for page_number in range(1, max_pages + 1):
            page = self.get_json("/results", params | ({"cursor": cursor} if cursor else {}))
            items = page.get("items") if isinstance(page, dict) else None
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise ApiError(f"GET /results: page {page_number} has no list of result objects")
            if len(items) > limit:
                raise ApiError(
                    f"GET /results: page {page_number} has {len(items)} items, more than the {limit} "
                    "asked for"
                )
            yield from items
            cursor = page.get("next_cursor")
            if not cursor:
                return
            digest = hashlib.sha256(str(cursor).encode()).digest()
            if digest in seen:
                raise ApiError(
                    f"GET /results: page {page_number} points back to a cursor already followed "
                    "(the listing loops): stopped"
                )
            seen.add(digest)
        raise ApiError(
            f"GET /results: more than {max_pages} pages ({max_pages * limit} results): stopped "
            "(narrow the export with --since/--until or --prefix)"
        )

    def detail(self, result_id: str) -> dict[str, Any]:
        if not RESULT_ID.match(result_id):
            raise ValueError(f"not a result id: {result_id!r}")
        return dict(self.get_json(f"/results/{result_id}"))

    def iter_frames(
        self, result_id: str, *, limit: int = FRAMES_PAGE_LIMIT, max_frames: int = 10_000_000
    ) -> Iterator[dict[str, Any]]:
        """A video's sampled frames in order (`GET /results/{id}/frames`, page by page). As for listings,
        the API is not trusted to end: an offset that does not move forward, a page over `limit`, or more
        than `max_frames` frames raise ApiError."""
        if not RESULT_ID.match(result_id):
            raise ValueError(f"not a result id: {result_id!r}")
        offset: int | None = 0
        served = 0
        while offset is not None:
            page = self.get_json(f"/results/{result_id}/frames", {"offset": str(offset), "limit": str(limit)})
            items = page.get("items") if isinstance(page, dict) else None
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise ApiError(f"GET /results/{result_id}/frames: no list of frames at offset {offset}")
            if len(items) > limit:
                raise ApiError(f"GET /results/{result_id}/frames: {len(items)} frames, more than {limit}")
            served += len(items)
            if served > max_frames:
                raise ApiError(f"GET /results/{result_id}/frames: more than {max_frames} frames")
            yield from items
            following = page.get("next_offset")
            if following is not None and (not isinstance(following, int) or following <= offset):
                raise ApiError(f"GET /results/{result_id}/frames: next_offset {following!r} does not advance")
            offset = following

    def download(self, url: str, byte_range: tuple[int, int] | None = None) -> requests.Response:
        """GET a presigned URL (it carries its own signature: no auth header must be added), streamed, and
        without following a redirect (the caller checked where this URL points, not where it might send);
        `byte_range` (first, last), inclusive, asks for that part only."""
        headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else None
        try:
            return self._session.get(
                url, timeout=self._timeout, stream=True, allow_redirects=False, headers=headers
            )
        except requests.RequestException as error:
            raise ApiError(f"cannot download {urlsplit(url).netloc}: {_short(error)}") from None


class _SigV4Signer:
    """Signs GETs for API Gateway (`execute-api`) with the default botocore credential chain."""

    def __init__(self, host: str, region: str | None) -> None:
        import botocore.session

        session = botocore.session.get_session()
        credentials = session.get_credentials()
        if credentials is None:
            raise ApiError(
                "the API is not on loopback, so requests are signed with your AWS credentials, "
                "but none were found (configure them as for the AWS CLI, or pass --token for a JWT API)"
            )
        match = _EXECUTE_API_HOST.match(host)
        self._region = region or (match.group(1) if match else None) or session.get_config_variable("region")
        if not self._region:
            raise ApiError(f"cannot tell the AWS region of {host}: pass --region")
        self._credentials = credentials

    def headers(self, url: str) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method="GET", url=url)
        SigV4Auth(self._credentials.get_frozen_credentials(), "execute-api", self._region).add_auth(request)
        return {name: value for name, value in request.headers.items() if name.lower() != "host"}


def _message(response: ApiResponse) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.body[:200].decode("utf-8", "replace")
    return str(body.get("message", body)) if isinstance(body, dict) else str(body)[:200]


def _short(error: BaseException) -> str:
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.ConnectionError):
        return "connection failed (is it running? `s3kp up` starts the local stack)"
    text = str(error)
    return text if len(text) < 200 else text[:200] + "…"
