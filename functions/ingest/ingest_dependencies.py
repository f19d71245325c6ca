"""The ingest function's collaborators, built once per container (and per API key, which may rotate).

Each is built on first use, not at import: the import (the cold start's init phase) pays only for the
code. Every AWS client comes from one boto3 session, the idempotency layer's included: a session's
loader caches the endpoint rules and service models it has read, so each client after the first skips
re-reading them (boto3's default session and Powertools' own would each read them again: ~80 ms of a
cold start here, see docs/ingest-cold-start.md). boto3 clients honour `AWS_ENDPOINT_URL`, so the same
code runs against moto locally.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from ingest_settings import IngestSettings
from s3kp_core.circuit import CircuitBreaker, GuardedPredictor
from s3kp_core.circuit_dynamodb import DynamoDBCircuitStore
from s3kp_core.inference import InferenceClient
from s3kp_core.objects_s3 import S3ObjectStore
from s3kp_core.observability import logger
from s3kp_core.processing import Collaborators, ProcessingSettings
from s3kp_core.request_signing import RequestSigner
from s3kp_core.result_events_eventbridge import EventBridgePublisher
from s3kp_core.results_store_dynamodb import DynamoDBResultsStore
from s3kp_core.settings import ConfigurationError


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


@lru_cache(maxsize=1)
def inference_client(settings: IngestSettings, api_key: str | None) -> InferenceClient:
    """One pooled HTTP session per container; rebuilt only when the (cached) API key changes. With
    INFERENCE_AUTH aws_iam, requests are signed with the function's role credentials (read at each
    signature: they rotate) for the function's region, the stack's, where the InferenceFunction is."""
    signer = None
    if settings.inference_auth == "aws_iam":
        session = aws_session()
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigurationError("INFERENCE_AUTH aws_iam: no AWS credentials to sign the requests with")
        signer = RequestSigner(credentials, session.region_name)
    return InferenceClient(settings.inference_settings(api_key), signer=signer)


@lru_cache(maxsize=1)
def circuit_breaker(settings: IngestSettings) -> CircuitBreaker:
    """The endpoint's circuit, shared by every invocation through one item of the idempotency table."""
    endpoint = f"{settings.inference_url}/{settings.model_id}"
    return CircuitBreaker(
        DynamoDBCircuitStore(dynamodb_resource().Table(settings.idempotency_table), endpoint),
        endpoint=endpoint,
        probe_interval=settings.circuit_probe_seconds,
        probe_lease=settings.inference_connect_timeout + settings.inference_read_timeout,
        log=logger,
    )


@lru_cache(maxsize=1)
def event_publisher(settings: IngestSettings) -> EventBridgePublisher | None:
    """Built on first use (not at import): the events client costs nothing until a result is recorded."""
    if not settings.results_event_bus:
        return None
    return EventBridgePublisher(aws_session().client("events"), settings.results_event_bus)


def collaborators(settings: IngestSettings, api_key: str | None) -> Collaborators:
    return Collaborators(
        objects=S3ObjectStore(s3_client()),
        predictor=GuardedPredictor(inference_client(settings, api_key), circuit_breaker(settings)),
        results=results_store(settings),
        events=event_publisher(settings),
    )


@lru_cache(maxsize=1)
def processing_settings(settings: IngestSettings) -> ProcessingSettings:
    return settings.processing_settings()
