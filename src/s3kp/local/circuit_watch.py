"""Prints the inference endpoint's circuit as the ingest function sees it: opened, and closed again.

The circuit's state is one item of the idempotency table (`s3kp_core.circuit_dynamodb`); `s3kp up` polls it
once a second, so an operator watching the terminal sees an outage begin and end without reading logs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from s3kp_core.circuit import CircuitState
from s3kp_core.circuit_dynamodb import DynamoDBCircuitStore

POLL_SECONDS = 1.0


def describe_change(before: CircuitState | None, after: CircuitState | None, now: float) -> str | None:
    """The line to print for a change of state, or None when nothing an operator cares about changed
    (a failed probe only moves `retry_at`)."""
    if before is None and after is not None:
        wait = max(0, round(after.retry_at - now))
        return f"  circuit OPEN   {after.reason}  (uploads wait for the endpoint; next probe in {wait} s)"
    if before is not None and after is None:
        return f"  circuit CLOSED after {_duration(now - before.opened_at)}: the endpoint answers again"
    if before is not None and after is not None and before.reason_code != after.reason_code:
        return f"  circuit OPEN   now: {after.reason}"
    return None


class CircuitWatch:
    """A daemon thread that polls the circuit and prints each change through `echo`."""

    def __init__(
        self,
        table: Any,
        endpoint: str,
        echo: Callable[[str], None],
        *,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`table`: a boto3 `Table` (the idempotency table); `endpoint`: the ingest function's inference URL
        and model id, as its circuit is named (`{INFERENCE_URL}/{MODEL_ID}`)."""
        self._store = DynamoDBCircuitStore(table, endpoint)
        self._echo = echo
        self._poll_seconds = poll_seconds
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="circuit-watch", daemon=True)
        self._state: CircuitState | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def poll_once(self) -> None:
        now = self._clock()
        try:
            state = self._store.read(now)
        except Exception:  # the local AWS endpoint is stopping or busy: try again next second
            return
        line = describe_change(self._state, state, now)
        self._state = state
        if line is not None:
            self._echo(line)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            self.poll_once()


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
