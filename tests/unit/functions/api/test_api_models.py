"""Specification of the response models: one result definition, numbers as numbers."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from api_models import ResultDetail, ResultItem, ResultLinks
from msgspec import NODEFAULT
from msgspec.structs import fields
from pydantic import TypeAdapter
from s3kp_core.results import SUMMARY_FIELDS, ResultRecord, ResultSummary
from s3kp_core.results_query import _summary_fields
from s3kp_core.results_schema import from_plain, to_item


def test_the_summary_is_the_result_record_without_predictions() -> None:
    record_fields = {f.name: f for f in fields(ResultRecord)}
    summary_fields = {f.name: f for f in fields(ResultSummary)}
    assert set(record_fields) - set(summary_fields) == {"predictions", "predictions_ref"}
    for name, field in summary_fields.items():
        assert field.type == record_fields[name].type, name
        required = field.default is NODEFAULT and field.default_factory is NODEFAULT
        assert required == (
            record_fields[name].default is NODEFAULT and record_fields[name].default_factory is NODEFAULT
        )


def test_a_summary_read_from_a_dynamodb_item_has_plain_numbers(record_factory: Any) -> None:
    record = record_factory("incoming/a.jpg")
    item = to_item(record)
    assert isinstance(item["timings_ms"]["inference"], Decimal)
    summary = from_plain(_summary_fields(item), ResultSummary)
    dumped = json.loads(TypeAdapter(ResultSummary).dump_json(summary))
    assert dumped["timings_ms"] == {"inference": 12.5}
    assert dumped["counts"] == {"person": 1}
    assert dumped["image"] == {"width": 640, "height": 480}


def test_links_point_at_the_detail_and_annotated_routes(record_factory: Any) -> None:
    record = record_factory("incoming/a.jpg")
    detail = ResultDetail.of(record)
    assert detail.links == ResultLinks(
        detail=f"/results/{record.result_id}", annotated=f"/results/{record.result_id}/annotated"
    )
    assert detail.predictions == record.predictions


def test_a_result_without_annotated_copy_has_no_annotated_link(record_factory: Any) -> None:
    from s3kp_core.results import Status

    record = record_factory("incoming/bad.jpg", status=Status.FAILED)
    item = ResultItem.of(ResultSummary(**{name: getattr(record, name) for name in SUMMARY_FIELDS}))
    assert item.links.annotated is None
    assert item.reason is not None


def test_the_openapi_document_keeps_the_field_descriptions_of_the_shared_result_types(unit_api: Any) -> None:
    """The result types are msgspec Structs: their `doc()` annotations must still reach the API's schemas."""
    schemas = unit_api.get("/openapi.json").json()["components"]["schemas"]

    fingerprint = schemas["ResultItem"]["properties"]["fingerprint"]
    assert fingerprint["description"].startswith("digest of the model and the inference settings")
    assert schemas["ResultDetail"]["properties"]["predictions_ref"]["description"].startswith(
        "S3 JSON document"
    )
    assert schemas["Keypoint"]["properties"]["name"]["description"] == "the keypoint's label, e.g. `left_eye`"
    assert schemas["Reason"]["properties"]["code"]["examples"] == ["image_undecodable"]
    assert schemas["ResultLinks"]["properties"]["annotated"]["description"].startswith("redirects to")
    assert set(schemas["ResultDetail"]["required"]) >= {"result_id", "status", "source", "links"}
