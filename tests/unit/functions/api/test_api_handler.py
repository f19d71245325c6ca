"""Specification of the API's HTTP behaviour, with the results store replaced by an in-memory fake."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from s3kp_core.results import Status

HEX_ID = "0123456789abcdef0123456789abcdef"


def test_health_answers_ok(unit_api: Any) -> None:
    call = unit_api.get("/health")
    assert (call.status, call.json()) == (200, {"status": "ok"})


def test_get_one_returns_the_full_record_with_numbers_as_numbers(unit_api: Any, record_factory: Any) -> None:
    record = record_factory("incoming/a.jpg")
    unit_api.reader.records.append(record)
    call = unit_api.get(f"/results/{record.result_id}")
    assert call.status == 200
    body = call.json()
    assert body["result_id"] == record.result_id
    assert body["source"]["bucket"] == "uploads"
    assert body["source"]["key"] == "incoming/a.jpg"
    assert body["source"]["size"] == 1234
    prediction = body["predictions"][0]
    assert prediction["confidence"] == 0.875
    assert isinstance(prediction["confidence"], float)
    assert prediction["keypoints"][0]["name"] == "nose"
    assert body["counts"] == {"person": 1}
    assert body["timings_ms"] == {"inference": 12.5}
    assert body["links"] == {
        "detail": f"/results/{record.result_id}",
        "annotated": f"/results/{record.result_id}/annotated",
        "frames": None,  # a video's only
    }


def test_response_field_names_are_the_shared_result_models(unit_api: Any, record_factory: Any) -> None:
    record = record_factory("incoming/a.jpg")
    unit_api.reader.records.append(record)
    detail = unit_api.get(f"/results/{record.result_id}").json()
    assert set(detail) - {"links"} <= set(type(record).__struct_fields__)
    item = unit_api.get("/results").json()["items"][0]
    assert set(item) - {"links"} <= set(type(record).__struct_fields__)
    assert "predictions" not in item


@pytest.mark.parametrize(
    "key", ["incoming/cat +1 é.jpg", "incoming/a/b/c.png", "incoming/x,y&z=1?.jpg", "雪.jpg"]
)
def test_lookup_by_source_object_handles_awkward_keys(unit_api: Any, record_factory: Any, key: str) -> None:
    record = record_factory(key)
    unit_api.reader.records.append(record)
    call = unit_api.get("/results/by-source", f"bucket=uploads&key={quote(key, safe='')}")
    assert call.status == 200, call.body
    assert call.json()["source"]["key"] == key


def test_unknown_source_object_is_404(unit_api: Any) -> None:
    call = unit_api.get("/results/by-source", "bucket=uploads&key=missing.jpg")
    assert call.status == 404
    assert "no result" in call.json()["message"]


def test_list_passes_filters_and_returns_a_page(unit_api: Any, record_factory: Any) -> None:
    unit_api.reader.records.extend(record_factory(f"incoming/{n}.jpg", minutes=n) for n in range(3))
    call = unit_api.get(
        "/results",
        "limit=2&status=failed&class=left%20hand&prefix=incoming%2Fa%20b&since=2026-01-01T00:00:00Z",
    )
    assert call.status == 200, call.body
    body = call.json()
    assert len(body["items"]) == 2
    assert body["next_cursor"]
    filters, limit, cursor = unit_api.reader.listings[-1]
    assert (filters.status, filters.class_name, filters.prefix, limit, cursor) == (
        Status.FAILED,
        "left hand",
        "incoming/a b",
        2,
        None,
    )
    assert filters.since is not None
    assert filters.since.year == 2026


def test_list_filters_by_model_id(unit_api: Any) -> None:
    assert unit_api.get("/results", "model_id=faces%2F2").status == 200
    assert unit_api.reader.listings[-1][0].model_id == "faces/2"
    assert unit_api.get("/results", "model_id=x").status == 400


def test_list_defaults_to_twenty(unit_api: Any) -> None:
    assert unit_api.get("/results").status == 200
    assert unit_api.reader.listings[-1][1] == 20


def test_annotated_redirects_to_the_presigned_url(unit_api: Any, record_factory: Any) -> None:
    record = record_factory("incoming/a.jpg")
    unit_api.reader.records.append(record)
    call = unit_api.get(f"/results/{record.result_id}/annotated")
    assert call.status == 302
    assert call.headers["location"].startswith("https://presigned.example/uploads/annotated/")
    assert call.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("status", [Status.FAILED, Status.SKIPPED])
def test_annotated_is_404_without_an_annotated_copy(
    unit_api: Any, record_factory: Any, status: Status
) -> None:
    record = record_factory("incoming/bad.jpg", status=status)
    unit_api.reader.records.append(record)
    call = unit_api.get(f"/results/{record.result_id}/annotated")
    assert call.status == 404
    assert "no annotated image" in call.json()["message"]


@pytest.mark.parametrize(
    ("path", "query", "status", "mentions"),
    [
        ("/results", "limit=0", 400, "limit"),
        ("/results", "limit=101", 400, "limit"),
        ("/results", "limit=ten", 400, "limit"),
        ("/results", "status=done", 400, "status"),
        ("/results", "since=yesterday", 400, "since"),
        ("/results", "until=2026-13-01", 400, "until"),
        ("/results", "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", 400, "since"),
        ("/results", "class=", 400, "class"),
        ("/results", "cursor=not-a-cursor", 400, "cursor"),
        ("/results", "cursor=" + "a" * 600, 400, "cursor"),
        ("/results/by-source", "bucket=uploads", 400, "key"),
        ("/results/by-source", "key=a.jpg", 400, "bucket"),
        ("/results/NOT-AN-ID", "", 400, "result_id"),
        ("/results/..%2F..%2Fetc%2Fpasswd", "", 404, "no route"),
        ("/results/" + HEX_ID, "", 404, "no result"),
        ("/results/" + HEX_ID + "/annotated", "", 404, "no result"),
        ("/results/" + HEX_ID + "/../health", "", 404, "no route"),
        ("/nothing-here", "", 404, "no route"),
    ],
)
def test_bad_input_is_a_4xx_json_message_naming_the_problem(
    unit_api: Any, path: str, query: str, status: int, mentions: str
) -> None:
    call = unit_api.get(path, query)
    assert call.status == status, call.body
    assert call.headers["content-type"].startswith("application/json")
    body = call.json()
    assert mentions in body["message"]
    assert "Traceback" not in call.body.decode()


def test_validation_errors_list_every_problem_in_details(unit_api: Any) -> None:
    body = unit_api.get("/results", "limit=0&status=done").json()
    assert {(d["in"], d["location"]) for d in body["details"]} == {("query", "limit"), ("query", "status")}


def test_a_cursor_from_other_filters_is_a_400(unit_api: Any) -> None:
    cursor = unit_api.get("/results", "status=failed").json()["next_cursor"]
    call = unit_api.get("/results", f"status=succeeded&cursor={cursor}")
    assert call.status == 400
    assert "other filters" in call.json()["message"]


def test_an_unexpected_error_is_a_500_without_details(unit_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(unit_api.reader, "get", explode)
    call = unit_api.get(f"/results/{HEX_ID}")
    assert call.status == 500
    assert "secret internals" not in call.body.decode()
    assert call.json()["message"].startswith("internal error")


def test_cors_headers_answer_a_browser_origin(unit_api: Any) -> None:
    call = unit_api.get("/health", headers={"Origin": "https://app.example"})
    assert call.headers["access-control-allow-origin"] == "*"


def test_openapi_document_lists_the_routes(unit_api: Any) -> None:
    call = unit_api.get("/openapi.json")
    assert call.status == 200
    paths = call.json()["paths"]
    assert {
        "/results",
        "/results/{result_id}",
        "/results/{result_id}/annotated",
        "/results/by-source",
        "/health",
    } <= set(paths)


def test_swagger_ui_is_served(unit_api: Any) -> None:
    call = unit_api.get("/swagger")
    assert call.status == 200
    assert re.search(rb"<title>\s*Swagger UI", call.body)


@pytest.mark.parametrize(
    "value", ["2020", "1700000000", "1700000000.5", "2026-01-01T00:00:00 02:00", "2026-02-30", "now"]
)
def test_dates_must_be_iso_8601(unit_api: Any, value: str) -> None:
    call = unit_api.get("/results", f"since={quote(value)}")
    assert call.status == 400
    assert "since" in call.json()["message"]


@pytest.mark.parametrize("value", ["2026-01-01", "2026-01-01T10:00:00Z", "2026-01-01T10:00:00.123%2B02:00"])
def test_iso_8601_dates_and_offsets_are_accepted(unit_api: Any, value: str) -> None:
    assert unit_api.get("/results", f"until={value}").status == 200


def test_a_videos_frames_are_served_a_page_at_a_time(unit_api: Any, record_factory: Any) -> None:
    from s3kp_core.video_frames import FrameLine

    record = record_factory("incoming/clip.mp4")
    unit_api.reader.records.append(record)
    prediction = record.predictions[0]
    unit_api.reader.frame_lines[record.result_id] = [
        FrameLine(frame=n, time_seconds=n / 5, predictions=(prediction,)) for n in range(7)
    ]
    first = unit_api.get(f"/results/{record.result_id}/frames", "limit=5")
    assert first.status == 200, first.body
    body = first.json()
    assert [item["frame"] for item in body["items"]] == [0, 1, 2, 3, 4]
    assert body["items"][1]["time_seconds"] == 0.2
    assert body["items"][0]["predictions"][0]["keypoints"][0]["name"] == "nose"
    assert (body["next_offset"], body["frames"]) == (5, 7)
    rest = unit_api.get(f"/results/{record.result_id}/frames", "limit=5&offset=5").json()
    assert ([item["frame"] for item in rest["items"]], rest["next_offset"]) == ([5, 6], None)


def test_frames_of_an_image_or_an_unknown_result_are_404_and_a_huge_page_is_400(
    unit_api: Any, record_factory: Any
) -> None:
    image = record_factory("incoming/photo.jpg")
    unit_api.reader.records.append(image)
    call = unit_api.get(f"/results/{image.result_id}/frames")
    assert (call.status, call.json()["message"]) == (
        404,
        f"result {image.result_id} is an image: it has no frames",
    )
    assert unit_api.get(f"/results/{HEX_ID}/frames").status == 404
    too_many = unit_api.get(f"/results/{image.result_id}/frames", "limit=201")
    assert too_many.status == 400
    assert "limit" in too_many.json()["message"]
