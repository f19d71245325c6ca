"""S3 reads and writes, and how S3's failures become processing outcomes (moto in-process; botocore's
Stubber for the answers moto never gives)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber
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


def stubbed_client(code: str, status: int, message: str = "S3 says no") -> tuple[Any, Stubber]:
    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    stubber = Stubber(client)
    stubber.add_client_error(
        "put_object", service_error_code=code, service_message=message, http_status_code=status
    )
    stubber.activate()
    return client, stubber


def put(client: Any) -> None:
    S3ObjectStore(client).put(
        BUCKET, "annotated/x.jpg.0123.jpg", b"\xff\xd8", content_type="image/jpeg", metadata={"a": "b"}
    )


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("AccessDenied", 403),  # a bucket policy, an SCP, a KMS key policy
        ("InvalidArgument", 400),
        ("MetadataTooLarge", 400),  # user metadata over 2 KB (a long non-ASCII source key, encoded)
        ("EntityTooLarge", 400),
        ("KeyTooLongError", 400),  # a source key near 1,024 bytes makes a longer annotated key
        ("InvalidRequest", 400),
        ("NoSuchBucket", 404),  # OUTPUT_BUCKET names no bucket
    ],
)
def test_a_write_s3_refuses_with_a_4xx_is_permanent_with_its_reason(code: str, status: int) -> None:
    """GIVEN S3 answers our own write with a 4xx that another try would get again THEN the failure is
    permanent (recorded `failed`, not retried until the DLQ), naming the object, S3's code and message."""
    client, stubber = stubbed_client(code, status, "Your metadata headers exceed the maximum allowed size.")

    with pytest.raises(errors.PermanentError) as raised:
        put(client)

    assert raised.value.code == errors.OUTPUT_WRITE_REFUSED
    message = raised.value.message
    assert f"s3://{BUCKET}/annotated/x.jpg.0123.jpg" in message
    assert f"{code} (HTTP {status})" in message
    assert "exceed the maximum allowed size" in message
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("SlowDown", 503),
        ("InternalError", 500),
        ("ServiceUnavailable", 503),
        ("RequestTimeout", 400),  # S3's own 400 for a socket that went idle
        ("TooManyRequests", 429),
        ("OperationAborted", 409),  # a conflicting operation is in progress
        ("RequestTimeTooSkewed", 403),
        ("ExpiredToken", 400),
        ("KMS.ThrottlingException", 400),
    ],
)
def test_a_write_that_fails_for_a_passing_reason_stays_transient(code: str, status: int) -> None:
    client, _ = stubbed_client(code, status)

    with pytest.raises(errors.TransientError) as raised:
        put(client)

    assert raised.value.code == errors.OUTPUT_WRITE_FAILED


def test_a_write_that_never_reaches_s3_is_transient() -> None:
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",  # nothing listens on the discard port
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )

    with pytest.raises(errors.TransientError) as raised:
        put(client)

    assert raised.value.code == errors.OUTPUT_WRITE_FAILED
