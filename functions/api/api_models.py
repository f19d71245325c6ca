"""The API's response bodies. Result fields are those of the shared ResultRecord; the API adds links.

The shared result types are msgspec Structs (so the ingest function never imports pydantic, and defining
them costs the API's cold start next to nothing); pydantic, which Powertools' resolver validates and
documents responses with, sees them through `s3kp_core.results_pydantic`, with each field's
`description`/`examples` from its `doc()` annotation.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict, Field
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


# Each model's validator and serializer are built when a request first needs them (Powertools builds a
# route's validation on that route's first request too), not at import: a cold start answering
# GET /results/{id} never builds ResultPage's, one answering a list never builds ErrorBody's.
_BUILT_ON_FIRST_USE = ConfigDict(defer_build=True)


class ResultPage(BaseModel):
    model_config = _BUILT_ON_FIRST_USE

    items: list[ResultItem]
    next_cursor: str | None = Field(
        description="pass as `cursor` with the same filters for the next page; null on the last page. "
        "A page may hold fewer than `limit` items (even none) when filters discard most reads."
    )


class ErrorBody(BaseModel):
    model_config = _BUILT_ON_FIRST_USE

    message: str = Field(examples=["limit: Input should be less than or equal to 100"])
    details: list[dict[str, Any]] | None = Field(default=None, description="one entry per invalid input")


class Health(BaseModel):
    model_config = _BUILT_ON_FIRST_USE

    status: Literal["ok"] = "ok"


def error_response(description: str) -> OpenAPIResponse:
    """An OpenAPI `responses` entry whose body is ErrorBody."""
    return {"description": description, "content": {"application/json": {"model": ErrorBody}}}
