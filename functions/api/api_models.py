"""The API's response bodies. Result fields are those of the shared ResultRecord; the API adds links.

Every body is a msgspec Struct on the shared results' base (`ResultType`): defining one costs the cold
start microseconds where a dataclass or a pydantic model costs about a millisecond. pydantic, which
Powertools' resolver validates and documents responses with, sees them through
`s3kp_core.results_pydantic`, built when a route first needs it (Powertools builds a route's validation
on that route's first request), with each field's `description`/`examples` from its `doc()` annotation.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from s3kp_core.results import SUMMARY_FIELDS, ResultRecord, ResultSummary, ResultType, doc


class ResultLinks(ResultType, frozen=True, kw_only=True):
    detail: Annotated[str, doc("this result", examples=["/results/0f1e2d3c4b5a69788796a5b4c3d2e1f0"])]
    annotated: Annotated[
        str | None,
        doc(
            "redirects to the annotated image; null when there is none (failed or skipped)",
            examples=["/results/0f1e2d3c4b5a69788796a5b4c3d2e1f0/annotated"],
        ),
    ]

    @classmethod
    def for_result(cls, result_id: str, has_annotated: bool) -> ResultLinks:
        detail = f"/results/{result_id}"
        return cls(detail=detail, annotated=f"{detail}/annotated" if has_annotated else None)


class ResultDetail(ResultRecord, frozen=True, kw_only=True):
    """One result with its predictions inlined (read from S3 when they were stored out of line)."""

    links: ResultLinks

    @classmethod
    def of(cls, record: ResultRecord) -> ResultDetail:
        links = ResultLinks.for_result(record.result_id, record.annotated is not None)
        fields = {name: getattr(record, name) for name in ResultRecord.__struct_fields__}
        return cls(**fields, links=links)


class ResultItem(ResultSummary, frozen=True, kw_only=True):
    """A listed result: everything but the predictions."""

    links: ResultLinks

    @classmethod
    def of(cls, summary: ResultSummary) -> ResultItem:
        links = ResultLinks.for_result(summary.result_id, summary.annotated is not None)
        return cls(**{name: getattr(summary, name) for name in SUMMARY_FIELDS}, links=links)


class ResultPage(ResultType, frozen=True, kw_only=True):
    items: list[ResultItem]
    next_cursor: Annotated[
        str | None,
        doc(
            "pass as `cursor` with the same filters for the next page; null on the last page. "
            "A page may hold fewer than `limit` items (even none) when filters discard most reads."
        ),
    ]


class ErrorBody(ResultType, frozen=True, kw_only=True):
    message: Annotated[str, doc(examples=["limit: Input should be less than or equal to 100"])]
    details: Annotated[list[dict[str, Any]] | None, doc("one entry per invalid input")] = None


class Health(ResultType, frozen=True, kw_only=True):
    status: Literal["ok"] = "ok"


def error_response(description: str) -> OpenAPIResponse:
    """An OpenAPI `responses` entry whose body is ErrorBody."""
    return {"description": description, "content": {"application/json": {"model": ErrorBody}}}
