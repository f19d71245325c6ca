"""The API's routes: thin adapters from HTTP to the results reader. Validation comes from the annotations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from api_dependencies import Presigner, presigner, results_reader
from api_errors import ResultNotFoundError
from api_models import FramesPage, Health, ResultDetail, ResultItem, ResultPage, error_response
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.exceptions import BadRequestError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BeforeValidator
from s3kp_core.results import ResultRecord, Status
from s3kp_core.results_query import ListFilters, NoFramesError, ResultsReader

RESULT_ID_PATTERN = r"^[0-9a-f]{32}$"
MAX_LIMIT = 100
# A page of frames stays far below Lambda's 6 MB response (a frame of three 33-keypoint people is ~10 KB).
MAX_FRAMES_LIMIT = 200

# Powertools leaves the router's `__init__` unannotated (mypy: an untyped call); it takes no arguments.
router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]

Reader = Annotated[ResultsReader, Depends(results_reader)]
ResultId = Annotated[
    str, Path(pattern=RESULT_ID_PATTERN, description="32 lowercase hex characters", examples=["0" * 32])
]


def _iso_8601_only(value: Any) -> Any:
    """Pydantic would read `since=2020` as a Unix timestamp; the API promises ISO-8601 only."""
    if isinstance(value, str):
        if value.strip().lstrip("-").replace(".", "", 1).isdigit():
            raise ValueError("must be an ISO-8601 date or date-time, e.g. 2026-01-31T12:00:00Z")
        if " " in value.strip():
            raise ValueError("must be ISO-8601; a '+' in a query string must be sent URL-encoded as %2B")
    return value


IsoDateTime = Annotated[datetime | None, BeforeValidator(_iso_8601_only)]
BAD_REQUEST: dict[int, OpenAPIResponse] = {400: error_response("an input is invalid; `message` names it")}
NOT_FOUND: dict[int, OpenAPIResponse] = {404: error_response("no such result")}


@router.get("/health", summary="Liveness", tags=["health"])
def health() -> Health:
    return Health()


@router.get(
    "/results",
    summary="List results, newest first",
    description="A Query per listing shard, merged; `since` is inclusive, `until` exclusive "
    "(millisecond precision, UTC when no offset is given).",
    tags=["results"],
    responses=BAD_REQUEST,
)
def list_results(
    reader: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page")
    ] = None,
    status: Annotated[Status | None, Query()] = None,
    class_name: Annotated[
        str | None, Query(alias="class", min_length=1, max_length=128, description="has a detection of it")
    ] = None,
    prefix: Annotated[
        str | None, Query(min_length=1, max_length=1024, description="source key prefix")
    ] = None,
    since: Annotated[IsoDateTime, Query(description="ISO-8601, updated at or after")] = None,
    until: Annotated[IsoDateTime, Query(description="ISO-8601, updated before")] = None,
    model_id: Annotated[
        str | None,
        Query(min_length=3, max_length=128, description="made by this model (project/version)"),
    ] = None,
) -> ResultPage:
    filters = ListFilters(
        status=status, class_name=class_name, prefix=prefix, since=since, until=until, model_id=model_id
    )
    if since is not None and until is not None and _utc(since) >= _utc(until):
        raise BadRequestError("since must be earlier than until")
    page = reader.list_results(filters, limit, cursor)
    return ResultPage(items=[ResultItem.of(item) for item in page.items], next_cursor=page.next_cursor)


@router.get(
    "/results/by-source",
    summary="The result of one source object",
    description="URL-encode `key` (spaces, `+`, `/`, unicode are all fine once encoded).",
    tags=["results"],
    responses={**BAD_REQUEST, **NOT_FOUND},
)
def get_result_by_source(
    reader: Reader,
    bucket: Annotated[str, Query(min_length=3, max_length=63, description="source bucket")],
    key: Annotated[str, Query(min_length=1, max_length=1024, description="source object key")],
) -> ResultDetail:
    return ResultDetail.of(_found(reader.get_by_source(bucket, key)))


@router.get(
    "/results/<result_id>",
    summary="One result, with its predictions and keypoints",
    tags=["results"],
    responses={**BAD_REQUEST, **NOT_FOUND},
)
def get_result(reader: Reader, result_id: ResultId) -> ResultDetail:
    return ResultDetail.of(_found(reader.get(result_id)))


@router.get(
    "/results/<result_id>/frames",
    summary="A video's sampled frames with their predictions, in order",
    description="Frame `n` is shown at `n / video.fps_sampled` seconds; predictions are in the video's "
    "displayed pixels. Follow `next_offset` with the same `limit`.",
    tags=["results"],
    responses={
        **BAD_REQUEST,
        404: error_response("no such result, an image, or a video without frames (processing, failed)"),
        503: error_response("the frames document cannot be read"),
    },
)
def get_frames(
    reader: Reader,
    result_id: ResultId,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="the first frame of the page")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_FRAMES_LIMIT, description="frames per page")] = 50,
) -> FramesPage:
    try:
        page = reader.frames(result_id, offset, limit)
    except NoFramesError as error:
        raise ResultNotFoundError(str(error)) from None
    if page is None:
        raise ResultNotFoundError("no result with this id")
    return FramesPage(items=page.items, next_offset=page.next_offset, frames=page.frames)


@router.get(
    "/results/<result_id>/annotated",
    summary="Redirect to the annotated image (a video's: its annotated MP4)",
    description="302 to a presigned S3 URL that expires after PRESIGN_EXPIRY_SECONDS.",
    tags=["results"],
    responses={
        302: {"description": "`Location` is a short-lived presigned S3 GET URL of the annotated JPEG or MP4"},
        **BAD_REQUEST,
        404: error_response("no such result, or it has no annotated image (failed or skipped)"),
    },
)
def get_annotated(
    reader: Reader, links: Annotated[Presigner, Depends(presigner)], result_id: ResultId
) -> Response[None]:
    record = _found(reader.get(result_id))
    if record.annotated is None:
        raise ResultNotFoundError(f"result {result_id} has no annotated image (status {record.status.value})")
    return Response(
        status_code=302,
        headers={"Location": links.url(record.annotated), "Cache-Control": "no-store"},
    )


def _found(record: ResultRecord | None) -> ResultRecord:
    if record is None:
        raise ResultNotFoundError("no result with this id")
    return record


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
