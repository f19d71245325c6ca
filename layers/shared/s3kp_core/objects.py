"""Reading source objects and writing outputs: the port the per-object flow uses.

Its S3 adapter, `objects_s3.S3ObjectStore`, translates S3's failures into the outcomes of
`s3kp_core.errors`, so the flow never sees botocore.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str | None
    content_type: str | None


class ObjectStore(ABC):
    @abstractmethod
    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> ObjectInfo:
        """Size and ETag of an object (version-aware)."""

    @abstractmethod
    def get(
        self, bucket: str, key: str, *, version_id: str | None = None, etag: str | None = None, max_bytes: int
    ) -> bytes:
        """The object's bytes; `etag` guards against reading a newer upload than the event's."""

    @abstractmethod
    def put(
        self, bucket: str, key: str, body: bytes, *, content_type: str, metadata: Mapping[str, str]
    ) -> None:
        """Write an output object."""

    @abstractmethod
    def delete(self, bucket: str, key: str) -> None:
        """Remove an output object this function wrote (a drawing no result points at)."""
