"""S3 reads and writes, and how S3's failures become processing outcomes (moto in-process)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from s3kp_core import errors
from s3kp_core.objects_s3 import S3ObjectStore

BUCKET = "uploads"


@pytest.fixture
def s3(monkeypatch) -> Iterator[object]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def test_get_returns_the_bytes_of_the_events_version(s3) -> None:
    etag = s3.put_object(Bucket=BUCKET, Key="incoming/a b.jpg", Body=b"abc")["ETag"].strip('"')
    assert S3ObjectStore(s3).get(BUCKET, "incoming/a b.jpg", etag=etag, max_bytes=10) == b"abc"


def test_an_object_replaced_since_the_event_is_skipped(s3) -> None:
    """GIVEN the event's ETag no longer matches (a newer upload, which has its own event) THEN skip."""
    s3.put_object(Bucket=BUCKET, Key="incoming/x.jpg", Body=b"new content")
    with pytest.raises(errors.Skipped) as raised:
        S3ObjectStore(s3).get(BUCKET, "incoming/x.jpg", etag="0" * 32, max_bytes=100)
    assert raised.value.code == errors.OBJECT_MISSING


def test_a_deleted_object_is_skipped(s3) -> None:
    with pytest.raises(errors.Skipped) as raised:
        S3ObjectStore(s3).get(BUCKET, "incoming/gone.jpg", max_bytes=100)
    assert raised.value.code == errors.OBJECT_MISSING


def test_reading_more_than_the_limit_fails_permanently(s3) -> None:
    s3.put_object(Bucket=BUCKET, Key="incoming/big.jpg", Body=b"x" * 101)
    with pytest.raises(errors.PermanentError) as raised:
        S3ObjectStore(s3).get(BUCKET, "incoming/big.jpg", max_bytes=100)
    assert raised.value.code == errors.OBJECT_TOO_LARGE


def test_head_reports_size_and_etag(s3) -> None:
    s3.put_object(Bucket=BUCKET, Key="incoming/h.jpg", Body=b"12345")
    info = S3ObjectStore(s3).head(BUCKET, "incoming/h.jpg")
    assert info.size == 5
    assert info.etag is not None


def test_outputs_carry_content_type_and_ascii_safe_metadata(s3) -> None:
    S3ObjectStore(s3).put(
        BUCKET,
        "annotated/été.jpg",
        b"\xff\xd8",
        content_type="image/jpeg",
        metadata={"source-key": "incoming/été + 📷.jpg"},
    )
    response = s3.head_object(Bucket=BUCKET, Key="annotated/été.jpg")
    assert response["ContentType"] == "image/jpeg"
    assert response["Metadata"]["source-key"] == "incoming/%C3%A9t%C3%A9%20%2B%20%F0%9F%93%B7.jpg"
