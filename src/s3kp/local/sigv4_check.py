"""Checking a received request's SigV4 signature, as an AWS_IAM Lambda Function URL does.

The local Function URL (`function_url.FunctionUrlBridge`) answers 403 unless the request is signed for
service `lambda` in the stack's region with the local credentials, within AWS's 5 minutes of clock skew,
and the signature is the one botocore computes over the received request: its method, path and query
string, the headers it lists as signed, and the body's SHA-256. A request changed after signing (another
body, path, query value or signed header) fails as it would in AWS.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

MAX_SKEW = dt.timedelta(minutes=5)
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/\s]+)/(?P<date>\d{8})/(?P<region>[^/\s]+)/(?P<service>[^/\s]+)"
    r"/aws4_request, ?SignedHeaders=(?P<headers>[a-z0-9;-]+), ?Signature=(?P<signature>[0-9a-f]{64})"
)


@dataclass(frozen=True)
class ExpectedSigner:
    """Who may call: the local credentials, for this region and service."""

    credentials: ReadOnlyCredentials
    region: str
    service: str = "lambda"


class SignatureRejected(Exception):
    """Why the request is refused (for the local log; the caller gets AWS's plain 403)."""


def check_signature(
    signer: ExpectedSigner,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: dt.datetime | None = None,
) -> None:
    """Raise SignatureRejected unless the request (`target` = path and query string, as received; header
    names in any case) carries a valid signature by `signer`."""
    received = {name.lower(): value for name, value in headers.items()}
    match = _AUTHORIZATION.fullmatch((received.get("authorization") or "").strip())
    if match is None:
        raise SignatureRejected("no SigV4 Authorization header (an unsigned request)")
    if match["key"] != signer.credentials.access_key:
        raise SignatureRejected("signed with other credentials")
    if (match["region"], match["service"]) != (signer.region, signer.service):
        raise SignatureRejected(f"signed for {match['service']} in {match['region']}")
    signed_names = match["headers"].split(";")
    if not {"host", "x-amz-date"} <= set(signed_names):
        raise SignatureRejected("host and x-amz-date must be signed")
    if any(name not in received for name in signed_names):
        raise SignatureRejected("a signed header is missing from the request")
    timestamp = received["x-amz-date"]
    try:
        moment = dt.datetime.strptime(timestamp, SIGV4_TIMESTAMP).replace(tzinfo=dt.UTC)
    except ValueError:
        raise SignatureRejected("X-Amz-Date is not a SigV4 timestamp") from None
    if timestamp[:8] != match["date"]:
        raise SignatureRejected("the credential scope's date is not X-Amz-Date's")
    if abs((now or dt.datetime.now(dt.UTC)) - moment) > MAX_SKEW:
        raise SignatureRejected("the signature has expired (or is not yet valid)")
    if signer.credentials.token and received.get("x-amz-security-token") != signer.credentials.token:
        raise SignatureRejected("the session token is missing or not the credentials'")
    expected = _signature(
        signer, method, target, {name: received[name] for name in signed_names}, body, timestamp
    )
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureRejected("the signature does not match the request")


def _signature(
    signer: ExpectedSigner, method: str, target: str, signed: dict[str, str], body: bytes, timestamp: str
) -> str:
    """botocore's signature of the request at `timestamp`, over exactly the headers it says it signed."""
    request = AWSRequest(method=method, url=f"http://{signed['host']}{target}", data=body, headers=signed)
    request.context["timestamp"] = timestamp
    auth = SigV4Auth(signer.credentials, signer.service, signer.region)
    canonical = auth.canonical_request(request)
    return str(auth.signature(auth.string_to_sign(request, canonical), request))
