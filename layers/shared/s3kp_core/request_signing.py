"""SigV4 signatures for HTTP requests to an AWS_IAM Lambda Function URL (the InferenceFunction's).

The signature is botocore's (`SigV4Auth`, service `lambda`, the function's region): the same code every
boto3 call is signed with. Signed: the host, the content type, the date and the session token; not the
hop-by-hop or client headers (Accept, Connection, Content-Length, User-Agent) that proxies and HTTP
clients may change on the way, nor X-Amzn-Trace-Id, which X-Ray adds per attempt.

The query string is sent as it is signed, percent-encoded per RFC 3986 (`%20`, not `+`): AWS rebuilds
the canonical query from what it receives, and a `+` would be read back as a different string.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

SERVICE = "lambda"
SIGNED_REQUEST_HEADERS = ("Content-Type",)  # besides Host, X-Amz-Date and X-Amz-Security-Token
SIGNATURE_HEADERS = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")


class Credentials(Protocol):
    """botocore's credentials (static or refreshable, as `boto3.Session().get_credentials()` returns)."""

    def get_frozen_credentials(self) -> Any: ...


def canonical_url(url: str) -> str:
    """`url` with its query string percent-encoded per RFC 3986, in the order given."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    return urlunsplit(parts._replace(query=urlencode(pairs, quote_via=quote, safe="-_.~")))


class RequestSigner:
    """Signs requests with the current credentials (read at each signature: a role's session rotates)."""

    def __init__(self, credentials: Credentials, region: str, service: str = SERVICE) -> None:
        if not region:
            raise ValueError("a SigV4 signature needs the endpoint's region")
        self._credentials = credentials
        self.region = region
        self.service = service

    def signature_headers(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """The headers to add to the request: Authorization, X-Amz-Date and, for temporary credentials,
        X-Amz-Security-Token. `url` must be the one sent (see `canonical_url`)."""
        present = {name.lower(): value for name, value in headers.items()}
        signed = {name: present[name.lower()] for name in SIGNED_REQUEST_HEADERS if name.lower() in present}
        request = AWSRequest(method=method, url=url, data=body, headers=signed)
        SigV4Auth(self._credentials.get_frozen_credentials(), self.service, self.region).add_auth(request)
        return {name: request.headers[name] for name in SIGNATURE_HEADERS if name in request.headers}
