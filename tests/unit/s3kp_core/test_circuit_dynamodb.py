"""The circuit as one DynamoDB item: atomic transitions, one probe at a time, expiry read as closed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from s3kp_core.circuit import CircuitState
from s3kp_core.circuit_dynamodb import ITEM_PREFIX, STATE_TTL_SECONDS, DynamoDBCircuitStore

ENDPOINT = "https://detect.example.test/my-pose/3"
T0 = 1_800_000_000.0


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        yield dynamodb.create_table(
            TableName="idempotency",  # Powertools' layout (template.yaml IdempotencyTable)
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )


def test_a_closed_circuit_is_no_item(table: Any) -> None:
    assert DynamoDBCircuitStore(table, ENDPOINT).read(T0) is None
    assert table.scan()["Items"] == []


def test_only_the_first_trip_sees_the_transition_and_the_outage_keeps_its_start(table: Any) -> None:
    store = DynamoDBCircuitStore(table, ENDPOINT)

    first = store.trip(now=T0, retry_at=T0 + 15, reason_code="inference_unavailable", reason="down")
    second = store.trip(now=T0 + 20, retry_at=T0 + 35, reason_code="inference_unauthorized", reason="401")

    assert first is None
    assert second == CircuitState(
        opened_at=T0, retry_at=T0 + 15, reason_code="inference_unavailable", reason="down"
    )
    assert store.read(T0 + 21) == CircuitState(
        opened_at=T0, retry_at=T0 + 35, reason_code="inference_unauthorized", reason="401"
    )
    [item] = table.scan()["Items"]
    assert item["id"] == ITEM_PREFIX + ENDPOINT
    assert int(item["expiration"]) == int(T0 + 35) + STATE_TTL_SECONDS


def test_one_probe_at_a_time_and_only_once_the_interval_has_passed(table: Any) -> None:
    store = DynamoDBCircuitStore(table, ENDPOINT)
    assert not store.claim_probe(now=T0, until=T0 + 20)  # closed: nothing to probe
    store.trip(now=T0, retry_at=T0 + 15, reason_code="inference_unavailable", reason="down")

    assert not store.claim_probe(now=T0 + 10, until=T0 + 30)  # too early
    assert store.claim_probe(now=T0 + 15, until=T0 + 35)
    assert not store.claim_probe(now=T0 + 16, until=T0 + 36)  # someone is probing
    assert store.claim_probe(now=T0 + 36, until=T0 + 56)  # that probe's lease ran out

    store.trip(now=T0 + 40, retry_at=T0 + 55, reason_code="inference_unavailable", reason="down")
    assert store.claim_probe(now=T0 + 55, until=T0 + 75)  # a failed probe's trip frees the next one


def test_reset_closes_and_tells_what_it_closed(table: Any) -> None:
    store = DynamoDBCircuitStore(table, ENDPOINT)
    store.trip(now=T0, retry_at=T0 + 15, reason_code="inference_unavailable", reason="down")

    closed = store.reset()

    assert closed is not None
    assert closed.opened_at == T0
    assert store.reset() is None
    assert store.read(T0 + 16) is None


def test_an_expired_item_not_yet_deleted_by_dynamodb_is_closed_and_a_new_outage_starts_fresh(
    table: Any,
) -> None:
    store = DynamoDBCircuitStore(table, ENDPOINT)
    store.trip(now=T0, retry_at=T0 + 15, reason_code="inference_unavailable", reason="down")
    later = T0 + 15 + STATE_TTL_SECONDS + 1

    assert store.read(later) is None
    assert (
        store.trip(now=later, retry_at=later + 15, reason_code="inference_unavailable", reason="down") is None
    )
    state = store.read(later)
    assert state is not None
    assert state.opened_at == later


def test_each_endpoint_has_its_own_circuit_beside_powertools_records(table: Any) -> None:
    table.put_item(Item={"id": "fn.ingest_handler.process_once#abc", "status": "COMPLETED"})
    DynamoDBCircuitStore(table, ENDPOINT).trip(now=T0, retry_at=T0 + 15, reason_code="c", reason="r")

    assert DynamoDBCircuitStore(table, "https://other.test/p/1").read(T0) is None
    assert table.get_item(Key={"id": "fn.ingest_handler.process_once#abc"})["Item"]["status"] == "COMPLETED"
