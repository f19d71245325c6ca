"""Errors shaped like the hosted Roboflow API: `{"message": …}` with its status, 422 as `{"detail": […]}`.

The errors themselves (`ApiError` and its kinds) are `s3kp_models.request_errors`, shared with the
InferenceFunction; this module answers them, and FastAPI's own, in the server.

Nothing here ever echoes the API key: it travels in the query string (and in v1 JSON bodies), so the
validation handler drops the offending `input` values and the access log is redacted (`redact.py`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from s3kp_models.request_errors import ApiError

logger = logging.getLogger(__name__)


def api_error_response(error: ApiError) -> JSONResponse:
    return JSONResponse({"message": error.message}, status_code=error.status_code)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return api_error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Pydantic's `input` may be a whole v1 JSON body, API key included: keep only where and why.
    detail = [_without_input(error) for error in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


def _without_input(error: Any) -> dict[str, Any]:
    kept = {key: value for key, value in dict(error).items() if key in ("type", "loc", "msg")}
    kept["loc"] = list(kept.get("loc", ()))
    return kept


async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
    # The client learns nothing; the operator gets the traceback (the API key never reaches code that raises).
    logger.error("unhandled %s while serving a request", type(exc).__name__, exc_info=exc)
    return JSONResponse({"message": "Internal error."}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _internal_error)
