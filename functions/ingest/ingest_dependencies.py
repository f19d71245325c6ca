"""The ingest function's collaborators, built once per container (and per API key, which may rotate).

Each is built on first use, not at import: the import (the cold start's init phase) pays only for the
code. Every AWS client comes from one boto3 session, the idempotency layer's included: a session's
loader caches the endpoint rules and service models it has read, so each client after the first skips
re-reading them (boto3's default session and Powertools' own would each read them again: ~80 ms of a
cold start here, see docs/ingest-cold-start.md). boto3 clients honour `AWS_ENDPOINT_URL`, so the same
code runs against moto locally.

The records of a batch run in parallel threads (`record_pool`) and share all of this. `build_shared`
builds it in the handler's thread first: a boto3 session is not safe to create clients from in several
threads at once (clients are safe to share). The two DynamoDB Table resources are shared too, although
boto3 calls resources unsafe to share: they are only used for item actions, which go to the shared
client, and the one stateful part behind them, the condition builder's placeholder counters, serves only
`Attr`/`Key` condition objects, never the string expressions the stores write.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from ingest_settings import IngestSettings
from s3kp_core.imaging import DEFAULT_MAX_DECODED_BYTES
from s3kp_core.inference_wiring import GuardedInference
from s3kp_core.memory import MemoryBudget, unmap_large_blocks_on_free
from s3kp_core.objects_s3 import S3ObjectStore
from s3kp_core.observability import logger
from s3kp_core.processing import Collaborators, ProcessingSettings
from s3kp_core.result_events_eventbridge import EventBridgePublisher
from s3kp_core.results_store_dynamodb import DynamoDBResultsStore

# What the records of a batch may hold at once while they run in parallel (docs/ingest.md, "Records in
# parallel"): the decoded pixels of one image as large as the per-image limit admits, or several smaller
# ones side by side; and the downloaded objects waiting to be decoded. With the runtime (~110 MiB) that
# keeps a 1024 MB function under 768 MiB (benchmarks: `record_concurrency`).
PIXEL_BUDGET_BYTES = DEFAULT_MAX_DECODED_BYTES
OBJECT_BUDGET_BYTES = 128 * 2**20


@lru_cache(maxsize=1)
def settings() -> IngestSettings:
    """Validated once per container; the handler calls this at import, so a bad variable fails the cold
    start (the API function loads its settings the same way)."""
    return IngestSettings.from_environment()


@lru_cache(maxsize=1)
def aws_session() -> boto3.session.Session:
    return boto3.session.Session()


@lru_cache(maxsize=1)
def s3_client() -> Any:
    return aws_session().client("s3")


@lru_cache(maxsize=1)
def sqs_client() -> Any:
    return aws_session().client("sqs")


@lru_cache(maxsize=1)
def idempotency_store(settings: IngestSettings) -> DynamoDBPersistenceLayer:
    """Powertools' idempotency records in DynamoDB (its client is built here, from the shared session)."""
    return DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_session=aws_session())


@lru_cache(maxsize=1)
def dynamodb_resource() -> Any:
    return aws_session().resource("dynamodb")


@lru_cache(maxsize=1)
def results_store(settings: IngestSettings) -> DynamoDBResultsStore:
    table = dynamodb_resource().Table(settings.results_table)
    return DynamoDBResultsStore(
        table,
        s3_client(),
        predictions_prefix=settings.predictions_prefix,
        predictions_bucket=settings.output_bucket,
    )


# The inference client (once per API key) behind the endpoint's circuit (once), as the video function
# builds them: s3kp_core.inference_wiring. Built on first use.
guarded_inference = GuardedInference(aws_session, dynamodb_resource, log=logger)


@lru_cache(maxsize=1)
def event_publisher(settings: IngestSettings) -> EventBridgePublisher | None:
    """Built on first use (not at import): the events client costs nothing until a result is recorded."""
    if not settings.results_event_bus:
        return None
    return EventBridgePublisher(aws_session().client("events"), settings.results_event_bus)


@lru_cache(maxsize=1)
def pixel_budget() -> MemoryBudget:
    unmap_large_blocks_on_free()  # so that pixels freed in any thread leave the process (s3kp_core.memory)
    return MemoryBudget(PIXEL_BUDGET_BYTES, name="pixels")


@lru_cache(maxsize=1)
def object_budget() -> MemoryBudget:
    return MemoryBudget(OBJECT_BUDGET_BYTES, name="objects")


def collaborators(settings: IngestSettings, api_key: str | None) -> Collaborators:
    return Collaborators(
        objects=S3ObjectStore(s3_client()),
        predictor=guarded_inference.predictor(
            settings.inference_settings(api_key), settings.circuit_settings()
        ),
        results=results_store(settings),
        events=event_publisher(settings),
        object_budget=object_budget(),
        pixel_budget=pixel_budget(),
    )


def build_shared(settings: IngestSettings) -> None:
    """Everything `collaborators` shares but the inference client (which needs the API key, and builds no
    boto3 client): built now, in the calling thread, if not yet."""
    s3_client()
    sqs_client()
    idempotency_store(settings)
    results_store(settings)
    guarded_inference.breaker(settings.circuit_settings())
    event_publisher(settings)
    processing_settings(settings)
    pixel_budget()
    object_budget()


@lru_cache(maxsize=1)
def processing_settings(settings: IngestSettings) -> ProcessingSettings:
    return settings.processing_settings()
