"""The EventBridge implementation of `result_events.EventPublisher`."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from s3kp_core import errors
from s3kp_core.result_events import DETAIL_TYPE, EVENT_SOURCE, ResultEventDetail, detail_json


class EventBridgePublisher:
    """PutEvents to one bus, retried with exponential backoff and full jitter.

    botocore already retries throttling and 5xx answers of the call itself; this adds retries of the
    entry EventBridge reports as failed (`FailedEntryCount`, e.g. `InternalFailure`, `ThrottlingException`)
    and of errors that survive botocore's retries. Each attempt is bounded by `max_attempts`, so the
    Lambda's timeout is never at stake (≤ 0.1 + 0.2 + 0.4 s of sleeping by default).
    """

    def __init__(
        self,
        client: Any,
        bus_name: str,
        *,
        max_attempts: int = 4,
        base_delay: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._bus_name = bus_name
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._sleep = sleep

    def publish(self, detail: ResultEventDetail) -> None:
        entry = {
            "Source": EVENT_SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": detail_json(detail),
            "EventBusName": self._bus_name,
        }
        problem = "no attempt made"
        for attempt in range(1, self._max_attempts + 1):
            problem = self._put(entry)
            if not problem:
                return
            if attempt < self._max_attempts:
                self._sleep(random.uniform(0, self._base_delay * 2 ** (attempt - 1)))
        raise errors.TransientError(
            errors.EVENT_PUBLISH_FAILED,
            f"the result is recorded but its event was not accepted after {self._max_attempts} attempts "
            f"({problem}); it is published on a later delivery",
        )

    def _put(self, entry: dict[str, str]) -> str:
        """'' when EventBridge accepted the entry, else what went wrong."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.put_events(Entries=[entry])
        except ClientError as error:
            details = error.response.get("Error", {})
            return f"{details.get('Code', 'ClientError')}: {details.get('Message', '')}"
        except BotoCoreError as error:
            return f"{type(error).__name__}: {error}"
        if not response.get("FailedEntryCount"):
            return ""
        failed: dict[str, Any] = next(
            (result for result in response.get("Entries", []) if "ErrorCode" in result), {}
        )
        return f"{failed.get('ErrorCode', 'FailedEntry')}: {failed.get('ErrorMessage', '')}"
