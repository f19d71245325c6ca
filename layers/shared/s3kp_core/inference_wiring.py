"""The guarded inference client, built one way for both functions that infer (ingest and video).

A function's predictor is the endpoint's HTTP client (`InferenceClient`: the API key, or SigV4 signatures
with the function's role for the builtin backend's AWS_IAM Function URL) behind the endpoint's circuit
breaker, whose state is one item of the idempotency table. Both functions name the endpoint the same way,
so they share that item: an outage seen by either holds both back.

Each function keeps one `GuardedInference` for the life of its container (in its `*_dependencies`
module), and with it what is built once per container: the client, rebuilt only when its settings change
(the cached API key rotates), and the circuit. Nothing is built before it is first asked for, so the
function's import pays only for the code. What goes in is plain values (the `InferenceSettings` and
`CircuitSettings` a function derives from its own settings) and the function's boto3 session and DynamoDB
resource, through their cached getters: this layer knows no function's settings class.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

import msgspec

from s3kp_core.circuit import CircuitBreaker, GuardedPredictor, StructuredLog
from s3kp_core.circuit_dynamodb import DynamoDBCircuitStore
from s3kp_core.inference import InferenceClient, InferenceSettings
from s3kp_core.request_signing import Credentials, RequestSigner
from s3kp_core.settings import ConfigurationError


class CircuitSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The endpoint's circuit: which endpoint, where its state lives and how it paces probes."""

    endpoint: str  # the endpoint's URL without its key (`{INFERENCE_URL}/{MODEL_ID}`): names the state item
    table: str  # the idempotency table, which holds the state item
    probe_interval: float  # CIRCUIT_PROBE_SECONDS
    probe_lease: float  # the longest one attempt can take: the connect and read timeouts


class AwsSession(Protocol):
    """What signing needs of the function's boto3 session: its credentials (None when it has none) and
    its region, the stack's, where the InferenceFunction is."""

    @property
    def region_name(self) -> str: ...

    def get_credentials(self) -> Credentials | None: ...


class GuardedInference:
    """One function's guarded predictor and its parts, each built on first use and then kept."""

    def __init__(
        self,
        session: Callable[[], AwsSession],
        dynamodb_resource: Callable[[], Any],
        *,
        log: StructuredLog,
    ) -> None:
        """`session`, `dynamodb_resource`: the function's cached getters (one session for every client);
        `log`: Powertools' logger, for the circuit's opening and closing."""
        self._session = session
        self._dynamodb_resource = dynamodb_resource
        self._log = log
        # One of each, as before this module: a new API key replaces the client (and its pooled session).
        self._client = lru_cache(maxsize=1)(self._build_client)
        self._breaker = lru_cache(maxsize=1)(self._build_breaker)

    def predictor(self, inference: InferenceSettings, circuit: CircuitSettings) -> GuardedPredictor:
        """The predictor a function's collaborators get: cheap to make per call, its parts are kept."""
        return GuardedPredictor(self.client(inference), self.breaker(circuit))

    def client(self, settings: InferenceSettings) -> InferenceClient:
        """One pooled HTTP session per container, rebuilt only when `settings` change (a rotated key)."""
        return self._client(settings)

    def breaker(self, settings: CircuitSettings) -> CircuitBreaker:
        """The endpoint's circuit, shared by every invocation through one item of the idempotency table."""
        return self._breaker(settings)

    def cache_clear(self) -> None:
        """Forget what was built (tests: a client built under another test's environment)."""
        self._client.cache_clear()
        self._breaker.cache_clear()

    def _build_client(self, settings: InferenceSettings) -> InferenceClient:
        """With auth aws_iam, requests are signed with the function's role credentials (read at each
        signature: they rotate) for the function's region."""
        signer = None
        if settings.auth == "aws_iam":
            session = self._session()
            credentials = session.get_credentials()
            if credentials is None:
                raise ConfigurationError(
                    "INFERENCE_AUTH aws_iam: no AWS credentials to sign the requests with"
                )
            signer = RequestSigner(credentials, session.region_name)
        return InferenceClient(settings, signer=signer)

    def _build_breaker(self, settings: CircuitSettings) -> CircuitBreaker:
        table = self._dynamodb_resource().Table(settings.table)
        return CircuitBreaker(
            DynamoDBCircuitStore(table, settings.endpoint),
            endpoint=settings.endpoint,
            probe_interval=settings.probe_interval,
            probe_lease=settings.probe_lease,
            log=self._log,
        )
