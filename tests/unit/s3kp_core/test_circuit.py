"""The circuit breaker in front of the endpoint: its states with a fake clock, and a message's whole life
through a four-hour outage (the handler's deferral policy and the breaker, with many messages and
containers): nothing fails, nothing spends a receive, and the endpoint sees a trickle of probes."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from s3kp_core import errors
from s3kp_core.circuit import CircuitBreaker, CircuitState, GuardedPredictor
from s3kp_core.errors import EndpointUnavailable
from s3kp_core.predictor import InferenceResult
from sqs_retries import outage_delay_seconds

from tests.unit.s3kp_core.fakes import RecordingLog

PROBE_SECONDS = 15.0
LEASE_SECONDS = 23.0
T0 = 1_800_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class InMemoryCircuitStore:
    """`CircuitStore` over one attribute, with DynamoDB's conditional semantics."""

    def __init__(self) -> None:
        self.state: CircuitState | None = None
        self.probe_until: float | None = None

    def read(self, now: float) -> CircuitState | None:
        return self.state

    def trip(self, *, now: float, retry_at: float, reason_code: str, reason: str) -> CircuitState | None:
        previous = self.state
        opened_at = previous.opened_at if previous else now
        self.state = CircuitState(
            opened_at=opened_at, retry_at=retry_at, reason_code=reason_code, reason=reason
        )
        self.probe_until = None
        return previous

    def claim_probe(self, *, now: float, until: float) -> bool:
        if self.state is None or self.state.retry_at > now:
            return False
        if self.probe_until is not None and self.probe_until >= now:
            return False
        self.probe_until = until
        return True

    def reset(self) -> CircuitState | None:
        previous, self.state, self.probe_until = self.state, None, None
        return previous


class Endpoint:
    """The inference client as the breaker sees it: down (connection refused), 401, 429, or up."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.answer = "up"
        self.calls: list[tuple[float, int | None]] = []

    def predict(
        self,
        jpeg: bytes,
        *,
        deadline: float | None = None,
        max_attempts: int | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> InferenceResult:
        self.calls.append((self.clock.now, max_attempts))
        if self.answer == "down":
            raise EndpointUnavailable(
                errors.INFERENCE_UNAVAILABLE,
                "inference endpoint unreachable: connection refused (4 attempts)",
                detail="https://e/p/1 failed after 4 attempt(s): [Errno 111] Connection refused",
            )
        if self.answer == "401":
            raise EndpointUnavailable(
                errors.INFERENCE_UNAUTHORIZED, "inference endpoint refused the API key (HTTP 401)"
            )
        if self.answer == "429":
            raise EndpointUnavailable(
                errors.INFERENCE_UNAVAILABLE,
                "inference endpoint is rate-limiting requests (HTTP 429)",
                rate_limited=True,
            )
        return InferenceResult((), 10, 10, None, None, len(jpeg), 1, 1.0)


def guarded(
    store: InMemoryCircuitStore, clock: FakeClock, endpoint: Endpoint, log: RecordingLog
) -> GuardedPredictor:
    breaker = CircuitBreaker(
        store,
        endpoint="https://e/p/1",
        probe_interval=PROBE_SECONDS,
        probe_lease=LEASE_SECONDS,
        log=log,
        clock=clock,
    )
    return GuardedPredictor(endpoint, breaker, clock=clock)


@pytest.fixture
def world() -> tuple[InMemoryCircuitStore, FakeClock, Endpoint, RecordingLog, GuardedPredictor]:
    store, clock, log = InMemoryCircuitStore(), FakeClock(), RecordingLog()
    endpoint = Endpoint(clock)
    return store, clock, endpoint, log, guarded(store, clock, endpoint, log)


def test_closed_calls_go_through_and_write_nothing(world: Any) -> None:
    store, _, endpoint, log, predictor = world

    predictor.predict(b"jpeg")

    assert endpoint.calls == [(T0, None)]
    assert store.state is None
    assert log.lines == []


def test_a_failure_opens_the_circuit_once_with_the_endpoints_answer_in_the_log(world: Any) -> None:
    store, _, endpoint, log, predictor = world
    endpoint.answer = "down"

    with pytest.raises(EndpointUnavailable) as raised:
        predictor.predict(b"jpeg")

    assert store.state == CircuitState(
        opened_at=T0,
        retry_at=T0 + PROBE_SECONDS,
        reason_code=errors.INFERENCE_UNAVAILABLE,
        reason="inference endpoint unreachable: connection refused (4 attempts)",
    )
    assert (raised.value.retry_in, raised.value.open_for) == (PROBE_SECONDS, 0.0)
    [(level, message, fields)] = log.lines
    assert level == "warning"
    assert message.startswith("inference circuit opened")
    assert "Connection refused" in fields["answer"]


def test_while_open_no_call_is_made_and_the_caller_learns_when_to_come_back(world: Any) -> None:
    store, clock, endpoint, _, predictor = world
    endpoint.answer = "down"
    with pytest.raises(EndpointUnavailable):
        predictor.predict(b"jpeg")
    clock.now += 5

    with pytest.raises(EndpointUnavailable) as raised:
        predictor.predict(b"jpeg")

    assert len(endpoint.calls) == 1
    assert not raised.value.calls_made
    assert (raised.value.retry_in, raised.value.open_for) == (PROBE_SECONDS - 5, 5.0)
    assert raised.value.message == store.state.reason  # what would be stored if the message gave up


def test_after_the_interval_one_caller_probes_with_a_single_attempt_and_others_wait(world: Any) -> None:
    store, clock, endpoint, log, predictor = world
    endpoint.answer = "down"
    with pytest.raises(EndpointUnavailable):
        predictor.predict(b"jpeg")
    clock.now += PROBE_SECONDS
    store.claim_probe(now=clock.now, until=clock.now + LEASE_SECONDS)  # another container won the probe

    with pytest.raises(EndpointUnavailable) as raised:
        predictor.predict(b"jpeg")
    assert len(endpoint.calls) == 1
    assert not raised.value.calls_made

    clock.now += LEASE_SECONDS + 1  # that probe died without an answer: its lease ran out
    with pytest.raises(EndpointUnavailable):
        predictor.predict(b"jpeg")
    assert endpoint.calls[-1] == (clock.now, 1)  # the probe: one attempt
    assert store.state is not None
    assert store.state.retry_at == clock.now + PROBE_SECONDS  # failed: the next probe one interval on
    assert store.state.opened_at == T0
    assert log.messages()[-1] == "inference circuit stays open: the probe failed"


def test_a_call_admitted_beside_one_that_opens_the_circuit_is_told_to_stop_retrying(world: Any) -> None:
    """Records processed in parallel are all admitted while the circuit is closed. When one of them opens
    it, the others' clients learn it at their next retry (`give_up`) instead of spending their whole
    retry budget on an endpoint known to be down."""
    store, clock, _, log, _ = world
    breaker = CircuitBreaker(
        store,
        endpoint="https://e/p/1",
        probe_interval=PROBE_SECONDS,
        probe_lease=LEASE_SECONDS,
        log=log,
        clock=clock,
    )

    class TwoCallsAtOnce:
        seen: list[bool] = []

        def predict(
            self,
            jpeg: bytes,
            *,
            deadline: float | None = None,
            max_attempts: int | None = None,
            give_up: Callable[[], bool] | None = None,
        ) -> InferenceResult:
            assert give_up is not None
            if jpeg == b"first":
                self.seen.append(give_up())
                with pytest.raises(EndpointUnavailable):
                    predictor.predict(b"second")  # a parallel record's call fails meanwhile
                self.seen.append(give_up())
            raise EndpointUnavailable(errors.INFERENCE_UNAVAILABLE, "inference endpoint unreachable")

    inner = TwoCallsAtOnce()
    predictor = GuardedPredictor(inner, breaker, clock=clock)

    with pytest.raises(EndpointUnavailable):
        predictor.predict(b"first")

    assert inner.seen == [False, True]
    assert store.state is not None


def test_a_successful_probe_closes_the_circuit(world: Any) -> None:
    store, clock, endpoint, log, predictor = world
    endpoint.answer = "down"
    with pytest.raises(EndpointUnavailable):
        predictor.predict(b"jpeg")
    clock.now += 100
    endpoint.answer = "up"

    predictor.predict(b"jpeg")

    assert store.state is None
    assert log.messages()[-1] == "inference circuit closed: the endpoint answers again"
    assert log.lines[-1][2]["open_for_seconds"] == 100.0
    predictor.predict(b"jpeg")
    assert endpoint.calls[-1] == (clock.now, None)  # closed: the client's full attempt budget again


def test_a_refused_key_opens_the_circuit_too(world: Any) -> None:
    store, _, endpoint, _, predictor = world
    endpoint.answer = "401"

    with pytest.raises(EndpointUnavailable):
        predictor.predict(b"jpeg")

    assert store.state is not None
    assert store.state.reason_code == errors.INFERENCE_UNAUTHORIZED


def test_a_rate_limit_does_not_open_the_circuit(world: Any) -> None:
    """429: the endpoint is up and asks for fewer requests; the message waits on its own."""
    store, _, endpoint, _, predictor = world
    endpoint.answer = "429"

    with pytest.raises(EndpointUnavailable) as raised:
        predictor.predict(b"jpeg")

    assert raised.value.rate_limited
    assert store.state is None


# --- a whole outage, simulated ---------------------------------------------------------------------------

RETENTION_SECONDS = 4 * 86_400
MAX_DEFER_SECONDS = 60.0


@dataclass(order=True)
class Delivery:
    at: float
    order: int
    message: int = field(compare=False)
    receive_count: int = field(compare=False, default=1)


def test_a_four_hour_outage_fails_nothing_spends_no_receive_and_sees_only_a_trickle_of_probes() -> None:
    """GIVEN 200 uploads in the first minutes of a 4-hour outage (connection refused), 10 containers
    sharing the circuit, and the handler's policy (defer by `outage_delay_seconds`, never fail, while the
    message is younger than the queue's retention) WHEN the endpoint comes back THEN every upload succeeds
    within one probe interval plus the deferral cap of recovery, no message is ever failed (no receive
    spent, so no DLQ), and the endpoint saw at most one probe per interval while it was down."""
    rng = random.Random(7)
    clock, store, log = FakeClock(), InMemoryCircuitStore(), RecordingLog()
    endpoint = Endpoint(clock)
    containers = [guarded(store, clock, endpoint, log) for _ in range(10)]
    outage_ends = T0 + 4 * 3600
    counter = itertools.count()
    queue = [Delivery(T0 + rng.uniform(0, 300), next(counter), message) for message in range(200)]
    heapq.heapify(queue)
    succeeded: dict[int, float] = {}
    failed: list[int] = []

    while queue:
        delivery = heapq.heappop(queue)
        clock.now = delivery.at
        endpoint.answer = "down" if clock.now < outage_ends else "up"
        predictor = containers[delivery.order % len(containers)]
        try:
            predictor.predict(b"jpeg")
        except EndpointUnavailable as outage:
            assert clock.now - T0 + MAX_DEFER_SECONDS < RETENTION_SECONDS  # still deferrable
            delay = outage_delay_seconds(
                outage.retry_in,
                outage.open_for,
                floor=PROBE_SECONDS,
                cap=MAX_DEFER_SECONDS,
                uniform=rng.uniform,
            )
            # Deferred: a new copy with a receive count of 1, nothing recorded.
            heapq.heappush(queue, Delivery(clock.now + delay, next(counter), delivery.message))
            continue
        except Exception:
            failed.append(delivery.message)
            continue
        succeeded[delivery.message] = clock.now

    assert failed == []
    assert len(succeeded) == 200
    # The next probe finds the endpoint back; a message deferred just before it returns within the cap.
    assert max(succeeded.values()) - outage_ends <= PROBE_SECONDS + MAX_DEFER_SECONDS
    calls_while_down = [at for at, _ in endpoint.calls if at < outage_ends]
    minutes = (outage_ends - T0) / 60
    assert (
        len(calls_while_down) <= minutes * 60 / PROBE_SECONDS + 2
    )  # the first failure plus one per interval
    per_minute = [
        sum(1 for at in calls_while_down if T0 + 60 * m <= at < T0 + 60 * (m + 1)) for m in range(240)
    ]
    assert max(per_minute) <= 6
    assert [m for m in log.messages() if "opened" in m or "closed" in m] == [
        "inference circuit opened: the endpoint is failing; messages wait for it",
        "inference circuit closed: the endpoint answers again",
    ]
