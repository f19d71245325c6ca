"""The read side of the results table: one result by id or by source object, and the newest-first listing.

Listing (see results_schema for the layout): a page is a merge, by `list_sk`, of one descending Query
per shard of the `by_time` GSI (or `by_status` when filtering by status). Each shard is first asked
for its even share of the page plus a margin; only a shard whose last item read is still newer than
the page's last item is read again, for as many items as it could still add. The merge is exact
because `list_sk` is unique (it ends with the result id). The next page starts strictly below the
last `list_sk` returned, so a page costs about `limit + LIST_SHARDS * FIRST_READ_MARGIN` items read
whatever the table size, and concurrent writes never shift a page.

`class`, `prefix` and `model_id` are FilterExpressions: DynamoDB reads (and bills) items that then do
not match, so a shard is read page by page until it yields enough matches, is exhausted, or the read budget
(MAX_QUERIES_PER_SHARD) is spent. In the last case the page stops at the point every shard has
been read down to: it may hold fewer than `limit` items (even none) yet carry a `next_cursor`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime
from typing import Any, BinaryIO, Protocol

import msgspec

from s3kp_core.cursors import CursorCodec
from s3kp_core.results import (
    SUMMARY_FIELDS,
    ObjectRef,
    Prediction,
    ResultRecord,
    ResultSummary,
    Status,
    result_id_for,
)
from s3kp_core.results_schema import (
    LIST_INDEX,
    LIST_PK,
    LIST_SHARDS,
    LIST_SK,
    STATUS_INDEX,
    STATUS_PK,
    format_timestamp,
    from_dynamodb,
    from_item,
    from_plain,
    list_partition,
    status_partition,
)
from s3kp_core.video_frames import FrameLine, read_frames

logger = logging.getLogger(__name__)

# Items read per shard beyond its even share of a page on the first Query: few pages need a second round.
FIRST_READ_MARGIN = 3
# Evaluated items per Query when a FilterExpression may discard some (one Query reads at most 1 MB anyway).
FILTERED_PAGE_SIZE = 100
# Read budget of one listing request per shard: bounds the latency and cost of a page for rare matches.
MAX_QUERIES_PER_SHARD = 4


SUMMARY_ATTRIBUTES: tuple[str, ...] = SUMMARY_FIELDS


class ListFilters(msgspec.Struct, frozen=True):
    """What a listing is restricted to. `since` is inclusive, `until` exclusive (millisecond precision)."""

    status: Status | None = None
    class_name: str | None = None
    prefix: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    model_id: str | None = None

    def fingerprint(self) -> str:
        """A short digest of the filters: a cursor made under one set of filters is refused under another."""
        parts: list[str | None] = [
            self.status.value if self.status else None,
            self.class_name,
            self.prefix,
            _bound(self.since),
            _bound(self.until),
        ]
        if self.model_id is not None:  # appended only when set: cursors issued before it stay valid
            parts.append(self.model_id)
        canonical = json.dumps(parts, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def uses_filter_expression(self) -> bool:
        return self.class_name is not None or self.prefix is not None or self.model_id is not None


class ShardQuery(msgspec.Struct, frozen=True):
    """One shard's Query (boto3 client keyword arguments) and the exclusive upper bound on `list_sk`.

    `below` is applied to returned items too: a key condition cannot combine a lower bound with an
    exclusive upper one, so `BETWEEN` returns the item at the bound and the reader drops it.
    """

    request: dict[str, Any]
    below: str | None
    empty: bool = False

    @property
    def filtered(self) -> bool:
        return "FilterExpression" in self.request


class Page(msgspec.Struct, frozen=True):
    items: list[ResultSummary]
    next_cursor: str | None


class PredictionsUnavailableError(RuntimeError):
    """A result's out-of-line predictions document is missing or unreadable."""


class NoFramesError(LookupError):
    """The result has no frames to page through: it is an image, or a video not (yet) succeeded."""


class FramePage(msgspec.Struct, frozen=True):
    items: list[FrameLine]
    next_offset: int | None
    frames: int  # the video's sampled frames, all pages together


class ResultsReader(Protocol):
    """What the API needs from the results store (the handler's seam for fakes)."""

    def get(self, result_id: str) -> ResultRecord | None: ...

    def get_by_source(self, bucket: str, key: str) -> ResultRecord | None: ...

    def list_results(self, filters: ListFilters, limit: int, cursor: str | None) -> Page: ...

    def frames(self, result_id: str, offset: int, limit: int) -> FramePage | None:
        """A page of a video's sampled frames; None when there is no such result."""
        ...


class ItemSource(Protocol):
    """The results table, as plain Python values (no DynamoDB type descriptors)."""

    def get_item(self, result_id: str) -> dict[str, Any] | None: ...

    def query(self, request: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One Query call: the items and the LastEvaluatedKey (None when the range is exhausted)."""
        ...


class DocumentSource(Protocol):
    def read_json(self, ref: ObjectRef) -> Any: ...

    def open(self, ref: ObjectRef) -> BinaryIO:
        """The document's bytes as a stream (read once, front to back)."""
        ...


def shard_query(
    filters: ListFilters, shard: int, position: str | None, page_size: int, table_name: str
) -> ShardQuery:
    """Translate filters and a cursor position into the Query of one shard, newest first."""
    names: dict[str, str] = {"#sk": LIST_SK}
    values: dict[str, Any] = {}
    if filters.status is not None:
        index, names["#pk"], values[":pk"] = STATUS_INDEX, STATUS_PK, status_partition(filters.status, shard)
    else:
        index, names["#pk"], values[":pk"] = LIST_INDEX, LIST_PK, list_partition(shard)

    # `until` has no `#` so it sorts below every list_sk of that millisecond: `< until` excludes them all.
    uppers = [bound for bound in (position, _bound(filters.until)) if bound is not None]
    below = min(uppers) if uppers else None
    lower = _bound(filters.since)
    condition = "#pk = :pk"
    empty = False
    if below is not None and lower is not None:
        condition += " AND #sk BETWEEN :lower AND :below"
        values[":lower"], values[":below"] = lower, below
        empty = lower >= below  # BETWEEN with lower > upper is a ValidationException: do not send it
    elif below is not None:
        condition += " AND #sk < :below"
        values[":below"] = below
    elif lower is not None:
        condition += " AND #sk >= :lower"
        values[":lower"] = lower

    filter_parts = []
    if filters.class_name is not None:
        names["#counts"], names["#class"] = "counts", filters.class_name
        filter_parts.append("attribute_exists(#counts.#class)")
    if filters.prefix is not None:
        names["#source"], names["#key"] = "source", "key"
        values[":prefix"] = filters.prefix
        filter_parts.append("begins_with(#source.#key, :prefix)")
    if filters.model_id is not None:
        names["#model"] = "model_id"
        values[":model"] = filters.model_id
        filter_parts.append("#model = :model")

    projection = []
    for number, attribute in enumerate(SUMMARY_ATTRIBUTES):
        names[f"#a{number}"] = attribute
        projection.append(f"#a{number}")
    request: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": index,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ProjectionExpression": ", ".join([*projection, "#sk"]),
        "ScanIndexForward": False,
        "Limit": page_size,
    }
    if filter_parts:
        request["FilterExpression"] = " AND ".join(filter_parts)
    return ShardQuery(request=request, below=below, empty=empty)


class _ShardRead(msgspec.Struct):
    """What one listing request has read of one shard so far."""

    query: ShardQuery
    next_read: int
    items: list[dict[str, Any]] = msgspec.field(default_factory=list)
    last_key: dict[str, Any] | None = None
    queries: int = 0
    # Set when the read budget ran out: every item of the shard at or above it has been read.
    stopped_at: str | None = None

    @property
    def exhausted(self) -> bool:
        return self.query.empty or (self.queries > 0 and self.last_key is None)

    @property
    def last_key_sk(self) -> str | None:
        return None if self.last_key is None else str(self.last_key[LIST_SK])

    def may_hold_newer_than(self, cutoff: str | None) -> bool:
        if self.exhausted or self.stopped_at is not None:
            return False
        return cutoff is None or str(self.last_key_sk) > cutoff


class ResultsQuery:
    """ResultsReader over the results table (and S3 for out-of-line predictions)."""

    def __init__(
        self,
        items: ItemSource,
        documents: DocumentSource,
        cursors: CursorCodec,
        table_name: str,
        *,
        parallel: bool = True,
        filtered_page_size: int = FILTERED_PAGE_SIZE,
        max_queries_per_shard: int = MAX_QUERIES_PER_SHARD,
        executor: Executor | None = None,
    ) -> None:
        self.items = items
        self.documents = documents
        self.cursors = cursors
        self.table_name = table_name
        self.parallel = parallel
        self.filtered_page_size = filtered_page_size
        self.max_queries_per_shard = max_queries_per_shard
        # Runs the shard Queries. Pass one to share it between instances (the API builds a new query when
        # the cursor key rotates); without one, a pool is made on first use and `close()` ends its threads.
        self.executor = executor
        self._own_pool: ThreadPoolExecutor | None = None

    def get(self, result_id: str) -> ResultRecord | None:
        item = self.items.get_item(result_id)
        if item is None:
            return None
        record = from_item(item)
        if record.predictions is None and record.predictions_ref is not None:
            record = msgspec.structs.replace(
                record, predictions=self._load_predictions(record.predictions_ref)
            )
        return record

    def frames(self, result_id: str, offset: int, limit: int) -> FramePage | None:
        item = self.items.get_item(result_id)
        if item is None:
            return None
        record = from_item(item)
        video = record.video
        if record.media_type != "video" or video is None:
            raise NoFramesError(f"result {result_id} is an image: it has no frames")
        if video.frames_ref is None:
            raise NoFramesError(f"result {result_id} has no frames (status {record.status.value})")
        try:
            with closing(self.documents.open(video.frames_ref)) as document:
                items, next_offset = read_frames(document, offset=offset, limit=limit)
        except Exception as error:
            ref = video.frames_ref
            logger.warning("cannot read frames document s3://%s/%s: %r", ref.bucket, ref.key, error)
            raise PredictionsUnavailableError(
                f"the frames document of this result cannot be read: {ref.key}"
            ) from error
        return FramePage(items=items, next_offset=next_offset, frames=video.frames)

    def get_by_source(self, bucket: str, key: str) -> ResultRecord | None:
        record = self.get(result_id_for(bucket, key))
        if record is None or (record.source.bucket, record.source.key) != (bucket, key):
            return None
        return record

    def list_results(self, filters: ListFilters, limit: int, cursor: str | None) -> Page:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        fingerprint = filters.fingerprint()
        position = self.cursors.decode(cursor, fingerprint) if cursor else None
        # A page needs about limit / LIST_SHARDS items per shard (shards are hash-balanced): read that plus
        # a margin first, and go back only to shards that may hold more of the page.
        first_read = min(limit + 1, math.ceil(limit / LIST_SHARDS) + FIRST_READ_MARGIN)
        if filters.uses_filter_expression():
            first_read = max(first_read, self.filtered_page_size)
        shards = [
            _ShardRead(shard_query(filters, shard, position, first_read, self.table_name), first_read)
            for shard in range(LIST_SHARDS)
        ]
        pending = [shard for shard in shards if not shard.exhausted]
        while pending:
            self._run(self._read_more, pending)
            candidates = _newest_first(shards)
            cutoff = candidates[limit - 1][LIST_SK] if len(candidates) >= limit else None
            # A shard read down to below the cutoff cannot hold anything newer than the page's last item.
            pending = [shard for shard in shards if shard.may_hold_newer_than(cutoff)]
            for shard in pending:
                # Items newer than the shard's last read are ahead of anything it still holds, so it can
                # add at most `limit - newer` to the page (a FilterExpression needs its larger reads).
                newer = sum(1 for item in candidates if item[LIST_SK] > str(shard.last_key_sk))
                shard.next_read = max(1, limit - newer, first_read if shard.query.filtered else 1)

        # Where a shard stopped on its read budget, only items at or above that point are known complete.
        stops = [shard.stopped_at for shard in shards if shard.stopped_at is not None]
        floor = max(stops) if stops else None
        candidates = _newest_first(shards)
        if floor is not None:
            candidates = [item for item in candidates if item[LIST_SK] >= floor]
        chosen = candidates[:limit]

        unread = any(not shard.exhausted and shard.stopped_at is None for shard in shards)
        next_position: str | None = None
        if len(candidates) > limit or (unread and len(chosen) == limit):
            next_position = chosen[-1][LIST_SK]
        elif floor is not None:
            next_position = floor
        items = [from_plain(_summary_fields(item), ResultSummary) for item in chosen]
        next_cursor = self.cursors.encode(next_position, fingerprint) if next_position else None
        return Page(items=items, next_cursor=next_cursor)

    def close(self) -> None:
        """End the threads of the pool this query made itself (a shared `executor` is its owner's)."""
        if self._own_pool is not None:
            self._own_pool.shutdown(wait=False)
            self._own_pool = None

    def _read_more(self, shard: _ShardRead) -> None:
        """One more Query of the shard (`next_read` items), or stop it when its read budget is spent."""
        if shard.queries >= self.max_queries_per_shard:
            shard.stopped_at = shard.last_key_sk  # never None: an exhausted shard is not read again
            return
        request = {**shard.query.request, "Limit": shard.next_read}
        if shard.last_key is not None:
            request["ExclusiveStartKey"] = shard.last_key
        items, shard.last_key = self.items.query(request)
        shard.queries += 1
        below = shard.query.below
        shard.items.extend(item for item in items if below is None or item[LIST_SK] < below)

    def _run(self, action: Callable[[_ShardRead], None], shards: list[_ShardRead]) -> None:
        if not self.parallel or len(shards) == 1:
            for shard in shards:
                action(shard)
            return
        executor = self.executor
        if executor is None:
            if self._own_pool is None:
                self._own_pool = shard_query_pool()
            executor = self._own_pool
        list(executor.map(action, shards))

    def _load_predictions(self, ref: ObjectRef) -> tuple[Prediction, ...]:
        try:
            document = self.documents.read_json(ref)
            raw = document["predictions"] if isinstance(document, dict) else document
            return from_plain(raw, tuple[Prediction, ...])
        except Exception as error:
            logger.warning("cannot read predictions document s3://%s/%s: %r", ref.bucket, ref.key, error)
            raise PredictionsUnavailableError(
                f"the predictions document of this result cannot be read: {ref.key}"
            ) from error


def shard_query_pool() -> ThreadPoolExecutor:
    """A pool sized for one listing: every shard's Query at once."""
    return ThreadPoolExecutor(max_workers=LIST_SHARDS, thread_name_prefix="shard-query")


def _bound(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return format_timestamp(aware.astimezone(UTC))


def _newest_first(shards: list[_ShardRead]) -> list[dict[str, Any]]:
    return sorted(
        (item for shard in shards for item in shard.items), key=lambda item: str(item[LIST_SK]), reverse=True
    )


def _summary_fields(item: dict[str, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = from_dynamodb({k: v for k, v in item.items() if k in SUMMARY_FIELDS})
    return plain
