"""Every error the API returns is JSON `{"message": ..., "details": ...}`, never a stack trace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from s3kp_core.cursors import CursorError
from s3kp_core.results_query import PredictionsUnavailableError

Handler = TypeVar("Handler", bound=Callable[..., Response[Any]])


class ResultNotFoundError(Exception):
    """The id or source object has no result (or the result has no such part): a 404 with this message.

    Distinct from Powertools' NotFoundError, which `app.not_found` handles as "no such route".
    """


def handles(app: APIGatewayHttpResolver, error: type[Exception]) -> Callable[[Handler], Handler]:
    """`app.exception_handler(error)` with its type: Powertools leaves the decorator it returns unannotated,
    which would make every handler below untyped for mypy. It registers the function and returns it."""
    decorator: Callable[[Handler], Handler] = app.exception_handler(error)
    return decorator


def register(app: APIGatewayHttpResolver, logger: Logger) -> None:
    @handles(app, RequestValidationError)
    def invalid_request(error: RequestValidationError) -> Response[Any]:
        details = [_detail(problem) for problem in error.errors()]
        message = "; ".join(
            f"{d['location']}: {d['problem']}" if d["location"] else d["problem"] for d in details
        )
        return _error(400, f"invalid request: {message}", details)

    @handles(app, CursorError)
    def invalid_cursor(error: CursorError) -> Response[Any]:
        return _error(400, f"invalid cursor: {error}")

    @handles(app, ResultNotFoundError)
    def result_not_found(error: ResultNotFoundError) -> Response[Any]:
        return _error(404, str(error))

    @handles(app, ServiceError)
    def service_error(error: ServiceError) -> Response[Any]:
        return _error(error.status_code, error.msg if isinstance(error.msg, str) else str(error.msg))

    @handles(app, PredictionsUnavailableError)
    def predictions_unavailable(error: PredictionsUnavailableError) -> Response[Any]:
        logger.warning("predictions unavailable", extra={"error": str(error)})
        return _error(503, str(error))

    @app.not_found
    def not_found(_: Exception) -> Response[Any]:
        return _error(404, f"no route for {app.current_event.http_method} {app.current_event.path}")

    @handles(app, Exception)
    def unexpected(error: Exception) -> Response[Any]:
        logger.exception("unhandled error")
        return _error(500, "internal error; the request id is in the x-amzn-requestid response header")


def _detail(problem: dict[str, Any]) -> dict[str, Any]:
    # Powertools locations look like ("query", "limit"); the body location is the whole payload.
    location = [str(part) for part in problem.get("loc", ())]
    name = ".".join(location[1:]) if len(location) > 1 else ""
    return {
        "in": location[0] if location else "request",
        "location": name,
        "problem": problem.get("msg", "invalid"),
    }


def _error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> Response[Any]:
    body: dict[str, Any] = {"message": message}
    if details is not None:
        body["details"] = details
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)
