"""The video function's collaborators, built on first use and kept for the life of the container.

Built as the ingest function builds its own (`ingest_dependencies`): one boto3 session, the same inference
client behind the same circuit breaker (one DynamoDB item per endpoint, shared with the ingest function,
so an outage seen by either holds both back), the same results store and event publisher. boto3 clients
honour `AWS_ENDPOINT_URL`, so the same code runs against moto locally.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from s3kp_core.circuit import CircuitBreaker, GuardedPredictor
from s3kp_core.circuit_dynamodb import DynamoDBCircuitStore
from s3kp_core.inference import InferenceClient
from s3kp_core.objects_s3 import S3ObjectStore
from s3kp_core.observability import logger
from s3kp_core.request_signing import RequestSigner
from s3kp_core.result_events_eventbridge import EventBridgePublisher
from s3kp_core.results_store_dynamodb import DynamoDBResultsStore
from s3kp_core.settings import ConfigurationError
from s3kp_core.video_processing import VideoCollaborators, VideoProcessingSettings
from s3kp_core.video_source_s3 import S3VideoSources
from s3kp_core.video_store_dynamodb import DynamoDBVideoStore
from s3kp_core.video_tasks_sqs import SqsSegmentQueue
from video_settings import VideoSettings


@lru_cache(maxsize=1)
def settings() -> VideoSettings:
    """Validated once per container; the handler calls it at import (a bad variable fails the cold start)."""
    return VideoSettings.from_environment()


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
def dynamodb_resource() -> Any:
    return aws_session().resource("dynamodb")


@lru_cache(maxsize=2)
def idempotency_store(settings: VideoSettings, unit: str) -> DynamoDBPersistenceLayer:
    """One per kind of unit (`plan`, `segment`): a persistence layer keeps the first configuration it is
    given (its key expression), so two idempotent functions cannot share one."""
    return DynamoDBPersistenceLayer(table_name=settings.idempotency_table, boto3_session=aws_session())


@lru_cache(maxsize=1)
def inference_client(settings: VideoSettings, api_key: str | None) -> InferenceClient:
    """One pooled HTTP session per container; rebuilt only when the (cached) API key changes. With
    INFERENCE_AUTH aws_iam (the builtin backend), requests are signed as the ingest function signs them:
    the function's role credentials (read at each signature: they rotate), the function's region."""
    signer = None
    if settings.inference_auth == "aws_iam":
        session = aws_session()
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigurationError("INFERENCE_AUTH aws_iam: no AWS credentials to sign the requests with")
        signer = RequestSigner(credentials, session.region_name)
    return InferenceClient(settings.inference_settings(api_key), signer=signer)


@lru_cache(maxsize=1)
def circuit_breaker(settings: VideoSettings) -> CircuitBreaker:
    """The endpoint's circuit: the same item the ingest function uses (same endpoint, same name)."""
    endpoint = f"{settings.inference_url}/{settings.model_id}"
    return CircuitBreaker(
        DynamoDBCircuitStore(dynamodb_resource().Table(settings.idempotency_table), endpoint),
        endpoint=endpoint,
        probe_interval=settings.circuit_probe_seconds,
        probe_lease=settings.inference_connect_timeout + settings.inference_read_timeout,
        log=logger,
    )


@lru_cache(maxsize=1)
def event_publisher(settings: VideoSettings) -> EventBridgePublisher | None:
    if not settings.results_event_bus:
        return None
    return EventBridgePublisher(aws_session().client("events"), settings.results_event_bus)


def collaborators(settings: VideoSettings, api_key: str | None, segment_queue_url: str) -> VideoCollaborators:
    table = dynamodb_resource().Table(settings.results_table)
    return VideoCollaborators(
        sources=S3VideoSources(s3_client()),
        objects=S3ObjectStore(s3_client()),
        predictor=GuardedPredictor(inference_client(settings, api_key), circuit_breaker(settings)),
        results=DynamoDBResultsStore(
            table,
            s3_client(),
            predictions_prefix=settings.predictions_prefix,
            predictions_bucket=settings.output_bucket,
        ),
        videos=DynamoDBVideoStore(table, s3_client()),
        segments=SqsSegmentQueue(sqs_client(), segment_queue_url),
        events=event_publisher(settings),
    )


@lru_cache(maxsize=1)
def video_processing_settings(settings: VideoSettings) -> VideoProcessingSettings:
    return settings.video_processing_settings()
