"""An S3 object version as a seekable, read-only file, read in ranged GETs: what PyAV reads a video from.

A segment reads its own part of a video (plus the container's index), not the whole object: a ten-minute
video's ten segments together download it about once, where a download per segment would cost ten times
that. Reads are whole chunks (`CHUNK_BYTES`) kept in a small cache, so the demuxer's many small reads and
short seeks back cost one request per chunk. Every GET names the event's version (or its ETag, `If-Match`),
so a video replaced mid-way is never read half old, half new: S3's errors become the flow's outcomes
(`objects_s3.read_failure`: gone or replaced → skipped, refused → failed, else retried).
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, Final, cast

from s3kp_core.objects_s3 import read_failure
from s3kp_core.results import SourceObject

CHUNK_BYTES: Final = 8 * 1024 * 1024
CACHED_CHUNKS: Final = 3  # the index at the end of an MP4, the chunk being read, the one before it


class S3RangeReader(io.RawIOBase):
    def __init__(
        self,
        client: Any,
        source: SourceObject,
        size: int,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        cached_chunks: int = CACHED_CHUNKS,
    ) -> None:
        """`size`: the object's length (from the event or a HEAD); `source` names its version or ETag."""
        self._client = client
        self._source = source
        self._size = size
        self._chunk_bytes = chunk_bytes
        self._cached = cached_chunks
        self._chunks: OrderedDict[int, bytes] = OrderedDict()
        self._position = 0
        self.requests = 0
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError("negative seek position")
        self._position = position
        return position

    def read(self, size: int | None = -1) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._position + size)
        pieces = []
        while self._position < end:
            index, within = divmod(self._position, self._chunk_bytes)
            chunk = self._chunk(index)
            if within >= len(chunk):
                break  # the object is shorter than it was said to be
            piece = chunk[within : within + end - self._position]
            pieces.append(piece)
            self._position += len(piece)
        return b"".join(pieces)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _chunk(self, index: int) -> bytes:
        cached = self._chunks.get(index)
        if cached is not None:
            self._chunks.move_to_end(index)
            return cached
        start = index * self._chunk_bytes
        end = min(self._size, start + self._chunk_bytes) - 1
        source = self._source
        arguments: dict[str, Any] = {
            "Bucket": source.bucket,
            "Key": source.key,
            "Range": f"bytes={start}-{end}",
        }
        if source.version_id:
            arguments["VersionId"] = source.version_id
        elif source.etag:
            arguments["IfMatch"] = f'"{source.etag}"'
        try:
            body = self._client.get_object(**arguments)["Body"]
            data: bytes = body.read()
            body.close()
        except Exception as error:
            raise read_failure(error, source.bucket, source.key) from None
        self.requests += 1
        self.bytes_read += len(data)
        self._chunks[index] = data
        while len(self._chunks) > self._cached:
            self._chunks.popitem(last=False)
        return data


class S3VideoSources:
    """`video_processing.VideoSources` over S3: each video opened as an `S3RangeReader`."""

    def __init__(self, client: Any, *, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._client = client
        self._chunk_bytes = chunk_bytes

    @contextmanager
    def open(self, source: SourceObject, size: int) -> Iterator[BinaryIO]:
        reader = S3RangeReader(self._client, source, size, chunk_bytes=self._chunk_bytes)
        try:
            yield cast(BinaryIO, reader)
        finally:
            reader.close()
