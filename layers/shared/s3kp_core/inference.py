"""The HTTP client for a Roboflow-compatible keypoint endpoint (the hosted API's v0 route; the contract,
from the hosted API's documentation and its official clients, is summarised in docs/ingest-domain.md).
It implements `s3kp_core.predictor.Predictor`; the response's wire shape is in `inference_wire`.

`POST {base_url}/{model_id}?api_key=…&confidence=…&overlap=…&format=json[&classes=a,b]`, body = the
base64 of a JPEG, `Content-Type: application/x-www-form-urlencoded` (what roboflow-python sends).

Retry policy: timeouts, connection errors, 408, 429, 500/502/503/504 and a 200 that breaks the contract
(not JSON, or JSON without `predictions`: a misbehaving gateway's answer, not the image's fault) are
retried with exponential backoff and full jitter (429/503 honour `Retry-After`, capped), bounded by
`max_attempts` and by the caller's deadline. A refused connection is not retried within the call: nothing
listens there, so more attempts would only add to the requests a down endpoint sees; the message waits and
the circuit breaker probes instead. Exhausted retries raise `EndpointUnavailable` (code
`inference_bad_response` when the last answer broke the contract, else `inference_unavailable`); so do
401/402/403 at once (`inference_unauthorized`: a wrong, rotated or exhausted key is the operator's to fix,
and the upload must still be waiting then). Any other 4xx is the request's fault: `PermanentError`.

Errors carry a short sentence for people (stored on the result: no URL, no library internals, e.g.
"inference endpoint unreachable: connection refused (4 attempts)") and the technical detail, redacted,
for the log.

Authentication is one of two, chosen by `InferenceSettings.auth`:

- `api_key` (a Roboflow-compatible endpoint): the API key never leaves this module in clear: it is
  registered with `s3kp_core.redact`, and it is added to the query string only inside the transport
  adapter (`_KeyedAdapter`), below `Session.request`, where the X-Ray SDK's `requests` patch records the
  URL and any exception. The adapter also redacts the exceptions it raises, so no trace document, log
  line or error message ever carries the key.
- `aws_iam` (the stack's own InferenceFunction behind a Function URL with AuthType AWS_IAM): no key; each
  attempt is signed with SigV4 (`s3kp_core.request_signing`, the function's role credentials) by
  `_SigningAdapter`, at the same depth: the signature headers are added to a copy of the request as it is
  sent, so neither what tracers record nor the response's `request` carries them, and each retry gets a
  fresh signature (SigV4 dates expire after 5 minutes).
"""

from __future__ import annotations

import base64
import io
import json
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import requests
from PIL import Image
from requests.adapters import HTTPAdapter

from s3kp_core import errors
from s3kp_core.errors import EndpointUnavailable, PermanentError
from s3kp_core.inference_wire import ParsedResponse, parse_response
from s3kp_core.predictor import InferenceResult
from s3kp_core.redact import redact, register_secret
from s3kp_core.request_signing import RequestSigner, canonical_url

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# The account's, not the request's: a wrong or rotated key (401), credits (402), scope or quota (403).
UNAUTHORIZED_STATUSES = {
    401: "refused the API key",
    402: "refused the request: out of credits",
    403: "refused the API key: no access, or the quota is used up",
}
# The same statuses from an AWS_IAM Function URL: the role's permission or the signature.
UNAUTHORIZED_STATUSES_IAM = {
    401: "refused the request's signature",
    402: "refused the request: out of credits",
    403: "refused the signed request: no lambda:InvokeFunctionUrl permission, or a bad signature",
}
InferenceAuth = Literal["api_key", "aws_iam"]
_SERVER_MESSAGE_LIMIT = 300  # characters of the server's message kept in an error's detail
_STORED_SERVER_MESSAGE_LIMIT = 120  # ... and in the short message a rejected request stores
_URL = re.compile(r"\b\w+://\S+")


@dataclass(frozen=True, kw_only=True)
class InferenceSettings:
    """Derived from the ingest function's validated settings, where every default is declared
    (`IngestSettings.inference_settings()`); the backoff is the client's own, not a setting."""

    base_url: str
    model_id: str  # "project/version"
    api_key: str | None  # with `auth` api_key; None with aws_iam
    confidence: float  # 0..1
    overlap: float  # 0..1, the NMS IoU threshold
    classes: tuple[str, ...]  # empty: every class
    connect_timeout: float
    read_timeout: float
    max_attempts: int
    # Pooled connections to the endpoint: at least the number of threads calling `predict` at once (the
    # ingest function's RECORD_CONCURRENCY), or urllib3 opens and discards an extra one per call.
    max_connections: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    auth: InferenceAuth = "api_key"

    def __post_init__(self) -> None:
        if self.auth == "api_key" and not self.api_key:
            raise ValueError("auth api_key needs an api_key")
        for name in ("confidence", "overlap"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be a fraction between 0 and 1, got {value}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections}")
        if not self.model_id.strip("/"):
            raise ValueError("model_id must be 'project/version'")

    @property
    def endpoint(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.model_id.strip('/')}"

    def __repr__(self) -> str:  # the dataclass default would print the key
        key = "'***'" if self.api_key else "None"
        shown = f"endpoint={self.endpoint!r}, confidence={self.confidence}, auth={self.auth!r}, api_key={key}"
        return f"InferenceSettings({shown})"


@dataclass(frozen=True)
class _RetryableFailure:
    summary: str  # one short sentence for people, without the attempt count
    detail: str  # what happened, redacted: for the log
    code: str = errors.INFERENCE_UNAVAILABLE
    retry_after: float | None = None  # seconds the server asked us to wait
    rate_limited: bool = False  # a 429: the endpoint is up
    # Another attempt within this call would only knock again on a closed door (nothing listens: a refused
    # connection); the message waits and the circuit breaker probes instead (docs/ingest.md).
    final: bool = False


class InferenceClient:
    """One pooled HTTP session to one model; `predict` is safe to call for many images in a row, and from
    several threads at once (up to `max_connections` share the pool without opening extra connections).

    Threads share the session safely because after construction it is only read: the adapters are mounted
    here, redirects are off, no auth or hooks; urllib3's pool and the cookie jar (http.cookiejar) take their
    own locks. (requests does not document Session's thread safety, psf/requests#2766; the concern raised
    there, a redirect cache, is gone and concerned redirects, which this client never follows.)
    """

    def __init__(
        self,
        settings: InferenceSettings,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float], float] | None = None,
        signer: RequestSigner | None = None,
    ) -> None:
        """`jitter(limit)` returns a delay in [0, limit] (default: uniform, i.e. full jitter). `signer`:
        required with `auth` aws_iam (the role's credentials and the endpoint's region)."""
        self.settings = settings
        self._session = session or _pooled_session(settings.max_connections)
        # Every request to the endpoint goes through the adapter that authenticates it at send time.
        adapter: HTTPAdapter
        if settings.auth == "aws_iam":
            if signer is None:
                raise ValueError("auth aws_iam needs a request signer")
            adapter = _SigningAdapter(signer, settings.max_connections)
            self._unauthorized = UNAUTHORIZED_STATUSES_IAM
        else:
            assert settings.api_key is not None  # InferenceSettings checks it
            register_secret(settings.api_key)
            adapter = _KeyedAdapter(settings.api_key, settings.max_connections)
            self._unauthorized = UNAUTHORIZED_STATUSES
        self._session.mount(settings.endpoint, adapter)
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter or (lambda limit: random.uniform(0, limit))

    def close(self) -> None:
        self._session.close()

    def predict(
        self,
        jpeg: bytes,
        *,
        deadline: float | None = None,
        max_attempts: int | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> InferenceResult:
        """Predictions for one JPEG, retrying transient failures.

        `deadline`: a `clock()` value after which no new attempt starts (e.g. the Lambda's remaining time
        minus a safety margin); each attempt's timeouts are also shortened to end by then.
        `max_attempts`: fewer attempts than the settings' (a circuit breaker's probe makes one).
        `give_up`: asked after a failed attempt; True ends the retries (a parallel call has just opened
        the circuit: more attempts would only add to a failing endpoint's load).
        Raises PermanentError (the request was rejected) or EndpointUnavailable (the endpoint's fault).
        """
        started = self._clock()
        body = base64.b64encode(jpeg)
        limit = min(max_attempts or self.settings.max_attempts, self.settings.max_attempts)
        failure = _RetryableFailure(
            "no time left to call the inference endpoint", "the deadline had passed before the first attempt"
        )
        attempts = 0
        detail_suffix = ""
        for attempt in range(1, limit + 1):
            timeout = self._timeout(deadline)
            if timeout is None:
                break
            attempts = attempt
            outcome = self._attempt(body, timeout)
            if isinstance(outcome, ParsedResponse):
                return self._result(outcome, jpeg, len(body), attempts, started)
            failure = outcome
            if attempt == limit or outcome.final:
                break
            if give_up is not None and give_up():
                detail_suffix = "; stopped retrying: another call found the endpoint failing"
                break
            delay = self._backoff(attempt, outcome.retry_after)
            if deadline is not None and self._clock() + delay >= deadline:
                detail_suffix = "; no time left for another attempt"
                break
            self._sleep(delay)
        counted = f" ({attempts} attempt{'' if attempts == 1 else 's'})" if attempts else ""
        raise EndpointUnavailable(
            failure.code,
            failure.summary + counted,
            detail=f"{self.settings.endpoint} failed after {attempts} attempt(s): {failure.detail}"
            + detail_suffix,
            retry_in=failure.retry_after,
            rate_limited=failure.rate_limited,
        )

    def _timeout(self, deadline: float | None) -> tuple[float, float] | None:
        connect, read = self.settings.connect_timeout, self.settings.read_timeout
        if deadline is None:
            return connect, read
        remaining = deadline - self._clock()
        if remaining <= 0:
            return None
        return min(connect, remaining), min(read, remaining)

    def _attempt(self, body: bytes, timeout: tuple[float, float]) -> ParsedResponse | _RetryableFailure:
        """The parsed response, or why this attempt failed when another one may succeed."""
        try:
            response = self._session.post(
                self.settings.endpoint,
                params=self._query(),
                data=body,
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
                timeout=timeout,
                # A redirect would turn the POST into a GET and could carry the key to another host.
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            return _RetryableFailure(
                "inference endpoint did not answer in time", f"timed out ({type(exc).__name__}: {exc})"
            )
        except requests.ConnectionError as exc:
            text = redact(str(exc))
            cause = connection_failure_cause(text)
            return _RetryableFailure(
                f"inference endpoint unreachable: {cause}",
                f"connection failed: {text}",
                final=cause == REFUSED,
            )
        status = response.status_code
        if status == 200:
            try:
                payload = response.json()
            except ValueError:
                # A proxy's HTML page or a cut-off body: the endpoint's fault, worth another try.
                return _RetryableFailure(
                    "inference endpoint answered with a body that is not JSON",
                    f"HTTP 200 with a body that is not JSON: {_snippet(response.text)}",
                    errors.INFERENCE_BAD_RESPONSE,
                )
            try:
                return parse_response(payload)
            except PermanentError as error:
                # A 200 without the contract's shape comes from the endpoint (or a gateway in front of
                # it), never from the image: retried like a 5xx, recorded only once retries run out.
                return _RetryableFailure(
                    "inference endpoint's answer breaks the response contract",
                    f"HTTP 200 {error.message}",
                    errors.INFERENCE_BAD_RESPONSE,
                )
        server_message = _server_message(response)
        detail = f"{self.settings.endpoint} answered HTTP {status}: {server_message}"
        if status in RETRYABLE_STATUSES:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            summary = (
                "inference endpoint is rate-limiting requests (HTTP 429)"
                if status == 429
                else f"inference endpoint unavailable (HTTP {status})"
            )
            return _RetryableFailure(summary, detail, retry_after=retry_after, rate_limited=status == 429)
        if status in self._unauthorized:
            # Not retried within this invocation (a key or a role's policy does not fix itself in seconds):
            # the message waits.
            raise EndpointUnavailable(
                errors.INFERENCE_UNAUTHORIZED,
                f"inference endpoint {self._unauthorized[status]} (HTTP {status})",
                detail=detail,
            )
        raise PermanentError(
            errors.INFERENCE_REJECTED,
            f"inference endpoint rejected the request (HTTP {status}): {_for_people(server_message)}",
            detail=detail,
        )

    def _query(self) -> dict[str, str]:
        """The query string without the key (`_KeyedAdapter` adds it at send time)."""
        query = {
            "confidence": _as_threshold(self.settings.confidence),
            "overlap": _as_threshold(self.settings.overlap),
            "format": "json",
        }
        if self.settings.classes:
            query["classes"] = ",".join(self.settings.classes)
        return query

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter: a uniform delay up to base * 2^(attempt-1), capped; Retry-After wins when given."""
        if retry_after is not None:
            return min(retry_after, self.settings.backoff_cap)
        ceiling = min(self.settings.backoff_cap, self.settings.backoff_base * 2.0 ** (attempt - 1))
        return min(ceiling, max(0.0, self._jitter(ceiling)))

    def _result(
        self, parsed: ParsedResponse, jpeg: bytes, bytes_sent: int, attempts: int, started: float
    ) -> InferenceResult:
        width, height = parsed.image_width, parsed.image_height
        if width is None or height is None:
            width, height = _jpeg_size(jpeg)
        return InferenceResult(
            predictions=parsed.predictions,
            image_width=width,
            image_height=height,
            inference_id=parsed.inference_id,
            server_time_ms=parsed.server_time_ms,
            bytes_sent=bytes_sent,
            attempts=attempts,
            elapsed_ms=(self._clock() - started) * 1000,
        )


# --- helpers ---------------------------------------------------------------------------------------------


def _pooled_session(connections: int) -> requests.Session:
    session = requests.Session()
    # Retries are ours (they need the deadline and jitter); the adapter only pools connections.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=connections, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _KeyedAdapter(HTTPAdapter):
    """Adds `api_key` to the query string of each request as it is sent, and redacts what it raises.

    Why an adapter: the X-Ray SDK patches `Session.request` (it records the URL passed in and the text of
    any exception raised out of it), and urllib3 puts the full URL, query string included, into its
    connection errors. Below `Session.request` is the only place where the key can be added without the
    caller's URL carrying it, and where an exception can be redacted before any recorder sees it.
    """

    def __init__(self, api_key: str, connections: int) -> None:
        super().__init__(pool_connections=1, pool_maxsize=connections, max_retries=0)
        self._api_key = api_key

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        keyed = request.copy()
        separator = "&" if urlsplit(request.url or "").query else "?"
        keyed.url = f"{request.url}{separator}{urlencode({'api_key': self._api_key})}"
        try:
            response = super().send(keyed, *args, **kwargs)
        except requests.RequestException as error:
            raise _redacted(error, request) from None
        # What callers (and tracers) see of the exchange is the URL without the key.
        response.url = request.url or ""
        response.request = request
        return response


class _SigningAdapter(HTTPAdapter):
    """Signs each request with SigV4 as it is sent (a fresh date per attempt); what callers and tracers see
    of the exchange is the unsigned request. The query string is re-encoded as it is signed
    (`request_signing.canonical_url`); the redaction of what it raises is `_KeyedAdapter`'s."""

    def __init__(self, signer: RequestSigner, connections: int) -> None:
        super().__init__(pool_connections=1, pool_maxsize=connections, max_retries=0)
        self._signer = signer

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        signed = request.copy()
        signed.url = canonical_url(request.url or "")
        body = request.body if isinstance(request.body, bytes) else str(request.body or "").encode()
        headers = {name: str(value) for name, value in request.headers.items()}
        signed.headers.update(
            self._signer.signature_headers(request.method or "POST", signed.url, headers, body)
        )
        try:
            response = super().send(signed, *args, **kwargs)
        except requests.RequestException as error:
            raise _redacted(error, request) from None
        response.request = request
        return response


def _redacted(
    error: requests.RequestException, request: requests.PreparedRequest
) -> requests.RequestException:
    """The same kind of exception, with the key masked in its text and the key-less request attached."""
    try:
        clean = type(error)(redact(str(error)), request=request)
    except TypeError:  # an exception class with another signature: keep the class's meaning generic
        clean = requests.ConnectionError(redact(str(error)), request=request)
    return clean


def _as_threshold(fraction: float) -> str:
    # The endpoint reads values >= 1 as percentages: 1.0 would mean 1 %, so a certainty is sent as 100.
    return "100" if fraction >= 1 else f"{fraction:g}"


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP-date (RFC 9110); None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _server_message(response: requests.Response) -> str:
    """The server's `message` (else `detail`, else the raw body), redacted and shortened."""
    try:
        payload: Any = response.json()
    except ValueError:
        return _snippet(response.text) or response.reason or "no details"
    if isinstance(payload, dict):
        for key in ("message", "detail", "error"):
            if payload.get(key):
                value = payload[key]
                text = value if isinstance(value, str) else json.dumps(value)
                return _snippet(text)
    return _snippet(json.dumps(payload))


REFUSED = "connection refused"


def connection_failure_cause(text: str) -> str:
    """What a connection error's text (urllib3's, wrapped by requests) says went wrong, in a few words."""
    lowered = text.lower()
    causes = (
        (("connection refused", "errno 111", "errno 61"), REFUSED),
        (
            ("name or service not known", "nameresolutionerror", "temporary failure in name resolution",
             "nodename nor servname", "getaddrinfo failed", "no address associated"),
            "host name not found",
        ),
        (("connection reset", "errno 104", "econnreset"), "connection reset"),
        (("remotedisconnected", "connection aborted", "closed connection without response"),
         "connection closed without an answer"),
        (("ssl", "certificate", "tls"), "TLS handshake failed"),
        (("network is unreachable", "no route to host", "errno 101", "errno 113"), "network unreachable"),
        (("proxy",), "proxy error"),
        (("timed out", "timeout"), "connection timed out"),
    )  # fmt: skip
    for needles, cause in causes:
        if any(needle in lowered for needle in needles):
            return cause
    return "connection failed"


def _for_people(server_message: str) -> str:
    """The server's message as a stored reason may show it: no URLs, one short line."""
    text = _URL.sub("<url>", server_message)
    limit = _STORED_SERVER_MESSAGE_LIMIT
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _snippet(text: str) -> str:
    text = " ".join(redact(text).split())
    return text if len(text) <= _SERVER_MESSAGE_LIMIT else text[: _SERVER_MESSAGE_LIMIT - 1] + "…"


def _jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """The size in a JPEG's header (no pixels decoded); (0, 0) if it is not one."""
    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            return image.size
    except (OSError, ValueError):
        return 0, 0
