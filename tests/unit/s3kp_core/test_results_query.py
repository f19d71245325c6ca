"""Specification of the listing merge: every match exactly once, newest first, whatever the read budget.

The fake table keeps the DynamoDB semantics the merge depends on: a Query reads its key range in sort
order, `Limit` counts items *evaluated* (before the FilterExpression), and `LastEvaluatedKey` is the
last item evaluated, matching or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace
from s3kp_core.cursors import CursorCodec
from s3kp_core.results import ObjectRef, Prediction, ResultRecord, SourceObject, Status, result_id_for
from s3kp_core.results_query import FIRST_READ_MARGIN, ListFilters, PredictionsUnavailableError, ResultsQuery
from s3kp_core.results_schema import LIST_SHARDS, shard_of, to_item, to_plain

BASE = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class FakeTable:
    items: list[dict[str, Any]] = field(default_factory=list)
    queries: int = 0
    evaluated: int = 0

    def get_item(self, result_id: str) -> dict[str, Any] | None:
        return next((item for item in self.items if item["result_id"] == result_id), None)

    def query(self, request: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        self.queries += 1
        names, values = request["ExpressionAttributeNames"], request["ExpressionAttributeValues"]
        pk_name = names["#pk"]
        in_range = sorted(
            (
                item
                for item in self.items
                if item[pk_name] == values[":pk"]
                and (":below" not in values or item["list_sk"] <= values[":below"])
                and (":lower" not in values or item["list_sk"] >= values[":lower"])
            ),
            key=lambda item: item["list_sk"],
            reverse=True,
        )
        if "<" in request["KeyConditionExpression"]:  # `#sk < :below` (BETWEEN keeps the bound itself)
            in_range = [item for item in in_range if item["list_sk"] < values[":below"]]
        start = request.get("ExclusiveStartKey")
        if start is not None:
            in_range = [item for item in in_range if item["list_sk"] < start["list_sk"]]
        evaluated = in_range[: request["Limit"]]
        self.evaluated += len(evaluated)
        matching = [item for item in evaluated if _matches(item, names, values)]
        last_key = None
        if len(evaluated) == request["Limit"] and evaluated:
            last = evaluated[-1]
            last_key = {"result_id": last["result_id"], pk_name: last[pk_name], "list_sk": last["list_sk"]}
        return matching, last_key


def _matches(item: dict[str, Any], names: dict[str, str], values: dict[str, Any]) -> bool:
    if "#class" in names and names["#class"] not in item.get("counts", {}):
        return False
    return not (":prefix" in values and not item["source"]["key"].startswith(values[":prefix"]))


class NoDocuments:
    def read_json(self, ref: ObjectRef) -> Any:
        raise FileNotFoundError(ref.key)


def _record(index: int, tick: int, classes: frozenset[str], status: Status) -> ResultRecord:
    key = f"incoming/{index}.jpg"
    moment = BASE + timedelta(seconds=tick)
    return ResultRecord(
        result_id=result_id_for("b", key),
        status=status,
        source=SourceObject(bucket="b", key=key),
        model_id="m/1",
        counts={name: 1 for name in classes},
        created_at=moment,
        updated_at=moment,
    )


def _walk(query: ResultsQuery, filters: ListFilters, limit: int) -> list[str]:
    walked: list[str] = []
    cursor: str | None = None
    for _ in range(1000):
        page = query.list_results(filters, limit, cursor)
        assert len(page.items) <= limit
        walked.extend(item.result_id for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return walked
    raise AssertionError("the listing does not terminate")


records_strategy = st.lists(
    st.tuples(
        st.integers(0, 12),  # few distinct ticks: many equal timestamps
        st.frozensets(st.sampled_from(["a", "b"])),
        st.sampled_from(list(Status)),
    ),
    min_size=10,
    max_size=150,
)


@settings(max_examples=300, deadline=None)
@given(
    rows=records_strategy,
    limit=st.integers(1, 30),
    page_size=st.integers(1, 4),
    budget=st.integers(1, 3),
    class_name=st.sampled_from([None, "a", "b"]),
    status=st.sampled_from([None, *Status]),
)
def test_every_match_is_listed_exactly_once_newest_first(
    rows: list[tuple[int, frozenset[str], Status]],
    limit: int,
    page_size: int,
    budget: int,
    class_name: str | None,
    status: Status | None,
) -> None:
    records = [_record(index, tick, classes, state) for index, (tick, classes, state) in enumerate(rows)]
    query = ResultsQuery(
        items=FakeTable([to_item(record) for record in records]),
        documents=NoDocuments(),
        cursors=CursorCodec(b"property-test-cursor-key"),
        table_name="t",
        parallel=False,
        filtered_page_size=page_size,
        max_queries_per_shard=budget,
    )
    filters = ListFilters(status=status, class_name=class_name)
    expected = sorted(
        (
            r
            for r in records
            if (status is None or r.status is status) and (class_name is None or class_name in r.counts)
        ),
        key=lambda r: (r.updated_at, r.result_id),
        reverse=True,
    )
    assert _walk(query, filters, limit) == [record.result_id for record in expected]


@pytest.mark.parametrize("stored", [200, 5000])
def test_a_page_reads_about_its_own_size_whatever_the_table_size(stored: int) -> None:
    """GIVEN a table of any size WHEN a 20-item page is listed THEN it costs at most two Queries per shard
    and evaluates far fewer items than reading `limit + 1` from every shard would."""
    table = FakeTable([to_item(_record(i, i, frozenset(), Status.SUCCEEDED)) for i in range(stored)])
    query = ResultsQuery(table, NoDocuments(), CursorCodec(b"query-count-cursor-key"), "t", parallel=False)
    page = query.list_results(ListFilters(), 20, None)
    assert len(page.items) == 20
    assert table.queries <= 2 * LIST_SHARDS
    assert table.evaluated <= 20 + LIST_SHARDS * (FIRST_READ_MARGIN + 1) < LIST_SHARDS * 21


def test_a_page_whose_newest_items_all_sit_in_one_shard_reads_that_shard_again() -> None:
    """Shards are hash-balanced on average, not always: the first, small read must not decide the page."""
    in_shard_0 = [i for i in range(400) if shard_of(result_id_for("b", f"incoming/{i}.jpg")) == 0][:30]
    newest = [_record(i, 1000 + n, frozenset(), Status.SUCCEEDED) for n, i in enumerate(in_shard_0)]
    older = [_record(i, n, frozenset(), Status.SUCCEEDED) for n, i in enumerate(range(400, 480))]
    table = FakeTable([to_item(record) for record in newest + older])
    query = ResultsQuery(table, NoDocuments(), CursorCodec(b"skewed-shard-cursor-key"), "t", parallel=False)
    page = query.list_results(ListFilters(), 25, None)
    assert [item.result_id for item in page.items] == [r.result_id for r in reversed(newest)][:25]


def test_a_full_page_from_a_shard_not_read_to_its_end_still_has_a_next_cursor() -> None:
    """GIVEN five items in one shard and pages of four WHEN the first read stops exactly at the page's
    end THEN the page still offers a cursor, and the walk reaches the fifth item."""
    in_shard_0 = [i for i in range(200) if shard_of(result_id_for("b", f"incoming/{i}.jpg")) == 0][:5]
    records = [_record(i, n, frozenset(), Status.SUCCEEDED) for n, i in enumerate(in_shard_0)]
    query = ResultsQuery(
        FakeTable([to_item(r) for r in records]), NoDocuments(), CursorCodec(b"exact-page-cursor-key"), "t"
    )
    assert _walk(query, ListFilters(), 4) == [r.result_id for r in reversed(records)]


def test_missing_out_of_line_predictions_raise_a_clear_error() -> None:
    record = replace(
        _record(0, 0, frozenset(), Status.SUCCEEDED),
        predictions_ref=ObjectRef(bucket="b", key="predictions/x.json"),
    )
    query = ResultsQuery(FakeTable([to_item(record)]), NoDocuments(), CursorCodec(b"x" * 16), "t")
    with pytest.raises(PredictionsUnavailableError, match=r"predictions/x\.json"):
        query.get(record.result_id)


def test_out_of_line_predictions_are_loaded_from_either_document_shape() -> None:
    prediction = Prediction(x=1, y=2, width=3, height=4, confidence=0.5, class_name="p", class_id=0)
    record = replace(
        _record(0, 0, frozenset(), Status.SUCCEEDED), predictions_ref=ObjectRef(bucket="b", key="p.json")
    )

    class Documents:
        def __init__(self, document: Any) -> None:
            self.document = document

        def read_json(self, ref: ObjectRef) -> Any:
            return self.document

    for document in ({"predictions": [to_plain(prediction)]}, [to_plain(prediction)]):
        query = ResultsQuery(FakeTable([to_item(record)]), Documents(document), CursorCodec(b"x" * 16), "t")
        loaded = query.get(record.result_id)
        assert loaded is not None
        assert loaded.predictions == (prediction,)


def test_get_by_source_checks_the_source_not_only_the_hash() -> None:
    record = _record(0, 0, frozenset(), Status.SUCCEEDED)
    query = ResultsQuery(FakeTable([to_item(record)]), NoDocuments(), CursorCodec(b"x" * 16), "t")
    assert query.get_by_source("b", "incoming/0.jpg") == record
    assert query.get_by_source("b", "incoming/1.jpg") is None
