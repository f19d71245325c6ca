"""`s3kp up` prints the inference circuit's changes: opened (with why), closed (with how long it was open)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from s3kp_core.circuit_dynamodb import DynamoDBCircuitStore

from s3kp.local.circuit_watch import CircuitWatch

ENDPOINT = "http://127.0.0.1:9001/faces/2"
T0 = 1_800_000_000.0


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        yield boto3.resource("dynamodb", region_name="us-east-1").create_table(
            TableName="idempotency",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )


def test_the_watch_prints_the_opening_and_the_closing_once_each(table: Any) -> None:
    now = [T0]
    lines: list[str] = []
    watch = CircuitWatch(table, ENDPOINT, lines.append, clock=lambda: now[0])
    store = DynamoDBCircuitStore(table, ENDPOINT)  # what the ingest function writes

    watch.poll_once()
    store.trip(now=T0, retry_at=T0 + 15, reason_code="inference_unavailable", reason="inference endpoint "
               "unreachable: connection refused (4 attempts)")  # fmt: skip
    watch.poll_once()
    now[0] += 20
    store.trip(now=now[0], retry_at=now[0] + 15, reason_code="inference_unavailable", reason="same again")
    watch.poll_once()  # a failed probe: nothing new to say
    now[0] += 200
    store.reset()
    watch.poll_once()

    assert lines == [
        "  circuit OPEN   inference endpoint unreachable: connection refused (4 attempts)  (uploads wait for "
        "the endpoint; next probe in 15 s)",
        "  circuit CLOSED after 3 min 40 s: the endpoint answers again",
    ]


def test_another_endpoints_circuit_is_not_reported(table: Any) -> None:
    lines: list[str] = []
    DynamoDBCircuitStore(table, "https://elsewhere/p/1").trip(
        now=T0, retry_at=T0 + 15, reason_code="c", reason="r"
    )

    CircuitWatch(table, ENDPOINT, lines.append, clock=lambda: T0).poll_once()

    assert lines == []
