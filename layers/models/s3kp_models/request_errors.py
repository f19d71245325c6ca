"""What a request can do wrong (or a state it can wait out), each with the hosted API's status code.

Answered as `{"message": …}` by the local inference server (`s3kp.model_server.http_errors`) and by the
InferenceFunction alike; none of them ever carries the image or an API key.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error the client caused (or a state it can wait out), answered as `{"message": …}`."""

    status_code = 400

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class BadRequest(ApiError):
    status_code = 400


class InvalidImage(BadRequest):
    """The upstream wording, so clients that match on it keep working."""

    def __init__(self, cause: str) -> None:
        super().__init__(f"Could not load input image. Cause: {cause}")


class Unauthorized(ApiError):
    status_code = 401


class ModelNotFound(ApiError):
    status_code = 404

    def __init__(self, model_id: str, *, served: str = "GET /models lists the served models") -> None:
        super().__init__(f"Model {model_id!r} not found ({served})")


class PayloadTooLarge(ApiError):
    status_code = 413


def too_large_message(max_bytes: int) -> str:
    """The 413 answer to a body over the limit, before or while it is read."""
    return f"Request body is over the {max_bytes // (1024 * 1024)} MB limit; downsize the image"
