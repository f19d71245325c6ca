"""The S3 implementation of `objects.ObjectStore`.

S3's failures are translated into the processing outcomes of `s3kp_core.errors` here, so the flow in
`processing` never sees botocore: a missing object (or one replaced since the event, detected with
`IfMatch` on the event's ETag) is skipped, a refused read is permanent, anything else is transient.
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
            raise errors.TransientError(
                errors.OUTPUT_WRITE_FAILED, f"writing s3://{bucket}/{key} failed: {error}"
            ) from None

    def delete(self, bucket: str, key: str) -> None:
        try:
            self._s3.delete_object(Bucket=bucket, Key=key)
        except Exception as error:
            raise errors.TransientError(
                errors.OUTPUT_WRITE_FAILED, f"deleting s3://{bucket}/{key} failed: {error}"
            ) from None


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


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
