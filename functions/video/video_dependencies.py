"""The video function's collaborators, built on first use and kept for the life of the container.

Built as the ingest function builds its own (`ingest_dependencies`): one boto3 session, the same inference
client behind the same circuit breaker (both built by `s3kp_core.inference_wiring`: one DynamoDB item per
endpoint, shared with the ingest function, so an outage seen by either holds both back), the same results
store and event publisher. boto3 clients honour `AWS_ENDPOINT_URL`, so the same code runs against moto
locally.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from s3kp_core.inference_wiring import GuardedInference
from s3kp_core.objects_s3 import S3ObjectStore
from s3kp_core.observability import logger
from s3kp_core.result_events_eventbridge import EventBridgePublisher
from s3kp_core.results_store_dynamodb import DynamoDBResultsStore
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


# The inference client (once per API key) behind the endpoint's circuit (once), built as the ingest
# function builds them (s3kp_core.inference_wiring): the same circuit item, so an outage seen by either
# function holds both back. Built on first use.
guarded_inference = GuardedInference(aws_session, dynamodb_resource, log=logger)


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
        predictor=guarded_inference.predictor(
            settings.inference_settings(api_key), settings.circuit_settings()
        ),
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
