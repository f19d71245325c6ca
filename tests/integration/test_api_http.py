"""The results API end to end on the local AWS (moto server).

Resources come from the template (`create_resources`), items are written by the ingest side's real
store (`DynamoDBResultsStore`, out-of-line predictions included), and every request is a real HTTP API
v2 event (`s3kp.local.apigw`) through the real handler. Expected answers are computed from the data
set written, never hard-coded.
"""

from __future__ import annotations

import importlib
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import boto3
import pytest
import requests
from PIL import Image
from s3kp_core.cursors import CursorCodec
from s3kp_core.ordering import event_order
from s3kp_core.results import (
    ImageSize,
    Keypoint,
    ObjectRef,
    Prediction,
    Reason,
    ResultRecord,
    SourceObject,
    Status,
    result_id_for,
    summarize,
)
from s3kp_core.results_query import ListFilters, ResultsQuery
from s3kp_core.results_query_aws import DynamoDBItems, S3Documents
from s3kp_core.results_schema import format_timestamp, from_plain
from s3kp_core.results_store_dynamodb import DynamoDBResultsStore

from s3kp.local.apigw import http_api_event, http_response
from s3kp.local.lambda_runtime import LambdaContext
from s3kp.local.resources import LocalResources, api_environment, create_resources

BASE_TIME = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECORD_COUNT = 45
AWKWARD_KEYS = ("incoming/a/cat +1 é.jpg", "incoming/b/deep/er/雪 snow.png", "incoming/b/x,y&z=%20?.jpg")


def _classes(index: int) -> tuple[str, ...]:
    classes = ["person"] + (["face"] if index % 2 == 0 else []) + (["hand"] if index == 9 else [])
    return tuple(classes)


def _record(index: int, bucket: str) -> ResultRecord:
    """Statuses interleave; every three consecutive records share one timestamp (ties in the sort key)."""
    status = (Status.SUCCEEDED, Status.FAILED, Status.SKIPPED)[index % 3]
    key = (
        AWKWARD_KEYS[index]
        if index < len(AWKWARD_KEYS)
        else f"incoming/{'ab'[index % 4 > 0]}/img-{index:03}.jpg"
    )
    moment = BASE_TIME + timedelta(seconds=index // 3)
    result_id = result_id_for(bucket, key)
    predictions = None
    if status is Status.SUCCEEDED:
        predictions = tuple(
            Prediction(
                x=100.5 + n,
                y=80.25,
                width=50,
                height=60,
                confidence=0.9,
                class_name=name,
                class_id=n,
                detection_id=f"d{index}-{n}",
                keypoints=tuple(
                    Keypoint(x=float(k), y=float(k) + 0.5, confidence=0.75, class_id=k, name=f"kp{k}")
                    for k in range(5)
                ),
            )
            for n, name in enumerate(_classes(index))
        )
    counts, detections, keypoints = summarize(predictions or ())
    return ResultRecord(
        result_id=result_id,
        status=status,
        reason=None if status is Status.SUCCEEDED else Reason(code=f"code_{status.value}", message="why"),
        source=SourceObject(bucket=bucket, key=key, size=1000 + index),
        model_id="coco-pose/1",
        image=ImageSize(width=64, height=48) if status is Status.SUCCEEDED else None,
        predictions=predictions,
        counts=counts,
        detections=detections,
        keypoints=keypoints,
        timings_ms={"inference": 10.5 + index, "total": 20.25},
        annotated=ObjectRef(bucket=bucket, key=f"annotated/{result_id}.jpg") if predictions else None,
        created_at=moment,
        updated_at=moment,
    )


def _jpeg(index: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (index * 5 % 256, 80, 160)).save(buffer, "JPEG")
    return buffer.getvalue()


def _sort_key(record: ResultRecord) -> str:
    return f"{format_timestamp(record.updated_at)}#{record.result_id}"


@dataclass
class Stack:
    resources: LocalResources
    records: list[ResultRecord]
    spilled: ResultRecord
    handler: ModuleType

    def get(self, path: str, query: str | dict[str, Any] = "") -> tuple[int, dict[str, str], Any]:
        query_string = urlencode(query, quote_via=quote) if isinstance(query, dict) else query
        event = http_api_event("GET", quote(path), query_string, {"user-agent": "pytest"}, b"")
        status, headers, body = http_response(
            self.handler.lambda_handler(event, LambdaContext(function_name="api"))
        )
        lowered = {name.lower(): value for name, value in headers}
        return status, lowered, json.loads(body) if body else None

    def walk(self, limit: int, **filters: Any) -> list[list[str]]:
        """Every page of a listing, as result ids, following next_cursor to the end."""
        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            query = {k: v for k, v in {"limit": limit, "cursor": cursor, **filters}.items() if v is not None}
            status, _, body = self.get("/results", query)
            assert status == 200, body
            pages.append([item["result_id"] for item in body["items"]])
            cursor = body["next_cursor"]
            if cursor is None:
                return pages
            assert len(pages) < 200, "the listing does not terminate"

    def expected(self, predicate: Callable[[ResultRecord], bool]) -> list[str]:
        chosen = sorted((r for r in self.records if predicate(r)), key=_sort_key, reverse=True)
        return [record.result_id for record in chosen]


@pytest.fixture(scope="module")
def stack(aws_endpoint: str) -> Iterator[Stack]:
    requests.post(f"{aws_endpoint}/moto-api/reset", timeout=5).raise_for_status()
    resources = create_resources(aws_endpoint, name_prefix="s3kp-apitest")
    s3 = boto3.client("s3")
    table = boto3.resource("dynamodb").Table(resources.results_table)
    store = DynamoDBResultsStore(table, s3, predictions_prefix=resources.predictions_prefix)
    records = [_record(index, resources.bucket) for index in range(RECORD_COUNT)]
    for index, record in enumerate(records):
        if record.annotated is not None:
            s3.put_object(Bucket=record.annotated.bucket, Key=record.annotated.key, Body=_jpeg(index))
        if index != 0:
            assert store.save(record, order=event_order(None, record.updated_at, record.updated_at))
    # Record 0 (succeeded, awkward key) goes through a tiny item budget: its predictions move to S3.
    tiny = DynamoDBResultsStore(table, s3, predictions_prefix=resources.predictions_prefix, item_budget=600)
    assert tiny.save(records[0], order=event_order(None, records[0].updated_at, records[0].updated_at))

    patcher = pytest.MonkeyPatch()
    for name, value in api_environment(resources).items():
        patcher.setenv(name, value)
    import api_dependencies

    api_dependencies.reset()
    sys.modules.pop("api_handler", None)
    handler = importlib.import_module("api_handler")
    try:
        yield Stack(resources=resources, records=records, spilled=records[0], handler=handler)
    finally:
        patcher.undo()
        api_dependencies.reset()


# ---------------------------------------------------------------------------------------------- listing


@pytest.mark.parametrize("limit", [4, 13, 100])
def test_pagination_walks_every_item_exactly_once_newest_first(stack: Stack, limit: int) -> None:
    pages = stack.walk(limit)
    assert all(len(page) <= limit for page in pages)
    walked = [result_id for page in pages for result_id in page]
    assert walked == stack.expected(lambda _: True)
    assert len(set(walked)) == RECORD_COUNT


@pytest.mark.parametrize("status", list(Status))
def test_status_filter(stack: Stack, status: Status) -> None:
    walked = [i for page in stack.walk(6, status=status.value) for i in page]
    assert walked == stack.expected(lambda r: r.status is status)


@pytest.mark.parametrize("class_name", ["person", "face", "hand", "bicycle"])
def test_class_filter(stack: Stack, class_name: str) -> None:
    walked = [
        i for page in stack.walk(1 if class_name == "hand" else 8, **{"class": class_name}) for i in page
    ]
    assert walked == stack.expected(lambda r: class_name in r.counts)


@pytest.mark.parametrize("prefix", ["incoming/a/", "incoming/b/deep/", "incoming/a/cat +1", "elsewhere/"])
def test_prefix_filter(stack: Stack, prefix: str) -> None:
    walked = [i for page in stack.walk(8, prefix=prefix) for i in page]
    assert walked == stack.expected(lambda r: r.source.key.startswith(prefix))


def test_since_is_inclusive_and_until_exclusive(stack: Stack) -> None:
    since, until = BASE_TIME + timedelta(seconds=3), BASE_TIME + timedelta(seconds=9)
    walked = [
        i
        for page in stack.walk(4, since=since.isoformat(), until=until.isoformat().replace("+00:00", "Z"))
        for i in page
    ]
    assert walked == stack.expected(lambda r: since <= r.updated_at < until)
    assert len(walked) == 18  # six timestamps of three records each


def test_filters_combine(stack: Stack) -> None:
    since = BASE_TIME + timedelta(seconds=2)
    walked = [
        i
        for page in stack.walk(
            3, status="succeeded", **{"class": "face"}, prefix="incoming/b/", since=since.isoformat()
        )
        for i in page
    ]
    assert walked == stack.expected(
        lambda r: (
            r.status is Status.SUCCEEDED
            and "face" in r.counts
            and r.source.key.startswith("incoming/b/")
            and r.updated_at >= since
        )
    )
    assert walked  # the data set has such records: the test would notice a filter that drops everything


def test_list_items_are_summaries_with_links(stack: Stack) -> None:
    status, _, body = stack.get("/results", {"limit": 100})
    assert status == 200
    by_id = {item["result_id"]: item for item in body["items"]}
    for record in stack.records:
        item = by_id[record.result_id]
        assert "predictions" not in item
        assert item["counts"] == record.counts
        assert item["timings_ms"] == record.timings_ms
        assert item["source"]["key"] == record.source.key
        assert (item["links"]["annotated"] is not None) == (record.annotated is not None)


def test_a_small_read_budget_gives_short_pages_but_still_every_match_once(stack: Stack) -> None:
    """GIVEN a rare class and a read budget of one 2-item Query per shard
    WHEN the listing is walked THEN pages may be short or empty, yet every match appears exactly once."""
    query = ResultsQuery(
        items=DynamoDBItems(boto3.client("dynamodb"), stack.resources.results_table),
        documents=S3Documents(boto3.client("s3")),
        cursors=CursorCodec(b"budget-test-cursor-key"),
        table_name=stack.resources.results_table,
        filtered_page_size=2,
        max_queries_per_shard=1,
    )
    short_pages = 0
    for class_name in ("hand", "face", "person"):
        filters = ListFilters(class_name=class_name)
        pages, cursor = [], None
        while True:
            page = query.list_results(filters, 3, cursor)
            pages.append([item.result_id for item in page.items])
            cursor = page.next_cursor
            if cursor is None:
                break
        walked = [i for page in pages for i in page]
        assert walked == stack.expected(lambda r, c=class_name: c in r.counts)
        short_pages += sum(1 for page in pages[:-1] if len(page) < 3)
    assert short_pages, "the budget never cut a page short: the test does not exercise it"
    query.close()


def test_sequential_and_parallel_shard_reads_agree(stack: Stack) -> None:
    def make(parallel: bool) -> ResultsQuery:
        return ResultsQuery(
            items=DynamoDBItems(boto3.client("dynamodb"), stack.resources.results_table),
            documents=S3Documents(boto3.client("s3")),
            cursors=CursorCodec(b"parallel-test-cursor-key"),
            table_name=stack.resources.results_table,
            parallel=parallel,
        )

    parallel, sequential = make(True), make(False)
    filters = ListFilters(status=Status.FAILED)
    assert parallel.list_results(filters, 5, None) == sequential.list_results(filters, 5, None)
    parallel.close()


# ---------------------------------------------------------------------------------------------- one result


def test_get_one_returns_predictions_with_keypoints(stack: Stack) -> None:
    record = next(r for r in stack.records[1:] if r.status is Status.SUCCEEDED)
    status, _, body = stack.get(f"/results/{record.result_id}")
    assert status == 200
    assert from_plain({k: v for k, v in body.items() if k != "links"}, ResultRecord) == record
    assert body["predictions"][0]["keypoints"][0] == {
        "x": 0.0,
        "y": 0.5,
        "confidence": 0.75,
        "class_id": 0,
        "name": "kp0",
    }


def test_get_one_follows_the_pointer_to_out_of_line_predictions(stack: Stack) -> None:
    status, _, body = stack.get(f"/results/{stack.spilled.result_id}")
    assert status == 200
    assert body["predictions_ref"] is not None, "the fixture should have moved these predictions to S3"
    assert body["predictions_ref"]["key"].startswith(stack.resources.predictions_prefix)
    got = from_plain(body["predictions"], tuple[Prediction, ...])
    assert got == stack.spilled.predictions


@pytest.mark.parametrize("index", range(len(AWKWARD_KEYS)))
def test_lookup_by_source_with_awkward_keys(stack: Stack, index: int) -> None:
    record = stack.records[index]
    status, _, body = stack.get(
        "/results/by-source", {"bucket": record.source.bucket, "key": record.source.key}
    )
    assert status == 200, body
    assert body["result_id"] == record.result_id
    assert body["source"]["key"] == record.source.key


def test_lookup_by_source_of_an_unknown_object_is_404(stack: Stack) -> None:
    status, _, body = stack.get(
        "/results/by-source", {"bucket": stack.resources.bucket, "key": "incoming/nope.jpg"}
    )
    assert status == 404
    assert body["message"]


def test_the_annotated_redirect_downloads_the_jpeg(stack: Stack) -> None:
    index = next(i for i, r in enumerate(stack.records) if r.annotated is not None)
    record = stack.records[index]
    status, headers, _ = stack.get(f"/results/{record.result_id}/annotated")
    assert status == 302
    location = headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert query["X-Amz-Expires"] == [str(stack.handler.config.presign_expiry_seconds)]
    download = requests.get(location, timeout=5)
    assert download.status_code == 200
    assert download.content == _jpeg(index)
    assert Image.open(io.BytesIO(download.content)).format == "JPEG"


@pytest.mark.parametrize("status_value", [Status.FAILED, Status.SKIPPED])
def test_no_annotated_copy_is_404(stack: Stack, status_value: Status) -> None:
    record = next(r for r in stack.records if r.status is status_value)
    status, _, body = stack.get(f"/results/{record.result_id}/annotated")
    assert status == 404
    assert "no annotated image" in body["message"]


# ---------------------------------------------------------------------------------------------- bad input


def _first_cursor(stack: Stack, **filters: Any) -> str:
    status, _, body = stack.get("/results", {"limit": 2, **filters})
    assert status == 200
    assert body["next_cursor"]
    return str(body["next_cursor"])


def test_a_tampered_cursor_is_400(stack: Stack) -> None:
    cursor = _first_cursor(stack)
    payload, signature = cursor.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    status, _, body = stack.get("/results", {"cursor": f"{flipped}.{signature}"})
    assert status == 400
    assert "cursor" in body["message"]


@pytest.mark.parametrize(
    ("original", "reused_with"),
    [
        ({"status": "failed"}, {}),
        ({}, {"status": "failed"}),
        ({"class": "face"}, {"class": "person"}),
        ({"prefix": "incoming/a/"}, {"prefix": "incoming/"}),
        ({"since": "2026-03-01T12:00:00Z"}, {"since": "2000-01-01T00:00:00Z"}),
    ],
)
def test_a_cursor_cannot_read_outside_its_listing(
    stack: Stack, original: dict[str, str], reused_with: dict[str, str]
) -> None:
    cursor = _first_cursor(stack, **original)
    status, _, body = stack.get("/results", {"cursor": cursor, **reused_with})
    assert status == 400
    assert "other filters" in body["message"]


def test_a_cursor_of_another_deployment_is_400(stack: Stack) -> None:
    foreign = CursorCodec(b"another-deployment-key").encode(
        "9999-01-01T00:00:00.000Z#f", ListFilters().fingerprint()
    )
    status, _, body = stack.get("/results", {"cursor": foreign})
    assert status == 400
    assert "signature" in body["message"]


@pytest.mark.parametrize(
    ("path", "query", "expected_status"),
    [
        ("/results", {"limit": "0"}, 400),
        ("/results", {"limit": "1000"}, 400),
        ("/results", {"limit": "-1"}, 400),
        ("/results", {"status": "pending"}, 400),
        ("/results", {"since": "yesterday"}, 400),
        ("/results", {"until": "2026-02-30T00:00:00Z"}, 400),
        ("/results", {"cursor": "garbage"}, 400),
        ("/results/0123456789abcdef0123456789abcdef", {}, 404),
        ("/results/ZZZ", {}, 400),
        ("/results/../../etc/passwd", {}, 404),
        ("/results/0123456789abcdef0123456789abcdef/annotated/../../x", {}, 404),
        ("/results/by-source", {"bucket": "b"}, 400),
    ],
)
def test_every_bad_input_is_a_4xx_with_a_message(
    stack: Stack, path: str, query: dict[str, str], expected_status: int
) -> None:
    status, headers, body = stack.get(path, query)
    assert status == expected_status, body
    assert headers["content-type"].startswith("application/json")
    assert isinstance(body["message"], str)
    assert body["message"]


# ---------------------------------------------------------------------------------------------- over HTTP


def test_over_the_local_http_bridge_awkward_keys_and_the_redirect_work(stack: Stack) -> None:
    """The offline stack's :3000 bridge (on a free loopback port here) in front of the same handler: a
    real HTTP client, real URL encoding, and a redirect followed to moto's presigned URL."""
    from s3kp.local.http_api import HttpApiBridge

    bridge = HttpApiBridge("127.0.0.1", 0, stack.handler.lambda_handler)
    bridge.start()
    try:
        base = f"http://127.0.0.1:{bridge.port}"
        record = stack.records[0]  # succeeded, key with a space, `+` and `é`
        found = requests.get(
            f"{base}/results/by-source",
            params={"bucket": record.source.bucket, "key": record.source.key},
            timeout=10,
        )
        assert found.status_code == 200, found.text
        assert found.json()["result_id"] == record.result_id
        image = requests.get(f"{base}/results/{record.result_id}/annotated", timeout=10)
        assert image.history[0].status_code == 302
        assert image.content == _jpeg(0)
        missing = requests.get(f"{base}/results/{'0' * 32}", timeout=10)
        assert missing.status_code == 404
        assert missing.json()["message"]
    finally:
        bridge.stop()
