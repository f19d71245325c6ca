"""The export run: listing order kept, bounded memory, atomic files, the right filters."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest

from s3kp.export.run import ExportOptions, effective_filters, export, ordered_details
from s3kp.results_api import ApiError, ResultsApi


class FakeApi:
    """Lists `count` results and answers details after a random-ish delay, tracking reads in flight."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.listed = 0
        self.filters: Mapping[str, str] | None = None
        self.in_flight = 0
        self.max_ahead = 0  # how far detail reads ran ahead of what the writer consumed
        self.consumed = 0
        self._lock = threading.Lock()

    def iter_results(self, filters: Mapping[str, str]) -> Iterator[dict[str, Any]]:
        self.filters = filters
        for index in range(self.count):
            self.listed += 1
            yield {"result_id": f"{index:032x}", "status": "succeeded", "detections": 1}

    def detail(self, result_id: str) -> dict[str, Any]:
        index = int(result_id, 16)
        with self._lock:
            self.max_ahead = max(self.max_ahead, index - self.consumed)
        time.sleep(0.002 * (index % 3))  # out-of-order completion
        if index == self.fail_at:
            raise ApiError("GET /results/x: HTTP 503: predictions unavailable", 503)
        return {
            "result_id": result_id, "status": "succeeded", "source": {"bucket": "b", "key": f"k{index}"},
            "image": {"width": 10, "height": 10}, "predictions": [], "detections": 0,
        }  # fmt: skip


def test_details_come_back_in_listing_order_with_a_bounded_window() -> None:
    api = FakeApi(200)
    seen = []
    for item in ordered_details(cast(ResultsApi, api), api.iter_results({}), 4, lambda s: True):
        seen.append(int(item["result_id"], 16))
        api.consumed = len(seen)
    assert seen == list(range(200))
    assert api.max_ahead <= 4 * 4, "no more than the window is read ahead of the writer"


def test_a_failed_export_leaves_no_file_and_keeps_the_previous_one(tmp_path: Path) -> None:
    target = tmp_path / "results.jsonl"
    target.write_text("previous export\n")
    api = FakeApi(50, fail_at=30)

    with pytest.raises(ApiError):
        export(cast(ResultsApi, api), ExportOptions(format="jsonl", output=str(target), workers=2))

    assert target.read_text() == "previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"], "no partial or spool file left"
    assert not [t for t in threading.enumerate() if t.name.startswith("export")], "readers stopped"


def test_a_finished_export_replaces_the_file(tmp_path: Path) -> None:
    target = tmp_path / "results.jsonl"
    target.write_text("previous export\n")
    report = export(cast(ResultsApi, FakeApi(25)), ExportOptions(format="jsonl", output=str(target)))
    lines = target.read_text().splitlines()
    assert [json.loads(line)["source"]["key"] for line in lines] == [f"k{i}" for i in range(25)]
    assert report.counts.written == 25
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"]


def test_coco_and_csv_ask_for_succeeded_results_unless_told_otherwise() -> None:
    assert effective_filters(ExportOptions("coco", "x"))["status"] == "succeeded"
    assert effective_filters(ExportOptions("csv", "x", {"status": "failed"}))["status"] == "failed"
    assert "status" not in effective_filters(ExportOptions("jsonl", "x", {"class": "", "prefix": "a/"}))
    assert effective_filters(ExportOptions("jsonl", "x", {"class": "", "prefix": "a/"})) == {"prefix": "a/"}


def test_a_deployed_api_is_signed_with_sigv4_for_execute_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    api = ResultsApi("https://abc123.execute-api.eu-west-1.amazonaws.com")
    assert api.auth_mode == "sigv4"
    signer = api._signer
    assert signer is not None
    headers = signer.headers("https://abc123.execute-api.eu-west-1.amazonaws.com/results?limit=5")
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]
    assert "X-Amz-Date" in headers


def test_a_token_is_a_bearer_and_loopback_needs_no_credentials() -> None:
    assert ResultsApi("https://api.example.com", token="jwt").auth_mode == "bearer"
    assert ResultsApi("http://127.0.0.1:3000").auth_mode == "none"
    with pytest.raises(ValueError, match="http"):
        ResultsApi("ftp://example.com")
