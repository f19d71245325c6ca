"""A circuit breaker in front of the inference endpoint, its state shared by every invocation.

While the endpoint is down (refused connections, timeouts, 5xx, answers that break the contract, a key it
refuses), calling it from every message of every invocation would hammer it and learn nothing new. So:

- **closed** (no state stored): calls go through. A call that fails for the endpoint's reasons (the
  client's own retries exhausted, or a refused key) **opens** the circuit: `retry_at` = now + the probe
  interval, and the failure's short reason is kept.
  Calls admitted before that in this process (records processed in parallel) stop at their next retry
  (`failed_since`) rather than spend the rest of their attempts on an endpoint known to be failing.
- **open**, before `retry_at`: no call; the caller is told how long to wait (`EndpointUnavailable` with
  `calls_made=False`), and the ingest handler defers the message (sqs_retries) without spending a receive.
- **open**, after `retry_at`: **half-open**. One caller in the whole stack wins a conditional write (the
  probe lease) and makes a single attempt with its own image. Success closes the circuit (that image is
  processed as usual); failure moves `retry_at` one interval on. Everyone else keeps waiting.

So while the endpoint is away the stack sends it one request per probe interval in total, whatever the
number of messages, containers or retries. A 429 does not open the circuit: the endpoint is up and asks
for fewer requests; that message waits on its own (`rate_limited`), as the client's `Retry-After`
handling already spaces requests.

Why our own: a per-container breaker would let every concurrent container probe, and pybreaker shares its
state only through Redis. Powertools' circuit breaker (alpha in 3.31, GA in 3.34: `utilities.circuit_breaker`
in the 3.37 we pin) does keep its state in DynamoDB, and one item of the idempotency table could serve both
functions (`key_attr="id"`, one name); with thresholds of 1 and a 429 raised as its own type it opens, probes
and closes as we do. It was tried against moto and kept out for what the deferrals and operators rely on:
- a failed probe, or a late failure in another container, rewrites `opened_at` (unconditional writes): how
  long the endpoint has been failing (`open_for`: the deferral spread, `CircuitOpenSeconds`, the alarm) is
  lost, and every such container reports the opening again;
- the probe's lease is the probe interval (15 s), shorter than one attempt (connect + read: 23 s), so a
  slow probe lets a second one go; and the probe is not told it is one (ours makes one attempt, not four);
- opening and claiming the probe put the whole item, so it keeps no reason for the messages it defers;
  reads are eventually consistent and cached for 5 s (0 s is configurable): ours, one consistent GetItem.
The state is one item of the idempotency table (the `CircuitStore` port; `circuit_dynamodb` implements it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from s3kp_core.errors import EndpointUnavailable
from s3kp_core.predictor import InferenceResult, Predictor


class CircuitState(msgspec.Struct, frozen=True, kw_only=True):
    """An open circuit: since when, when the next probe may go, and why it opened (short, redacted)."""

    opened_at: float  # epoch seconds
    retry_at: float
    reason_code: str
    reason: str


class CircuitStore(Protocol):
    """Where the state lives, shared by every invocation; every method is one atomic operation."""

    def read(self, now: float) -> CircuitState | None:
        """The open circuit, or None when closed (no state, or a state past its expiry)."""
        ...

    def trip(self, *, now: float, retry_at: float, reason_code: str, reason: str) -> CircuitState | None:
        """Open (or keep open) the circuit until `retry_at`; returns the state before: None if it was
        closed, so exactly one caller sees the transition."""
        ...

    def claim_probe(self, *, now: float, until: float) -> bool:
        """True for the one caller allowed to probe now (the circuit is open, `retry_at` has passed and no
        other probe's lease runs until after `now`); the lease lasts until `until`."""
        ...

    def reset(self) -> CircuitState | None:
        """Close the circuit; returns the state it had (None: it was closed already)."""
        ...


class StructuredLog(Protocol):
    """Powertools' `Logger`, passed in (this module creates no Powertools objects)."""

    def info(self, msg: str, **fields: Any) -> None: ...
    def warning(self, msg: str, **fields: Any) -> None: ...


@dataclass(frozen=True)
class Admission:
    """What `admit` decided for one call."""

    allowed: bool
    probe: bool = False  # the one half-open attempt
    state: CircuitState | None = None  # the open circuit this decision was made against
    retry_in: float = 0.0  # denied: seconds until the next probe may go
    at: float = 0.0  # when it was decided (the breaker's clock)


class CircuitBreaker:
    def __init__(
        self,
        store: CircuitStore,
        *,
        endpoint: str,
        probe_interval: float,
        probe_lease: float,
        log: StructuredLog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`endpoint`: the URL without its key (for log lines); `probe_lease`: the longest one attempt can
        take (connect + read timeouts), so a probe that dies mid-call does not block the next one."""
        self._store = store
        self._endpoint = endpoint
        self._probe_interval = probe_interval
        self._probe_lease = probe_lease
        self._log = log
        self._clock = clock
        # When a call in this process last failed for the endpoint's reasons (one float, replaced whole:
        # safe to share between the threads of one container without a lock).
        self._failed_here: float | None = None

    def admit(self) -> Admission:
        now = self._clock()
        state = self._store.read(now)
        if state is None:
            return Admission(allowed=True, at=now)
        if now >= state.retry_at and self._store.claim_probe(now=now, until=now + self._probe_lease):
            self._log.info("inference circuit half-open: probing the endpoint", endpoint=self._endpoint)
            return Admission(allowed=True, probe=True, state=state, at=now)
        retry_in = state.retry_at - now if state.retry_at > now else self._probe_interval
        return Admission(allowed=False, state=state, retry_in=retry_in, at=now)

    def failed_since(self, admission: Admission) -> bool:
        """Whether another call of this process has failed for the endpoint's reasons (and so opened the
        circuit, or kept it open) since `admission`: the call it admitted had better stop retrying.
        Records processed in parallel are all admitted while the circuit is still closed; without this,
        each would spend its whole retry budget on an endpoint already known to be down."""
        failed = self._failed_here
        return failed is not None and failed >= admission.at

    def succeeded(self, admission: Admission) -> None:
        """A call admitted by `admission` got an answer: a probe's success closes the circuit."""
        if not admission.probe:
            return  # closed when admitted: nothing to write on the hot path
        previous = self._store.reset()
        if previous is not None:
            self._log.info(
                "inference circuit closed: the endpoint answers again",
                endpoint=self._endpoint,
                open_for_seconds=round(self._clock() - previous.opened_at, 1),
            )

    def failed(self, admission: Admission, error: EndpointUnavailable) -> CircuitState:
        """A call admitted by `admission` failed for the endpoint's reasons: open, or keep open."""
        now = self._clock()
        self._failed_here = now
        retry_at = now + self._probe_interval
        previous = self._store.trip(now=now, retry_at=retry_at, reason_code=error.code, reason=error.message)
        state = CircuitState(
            opened_at=previous.opened_at if previous is not None else now,
            retry_at=retry_at,
            reason_code=error.code,
            reason=error.message,
        )
        if previous is None:
            self._log.warning(
                "inference circuit opened: the endpoint is failing; messages wait for it",
                endpoint=self._endpoint,
                reason_code=error.code,
                reason=error.message,
                answer=error.detail,
                next_probe_in_seconds=self._probe_interval,
            )
        elif admission.probe:
            self._log.info(
                "inference circuit stays open: the probe failed",
                endpoint=self._endpoint,
                reason_code=error.code,
                answer=error.detail,
                open_for_seconds=round(now - state.opened_at, 1),
            )
        return state


class GuardedPredictor:
    """A `Predictor` that asks the circuit breaker before each call and tells it how the call went."""

    def __init__(
        self, predictor: Predictor, breaker: CircuitBreaker, *, clock: Callable[[], float] = time.time
    ):
        self._predictor = predictor
        self._breaker = breaker
        self._clock = clock

    def predict(
        self,
        jpeg: bytes,
        *,
        deadline: float | None = None,
        max_attempts: int | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> InferenceResult:
        admission = self._breaker.admit()
        if not admission.allowed:
            state = admission.state
            assert state is not None  # denied only against an open circuit
            raise EndpointUnavailable(
                state.reason_code,
                state.reason,
                detail=f"the circuit is open since {_iso(state.opened_at)}; the endpoint was not called",
                retry_in=admission.retry_in,
                open_for=self._clock() - state.opened_at,
                calls_made=False,
            )
        try:
            result = self._predictor.predict(
                jpeg,
                deadline=deadline,
                max_attempts=1 if admission.probe else max_attempts,
                give_up=lambda: self._breaker.failed_since(admission) or bool(give_up and give_up()),
            )
        except EndpointUnavailable as error:
            if error.rate_limited and not admission.probe:
                raise  # the endpoint is up and asks for fewer requests: this message waits on its own
            state = self._breaker.failed(admission, error)
            error.retry_in = max(0.0, state.retry_at - self._clock())
            error.open_for = self._clock() - state.opened_at
            raise
        self._breaker.succeeded(admission)
        return result


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
