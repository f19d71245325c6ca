"""Specification of how listing filters and a cursor position become one shard's DynamoDB Query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from s3kp_core.results import Status
from s3kp_core.results_query import SUMMARY_ATTRIBUTES, ListFilters, shard_query

TABLE = "results"
POSITION = "2026-05-01T10:00:00.000Z#00000000000000000000000000000000"


def test_no_filters_queries_the_time_index_newest_first() -> None:
    query = shard_query(ListFilters(), 3, None, 21, TABLE).request
    assert query["TableName"] == TABLE
    assert query["IndexName"] == "by_time"
    assert query["KeyConditionExpression"] == "#pk = :pk"
    assert query["ExpressionAttributeNames"]["#pk"] == "list_pk"
    assert query["ExpressionAttributeValues"] == {":pk": "all#3"}
    assert query["ScanIndexForward"] is False
    assert query["Limit"] == 21
    assert "FilterExpression" not in query


def test_status_uses_the_status_index_partition_of_the_shard() -> None:
    query = shard_query(ListFilters(status=Status.FAILED), 5, None, 10, TABLE).request
    assert query["IndexName"] == "by_status"
    assert query["ExpressionAttributeNames"]["#pk"] == "status_pk"
    assert query["ExpressionAttributeValues"][":pk"] == "failed#5"


def test_a_cursor_position_is_an_exclusive_upper_bound() -> None:
    built = shard_query(ListFilters(), 0, POSITION, 10, TABLE)
    assert built.request["KeyConditionExpression"] == "#pk = :pk AND #sk < :below"
    assert built.request["ExpressionAttributeValues"][":below"] == POSITION
    assert built.below == POSITION


def test_since_is_an_inclusive_lower_bound_in_utc_milliseconds() -> None:
    since = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    query = shard_query(ListFilters(since=since), 0, None, 10, TABLE).request
    assert query["KeyConditionExpression"] == "#pk = :pk AND #sk >= :lower"
    assert query["ExpressionAttributeValues"][":lower"] == "2026-05-01T10:00:00.123Z"


def test_naive_dates_are_taken_as_utc() -> None:
    query = shard_query(ListFilters(since=datetime(2026, 5, 1)), 0, None, 10, TABLE).request
    assert query["ExpressionAttributeValues"][":lower"] == "2026-05-01T00:00:00.000Z"


def test_until_excludes_its_own_millisecond() -> None:
    """`until` has no `#id` suffix, so it sorts below every key of that millisecond."""
    until = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    built = shard_query(ListFilters(until=until), 0, None, 10, TABLE)
    assert built.request["KeyConditionExpression"] == "#pk = :pk AND #sk < :below"
    assert built.below == "2026-05-01T10:00:00.000Z"
    assert built.below < POSITION


def test_the_cursor_and_until_combine_to_the_lower_of_the_two() -> None:
    until = datetime(2026, 6, 1, tzinfo=UTC)
    assert shard_query(ListFilters(until=until), 0, POSITION, 10, TABLE).below == POSITION
    earlier = datetime(2026, 4, 1, tzinfo=UTC)
    assert shard_query(ListFilters(until=earlier), 0, POSITION, 10, TABLE).below == "2026-04-01T00:00:00.000Z"


def test_both_bounds_use_between_and_keep_the_exclusive_upper_bound() -> None:
    filters = ListFilters(since=datetime(2026, 1, 1, tzinfo=UTC))
    built = shard_query(filters, 0, POSITION, 10, TABLE)
    assert built.request["KeyConditionExpression"] == "#pk = :pk AND #sk BETWEEN :lower AND :below"
    assert built.below == POSITION
    assert not built.empty


def test_an_empty_range_is_not_sent() -> None:
    """BETWEEN with lower > upper is a DynamoDB ValidationException: the query is marked empty instead."""
    filters = ListFilters(since=datetime(2026, 6, 1, tzinfo=UTC))
    assert shard_query(filters, 0, POSITION, 10, TABLE).empty


def test_class_filter_tests_the_counts_map_through_a_placeholder() -> None:
    query = shard_query(ListFilters(class_name="left hand.#1"), 0, None, 100, TABLE).request
    assert query["FilterExpression"] == "attribute_exists(#counts.#class)"
    assert query["ExpressionAttributeNames"]["#class"] == "left hand.#1"


def test_prefix_filter_is_begins_with_on_the_source_key() -> None:
    query = shard_query(ListFilters(prefix="incoming/a b+"), 0, None, 100, TABLE).request
    assert query["FilterExpression"] == "begins_with(#source.#key, :prefix)"
    assert query["ExpressionAttributeValues"][":prefix"] == "incoming/a b+"


def test_class_and_prefix_combine_with_and() -> None:
    query = shard_query(ListFilters(class_name="person", prefix="x/"), 0, None, 100, TABLE).request
    assert (
        query["FilterExpression"] == "attribute_exists(#counts.#class) AND begins_with(#source.#key, :prefix)"
    )


def test_model_id_filter_is_equality_on_the_model_and_combines_with_the_others() -> None:
    query = shard_query(ListFilters(prefix="x/", model_id="faces/2"), 0, None, 100, TABLE).request
    assert query["FilterExpression"] == "begins_with(#source.#key, :prefix) AND #model = :model"
    assert query["ExpressionAttributeNames"]["#model"] == "model_id"
    assert query["ExpressionAttributeValues"][":model"] == "faces/2"
    assert ListFilters(model_id="faces/2").uses_filter_expression()


def test_cursors_issued_without_a_model_filter_keep_their_fingerprint() -> None:
    """The model filter joins the digest only when set: cursors handed out before it existed stay valid."""
    assert ListFilters(prefix="a").fingerprint() == "adbd27039477e41f"  # its value before model_id existed
    assert ListFilters(prefix="a").fingerprint() != ListFilters(prefix="a", model_id="m/1").fingerprint()


def test_projection_reads_the_summary_fields_and_the_sort_key_only() -> None:
    query = shard_query(ListFilters(), 0, None, 10, TABLE).request
    names = query["ExpressionAttributeNames"]
    projected = {names[placeholder.strip()] for placeholder in query["ProjectionExpression"].split(",")}
    assert projected == {*SUMMARY_ATTRIBUTES, "list_sk"}
    assert "predictions" not in projected


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (ListFilters(), ListFilters(status=Status.SUCCEEDED)),
        (ListFilters(class_name="a"), ListFilters(prefix="a")),
        (
            ListFilters(since=datetime(2026, 1, 1, tzinfo=UTC)),
            ListFilters(until=datetime(2026, 1, 1, tzinfo=UTC)),
        ),
    ],
)
def test_different_filters_have_different_fingerprints(one: ListFilters, other: ListFilters) -> None:
    assert one.fingerprint() != other.fingerprint()


def test_equal_instants_in_other_offsets_have_the_same_fingerprint() -> None:
    utc = ListFilters(since=datetime(2026, 1, 1, 10, tzinfo=UTC))
    paris = ListFilters(since=datetime(2026, 1, 1, 11, tzinfo=timezone(timedelta(hours=1))))
    assert utc.fingerprint() == paris.fingerprint()
