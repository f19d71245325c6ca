"""The export run: listing order kept, bounded memory, atomic files, the right filters."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
import requests

from s3kp.cli import main
from s3kp.export.run import ExportOptions, effective_filters, export, ordered_details
from s3kp.results_api import ApiError, InsecureTokenError, ResultsApi
from s3kp.viewer.server import ViewerServer


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


@pytest.mark.parametrize(
    "url",
    ["http://api.example.com", "http://10.0.0.5:3000", "http://[2001:db8::1]/", "http://localhost.evil"],
)
def test_a_token_is_refused_over_plain_http_to_another_machine(url: str) -> None:
    with pytest.raises(InsecureTokenError, match="https"):
        ResultsApi(url, token="jwt")


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com",
        "http://127.0.0.1:3000",
        "http://127.0.0.2:3000",
        "http://localhost:3000",
        "http://[::1]:3000",
    ],
)
def test_a_token_is_sent_over_https_or_to_this_machine(url: str) -> None:
    assert ResultsApi(url, token="jwt").auth_mode == "bearer"


@pytest.mark.parametrize("command", ["export", "view"])
def test_the_cli_refuses_a_token_over_plain_http_as_a_usage_error_before_any_request(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """GIVEN `--token` (or $S3KP_API_TOKEN) and an http:// API on another machine THEN exit 2 with a clear
    line, and no request leaves (the token would travel in clear text)."""
    sent: list[str] = []

    def send(session: requests.Session, request: requests.PreparedRequest, **_: Any) -> None:
        sent.append(str(request.url))
        raise requests.ConnectionError("no network in this test")

    monkeypatch.setattr(requests.Session, "send", send)
    # Were the token accepted, the viewer would serve until stopped: make that a failure, not a hang.
    monkeypatch.setattr(ViewerServer, "serve_forever", lambda self: pytest.fail("the viewer started"))
    monkeypatch.setenv("S3KP_API_TOKEN", "secret-jwt")
    arguments = {
        "export": ["export", "--format", "jsonl", "-o", str(tmp_path / "x.jsonl")],
        "view": ["view", "--port", "0", "--no-browser"],
    }[command]

    status = main([*arguments, "--api-url", "http://api.example.com"])

    assert status == 2
    assert "https" in capsys.readouterr().err
    assert sent == []
    assert list(tmp_path.iterdir()) == []


class ScriptedListing(ResultsApi):
    """A results API whose listing pages are scripted: `pages[cursor]` is (item count, next cursor)."""

    def __init__(self, pages: Mapping[str | None, tuple[int, str | None]], calls_allowed: int = 50) -> None:
        super().__init__("http://127.0.0.1:9")
        self.pages = pages
        self.calls = 0
        self.calls_allowed = calls_allowed

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        self.calls += 1
        assert self.calls <= self.calls_allowed, "the client kept following the API's cursors"
        count, next_cursor = self.pages[(params or {}).get("cursor")]
        items = [{"result_id": f"{self.calls:016x}{n:016x}", "status": "failed"} for n in range(count)]
        return {"items": items, "next_cursor": next_cursor}


def test_a_listing_whose_cursor_comes_back_is_refused_instead_of_looping() -> None:
    """GIVEN an API whose third page points back at the first page's cursor THEN the listing stops
    with an error after reading each page once."""
    api = ScriptedListing({None: (2, "a"), "a": (2, "b"), "b": (2, "a")})
    seen: list[dict[str, Any]] = []

    with pytest.raises(ApiError, match="already followed"):
        seen.extend(api.iter_results({}))

    assert api.calls == 3
    assert len(seen) == 6


def test_a_listing_longer_than_the_page_bound_is_refused() -> None:
    class Endless(ScriptedListing):
        def __init__(self) -> None:
            super().__init__({})

        def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
            self.calls += 1
            assert self.calls <= self.calls_allowed, "the client kept following the API's cursors"
            return {"items": [], "next_cursor": f"fresh-{self.calls}"}

    api = Endless()
    with pytest.raises(ApiError, match="more than 5 pages"):
        list(api.iter_results({}, max_pages=5))
    assert api.calls == 5


def test_a_page_with_more_items_than_asked_for_is_refused() -> None:
    api = ScriptedListing({None: (11, None)})
    with pytest.raises(ApiError, match="11 items, more than the 10 asked for"):
        list(api.iter_results({}, limit=10))


def test_an_export_over_a_looping_listing_fails_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "results.jsonl"
    api = ScriptedListing({None: (3, "a"), "a": (3, "a")})

    with pytest.raises(ApiError, match="already followed"):
        export(api, ExportOptions(format="csv", output=str(target), workers=2))

    assert list(tmp_path.iterdir()) == []


class OutOfRangeKeypoints(FakeApi):
    """Every result has one detection whose only keypoint claims slot 50."""

    def detail(self, result_id: str) -> dict[str, Any]:
        keypoint = {"x": 1.0, "y": 2.0, "confidence": 0.9, "class_id": 50, "name": "nose"}
        detection = {
            "x": 5.0, "y": 5.0, "width": 4.0, "height": 4.0, "confidence": 0.8, "class_name": "face",
            "class_id": 0, "keypoints": [keypoint],
        }  # fmt: skip
        return super().detail(result_id) | {"predictions": [detection], "detections": 1}


def test_keypoints_outside_max_keypoints_are_warned_about_a_few_times_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = ExportOptions(format="coco", output=str(tmp_path / "x.json"), workers=2, max_keypoints=10)

    report = export(cast(ResultsApi, OutOfRangeKeypoints(15)), options)

    warnings = capsys.readouterr().err.splitlines()
    assert len(warnings) == 11, "ten warnings, then one line saying more were left unsaid"
    assert "class_id 50, outside 0..9" in warnings[0]
    assert report.counts.refused_keypoints == 15
    assert "15 keypoints left out" in report.line()
    assert report.as_dict()["refused_keypoints"] == 15


class FramesPages(ResultsApi):
    """A video's frames scripted page by page: `pages[offset]` is (frames served, next offset)."""

    def __init__(self, pages: Mapping[int, tuple[int, Any]]) -> None:
        super().__init__("http://127.0.0.1:9")
        self.pages = pages
        self.calls = 0

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        self.calls += 1
        assert self.calls <= 20, "the client kept following next_offset"
        offset = int((params or {})["offset"])
        count, following = self.pages[offset]
        return {"items": [{"frame": offset + n} for n in range(count)], "next_offset": following, "frames": 9}


def test_a_videos_frames_are_read_page_by_page_to_the_end() -> None:
    api = FramesPages({0: (4, 4), 4: (4, 8), 8: (1, None)})
    assert [frame["frame"] for frame in api.iter_frames("a" * 32, limit=4)] == list(range(9))


def test_frames_whose_next_offset_does_not_advance_are_refused_instead_of_looping() -> None:
    api = FramesPages({0: (4, 4), 4: (4, 4)})
    with pytest.raises(ApiError, match="does not advance"):
        list(api.iter_frames("a" * 32, limit=4))
    assert api.calls == 2
