"""The S3 implementation of `objects.ObjectStore`.

S3's failures are translated into the processing outcomes of `s3kp_core.errors` here, so the flow in
`processing` never sees botocore: a missing object (or one replaced since the event, detected with
`IfMatch` on the event's ETag) is skipped, a refused read is permanent, anything else is transient. A
write S3 refuses with a 4xx is permanent too (`write_refusal`): sending the same request again gets the
same answer, so retrying it only walks the message to the dead-letter queue with nothing recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from s3kp_core import errors
from s3kp_core.objects import ObjectInfo, ObjectStore

_MISSING = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})
_CHANGED = frozenset({"PreconditionFailed", "412"})
_REFUSED = frozenset({"AccessDenied", "403", "InvalidObjectState", "NoSuchBucket"})
# A 4xx that another try can pass: throttling, a timeout or an interrupted upload, a clock or credential that
# gets refreshed, a conflicting operation still in progress. Any other 4xx refuses the write itself.
_RETRYABLE_WRITE_CODES = frozenset(
    {
        "SlowDown", "Throttling", "ThrottlingException", "TooManyRequests", "RequestLimitExceeded",
        "RequestTimeout", "RequestTimeTooSkewed", "ExpiredToken", "TokenRefreshRequired",
        "OperationAborted", "ConditionalRequestConflict", "BadDigest", "IncompleteBody",
    }
)  # fmt: skip
_RETRYABLE_WRITE_STATUSES = frozenset({408, 409, 429})


def url_safe_metadata(value: str) -> str:
    """S3 user metadata travels in HTTP headers (ASCII only): percent-encode everything else."""
    return quote(value, safe="/")


class S3ObjectStore(ObjectStore):
    def __init__(self, s3_client: Any) -> None:
        self._s3 = s3_client

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectInfo:
        arguments = {"Bucket": bucket, "Key": key} | ({"VersionId": version_id} if version_id else {})
        try:
            response = self._s3.head_object(**arguments)
        except Exception as error:
            raise _translate(error, bucket, key) from None
        return ObjectInfo(
            size=int(response["ContentLength"]),
            etag=str(response.get("ETag", "")).strip('"') or None,
            content_type=response.get("ContentType"),
        )

    def get(
        self, bucket: str, key: str, *, version_id: str | None = None, etag: str | None = None, max_bytes: int
    ) -> bytes:
        arguments: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            arguments["VersionId"] = version_id
        elif etag:
            arguments["IfMatch"] = f'"{etag}"'
        try:
            body = self._s3.get_object(**arguments)["Body"]
            # Read one byte past the limit: the event's size can be absent, and objects can be replaced.
            data: bytes = body.read(max_bytes + 1)
            body.close()
        except Exception as error:
            raise _translate(error, bucket, key) from None
        if len(data) > max_bytes:
            raise errors.PermanentError(errors.OBJECT_TOO_LARGE, f"the object exceeds {max_bytes} bytes")
        return data

    def put(
        self, bucket: str, key: str, body: bytes, *, content_type: str, metadata: Mapping[str, str]
    ) -> None:
        try:
            self._s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                Metadata={name: url_safe_metadata(value) for name, value in metadata.items()},
            )
        except Exception as error:
            raise write_failure(error, f"s3://{bucket}/{key}") from None

    def delete(self, bucket: str, key: str) -> None:
        try:
            self._s3.delete_object(Bucket=bucket, Key=key)
        except Exception as error:
            raise errors.TransientError(
                errors.OUTPUT_WRITE_FAILED, f"deleting s3://{bucket}/{key} failed: {error}"
            ) from None


def read_failure(error: Exception, bucket: str, key: str) -> errors.ProcessingError:
    """The outcome of a failed read of `s3://bucket/key`: skipped when gone or replaced, permanent when
    refused, else retried (for readers of their own, e.g. the video function's ranged reads)."""
    return _translate(error, bucket, key)


def _translate(error: Exception, bucket: str, key: str) -> errors.ProcessingError:
    code = _error_code(error)
    where = f"s3://{bucket}/{key}"
    if code in _MISSING:
        return errors.Skipped(errors.OBJECT_MISSING, f"{where} no longer exists (deleted since the event)")
    if code in _CHANGED:
        return errors.Skipped(
            errors.OBJECT_MISSING, f"{where} was replaced since the event; the newer upload has its own event"
        )
    if code in _REFUSED:
        return errors.PermanentError(errors.OBJECT_UNREADABLE, f"reading {where} was refused: {code}")
    return errors.TransientError(
        errors.OBJECT_READ_FAILED, f"reading {where} failed: {code or type(error).__name__}"
    )


def write_refusal(error: BaseException) -> str | None:
    """`Code (HTTP nnn): S3's message` when S3 refused a write for good (a 4xx that another try would get
    again), else None (5xx, throttling, a timeout, a network error: worth retrying)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    details = response.get("Error") or {}
    code = str(details.get("Code") or "")
    if not isinstance(status, int) or not 400 <= status < 500 or status in _RETRYABLE_WRITE_STATUSES:
        return None
    if code in _RETRYABLE_WRITE_CODES or "Throttl" in code:  # also KMS.ThrottlingException and kin
        return None
    message = " ".join(str(details.get("Message") or "").split())
    message = message if len(message) <= 200 else message[:199] + "…"
    return f"{code or 'HTTP error'} (HTTP {status})" + (f": {message}" if message else "")


def write_failure(error: BaseException, where: str) -> errors.ProcessingError:
    """The outcome of a failed write to `where` (an s3:// URI): permanent when S3 refused it, else retried."""
    refusal = write_refusal(error)
    if refusal is not None:
        return errors.PermanentError(errors.OUTPUT_WRITE_REFUSED, f"S3 refused writing {where}: {refusal}")
    return errors.TransientError(errors.OUTPUT_WRITE_FAILED, f"writing {where} failed: {error}")


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
