"""Specification of the response models: one result definition, numbers as numbers."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from api_models import ResultDetail, ResultItem, ResultLinks
from s3kp_core.results import ResultRecord, ResultSummary
from s3kp_core.results_query import _summary_fields
from s3kp_core.results_schema import to_item


def test_the_summary_is_the_result_record_without_predictions() -> None:
    record_fields = ResultRecord.model_fields
    summary_fields = ResultSummary.model_fields
    assert set(record_fields) - set(summary_fields) == {"predictions", "predictions_ref"}
    for name, field in summary_fields.items():
        assert field.annotation == record_fields[name].annotation, name
        assert field.is_required() == record_fields[name].is_required(), name


def test_a_summary_read_from_a_dynamodb_item_has_plain_numbers(record_factory: Any) -> None:
    record = record_factory("incoming/a.jpg")
    item = to_item(record)
    assert isinstance(item["timings_ms"]["inference"], Decimal)
    summary = ResultSummary.model_validate(_summary_fields(item))
    dumped = json.loads(summary.model_dump_json())
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
    item = ResultItem.of(ResultSummary.model_validate(record.model_dump()))
    assert item.links.annotated is None
    assert item.reason is not None
