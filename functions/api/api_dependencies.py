"""The API function's collaborators, built on first use and kept for the life of the container.

boto3 is imported here, lazily: it takes ~0.2 s, which would otherwise double the import time of the
handler. boto3 clients honour `AWS_ENDPOINT_URL`, so the same code runs against moto locally.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

from api_settings import ApiSettings
from s3kp_core.cursors import CursorCodec
from s3kp_core.results import ObjectRef
from s3kp_core.results_query import ResultsQuery, ResultsReader, shard_query_pool
from s3kp_core.results_query_aws import DynamoDBItems, S3Documents


@lru_cache(maxsize=1)
def settings() -> ApiSettings:
    return ApiSettings.from_environment()


@lru_cache(maxsize=1)
def _s3_client() -> Any:
    import boto3
    from botocore.config import Config

    # SigV4 for presigned URLs: the only signature every region accepts.
    return boto3.client("s3", config=Config(signature_version="s3v4"))


@lru_cache(maxsize=1)
def _dynamodb_client() -> Any:
    import boto3
    from botocore.config import Config

    # One connection per shard Query running in parallel.
    return boto3.client("dynamodb", config=Config(max_pool_connections=16))


def _cursor_key(current: ApiSettings) -> bytes:
    if current.cursor_secret_arn:
        from aws_lambda_powertools.utilities import parameters

        secret = parameters.get_secret(current.cursor_secret_arn, max_age=current.cursor_secret_cache_seconds)
        return secret if isinstance(secret, bytes) else str(secret).encode()
    assert current.cursor_secret is not None  # the settings require one of the two
    return current.cursor_secret.encode()


@lru_cache(maxsize=1)
def _shard_query_pool() -> ThreadPoolExecutor:
    """One pool for the container's life: a query rebuilt after a key rotation reuses its threads."""
    return shard_query_pool()


@lru_cache(maxsize=1)
def _results_query(table_name: str, cursor_key: bytes) -> ResultsQuery:
    """Rebuilt only when the (cached) cursor key changes, e.g. after a rotation."""
    return ResultsQuery(
        items=DynamoDBItems(_dynamodb_client(), table_name),
        documents=S3Documents(_s3_client()),
        cursors=CursorCodec(cursor_key),
        table_name=table_name,
        executor=_shard_query_pool(),
    )


def results_reader() -> ResultsReader:
    current = settings()
    return _results_query(current.results_table, _cursor_key(current))


class Presigner:
    """Short-lived GET links to objects the function's role may read."""

    def __init__(self, client: Any, expiry_seconds: int) -> None:
        self._client = client
        self._expiry_seconds = expiry_seconds

    def url(self, ref: ObjectRef) -> str:
        params = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            params["VersionId"] = ref.version_id
        return str(
            self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=self._expiry_seconds)
        )


def presigner() -> Presigner:
    return Presigner(_s3_client(), settings().presign_expiry_seconds)


def reset() -> None:
    """Forget every cached collaborator (tests that change the environment)."""
    if _shard_query_pool.cache_info().currsize:
        _shard_query_pool().shutdown(wait=False)
    for cached in (settings, _s3_client, _dynamodb_client, _results_query, _shard_query_pool):
        cached.cache_clear()
