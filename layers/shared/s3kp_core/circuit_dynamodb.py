"""`CircuitStore` as one DynamoDB item: the circuit breaker's state, shared by every invocation.

The item lives in the idempotency table (key `id`, TTL attribute `expiration`), under an id no
Powertools record can take (`s3kp-circuit#<endpoint>`): the ingest role already reads and writes that
table, and the state needs no table of its own. A closed circuit is no item at all, so the hot path is one
GetItem that finds nothing. Every change is a single conditional write or a write that returns the old
item, so concurrent invocations agree on who saw a transition and who probes.

DynamoDB deletes expired items lazily (up to days later): an item past its `expiration` reads as closed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from s3kp_core.circuit import CircuitState

ITEM_PREFIX = "s3kp-circuit#"
# An open circuit nobody touches for this long (no message came to probe it) is forgotten.
STATE_TTL_SECONDS = 86_400


class DynamoDBCircuitStore:
    def __init__(self, table: Any, endpoint: str) -> None:
        """`table`: a boto3 `Table` resource; `endpoint`: the URL without its key (one circuit each)."""
        self._table = table
        self._key = {"id": f"{ITEM_PREFIX}{endpoint}"}

    def read(self, now: float) -> CircuitState | None:
        item = self._table.get_item(Key=self._key, ConsistentRead=True).get("Item")
        return _state(item, now)

    def trip(self, *, now: float, retry_at: float, reason_code: str, reason: str) -> CircuitState | None:
        attributes = self._table.update_item(
            Key=self._key,
            UpdateExpression=(
                "SET retry_at = :retry_at, reason_code = :code, reason = :reason, expiration = :expiration, "
                "opened_at = if_not_exists(opened_at, :now) REMOVE probe_until"
            ),
            ExpressionAttributeValues={
                ":retry_at": _number(retry_at),
                ":code": reason_code,
                ":reason": reason,
                ":expiration": int(retry_at) + STATE_TTL_SECONDS,
                ":now": _number(now),
            },
            ReturnValues="ALL_OLD",
        ).get("Attributes")
        previous = _state(attributes, now)
        if previous is None and attributes:
            # An expired item DynamoDB had not deleted yet: this is a new outage, with its own start.
            self._table.update_item(
                Key=self._key,
                UpdateExpression="SET opened_at = :now",
                ExpressionAttributeValues={":now": _number(now)},
            )
        return previous

    def claim_probe(self, *, now: float, until: float) -> bool:
        try:
            self._table.update_item(
                Key=self._key,
                UpdateExpression="SET probe_until = :until",
                ConditionExpression=(
                    "attribute_exists(id) AND retry_at <= :now "
                    "AND (attribute_not_exists(probe_until) OR probe_until < :now)"
                ),
                ExpressionAttributeValues={":until": _number(until), ":now": _number(now)},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def reset(self) -> CircuitState | None:
        attributes = self._table.delete_item(Key=self._key, ReturnValues="ALL_OLD").get("Attributes")
        return _state(attributes, now=None)


def _state(item: dict[str, Any] | None, now: float | None) -> CircuitState | None:
    if not item or "retry_at" not in item:
        return None
    if now is not None and float(item.get("expiration", 0)) < now:
        return None
    return CircuitState(
        opened_at=float(item.get("opened_at", item["retry_at"])),
        retry_at=float(item["retry_at"]),
        reason_code=str(item.get("reason_code", "")),
        reason=str(item.get("reason", "")),
    )


def _number(value: float) -> Decimal:
    return Decimal(str(round(value, 3)))
