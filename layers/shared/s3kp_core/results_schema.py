"""How a ResultRecord is laid out in DynamoDB: keys, indexes and the item <-> record conversion.

Access patterns (one table, two sparse-free GSIs; see docs/design.md):
- get by id / by source object: GetItem on `result_id` (derived from bucket + key).
- list newest first: Query the `by_time` GSI, partition `list_pk = "all#<shard>"`, sort `list_sk =
  "<updated_at>#<result_id>"`, descending, one Query per shard merged by sort key. Spreading the
  listing over LIST_SHARDS partitions keeps a burst of uploads from writing to one hot GSI partition.
- list by status: the same on the `by_status` GSI with `status_pk = "<status>#<shard>"`.
Time ranges (`since`/`until`) are key conditions on `list_sk`; pages cost LIST_SHARDS Queries of at
most one page each, whatever the table size.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypeVar

# msgspec, not pydantic, validates what is read back: it imports in a few milliseconds, and pydantic's
# import and model building would be most of the ingest function's cold start (docs/ingest-cold-start.md).
# It validates straight into the standard-library dataclasses of `results`.
import msgspec

from s3kp_core.results import ResultRecord, Status

Stored = TypeVar("Stored")

PARTITION_KEY = "result_id"
LIST_INDEX = "by_time"
STATUS_INDEX = "by_status"
LIST_PK = "list_pk"
STATUS_PK = "status_pk"
LIST_SK = "list_sk"
# Changing this re-shards the listing: existing items keep their old shard attribute. Keep it fixed.
LIST_SHARDS = 8


def format_timestamp(moment: Any) -> str:
    """ISO-8601 UTC with milliseconds and a `Z`: sorts lexicographically in time order."""
    return str(moment.isoformat(timespec="milliseconds")).replace("+00:00", "Z")


def shard_of(result_id: str) -> int:
    return int(result_id[:8], 16) % LIST_SHARDS


def list_partition(shard: int) -> str:
    return f"all#{shard}"


def status_partition(status: Status | str, shard: int) -> str:
    return f"{Status(status).value}#{shard}"


def list_sort_key(record: ResultRecord) -> str:
    return f"{format_timestamp(record.updated_at)}#{record.result_id}"


def to_dynamodb(value: Any) -> Any:
    """Floats become Decimal (via str, so 0.1 stays 0.1); containers are converted recursively."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: to_dynamodb(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_dynamodb(v) for v in value]
    return value


def from_dynamodb(value: Any) -> Any:
    """Decimal becomes int when integral, else float; containers are converted recursively."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamodb(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [from_dynamodb(v) for v in value]
    return value


def to_item(record: ResultRecord) -> dict[str, Any]:
    """The DynamoDB item for a record, index attributes included."""
    shard = shard_of(record.result_id)
    item: dict[str, Any] = to_dynamodb(to_plain(record))
    if item.get("media_type") == "image":
        del item["media_type"]  # the default, read back as such: image items stay as they always were
    item[LIST_PK] = list_partition(shard)
    item[STATUS_PK] = status_partition(record.status, shard)
    item[LIST_SK] = list_sort_key(record)
    return item


def from_item(item: dict[str, Any]) -> ResultRecord:
    """The record an item holds (index and bookkeeping attributes are ignored)."""
    return from_plain(from_dynamodb(item), ResultRecord)


def to_plain(value: Any) -> Any:
    """A result (or any part of one) as JSON-ready builtins: enums by value, datetimes as ISO-8601 UTC
    with a `Z`, tuples as lists. `None` fields stay; `to_dynamodb` drops them from items."""
    return msgspec.to_builtins(value)


def from_plain(plain: Any, kind: type[Stored]) -> Stored:
    """Validate JSON-like data (an item read back, a predictions document) into a result type: unknown
    attributes are ignored, a missing or mistyped field raises `msgspec.ValidationError` naming its path."""
    return msgspec.convert(plain, kind)
