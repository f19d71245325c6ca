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
from s3kp_core.video_frames import FrameLine


class ResultLinks(ResultType, frozen=True, kw_only=True):
    detail: Annotated[str, doc("this result", examples=["/results/0f1e2d3c4b5a69788796a5b4c3d2e1f0"])]
    annotated: Annotated[
        str | None,
        doc(
            "redirects to the annotated image (a video's MP4); null when there is none (failed or skipped)",
            examples=["/results/0f1e2d3c4b5a69788796a5b4c3d2e1f0/annotated"],
        ),
    ]
    frames: Annotated[
        str | None,
        doc(
            "a video's sampled frames with their predictions, a page at a time; null for images and for "
            "videos without frames (processing, failed)",
            examples=["/results/0f1e2d3c4b5a69788796a5b4c3d2e1f0/frames"],
        ),
    ] = None

    @classmethod
    def for_result(cls, summary: ResultSummary) -> ResultLinks:
        detail = f"/results/{summary.result_id}"
        has_frames = summary.video is not None and summary.video.frames_ref is not None
        return cls(
            detail=detail,
            annotated=f"{detail}/annotated" if summary.annotated is not None else None,
            frames=f"{detail}/frames" if has_frames else None,
        )


class ResultDetail(ResultRecord, frozen=True, kw_only=True):
    """One result with its predictions inlined (read from S3 when they were stored out of line)."""

    links: ResultLinks

    @classmethod
    def of(cls, record: ResultRecord) -> ResultDetail:
        links = ResultLinks.for_result(record)
        fields = {name: getattr(record, name) for name in ResultRecord.__struct_fields__}
        return cls(**fields, links=links)


class ResultItem(ResultSummary, frozen=True, kw_only=True):
    """A listed result: everything but the predictions."""

    links: ResultLinks

    @classmethod
    def of(cls, summary: ResultSummary) -> ResultItem:
        links = ResultLinks.for_result(summary)
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


class FramesPage(ResultType, frozen=True, kw_only=True):
    """A page of a video's sampled frames, in order."""

    items: list[FrameLine]
    next_offset: Annotated[
        int | None, doc("pass as `offset` (same `limit`) for the next page; null after the last frame")
    ]
    frames: Annotated[int, doc("the video's sampled frames, all pages together")]


class ErrorBody(ResultType, frozen=True, kw_only=True):
    message: Annotated[str, doc(examples=["limit: Input should be less than or equal to 100"])]
    details: Annotated[list[dict[str, Any]] | None, doc("one entry per invalid input")] = None


class Health(ResultType, frozen=True, kw_only=True):
    status: Literal["ok"] = "ok"


def error_response(description: str) -> OpenAPIResponse:
    """An OpenAPI `responses` entry whose body is ErrorBody."""
    return {"description": description, "content": {"application/json": {"model": ErrorBody}}}
