"""The AWS resources of `template.yaml`, created in the local AWS stand-in (moto server) by endpoint URL.

Settings that change behaviour (the bucket notification's prefix/suffix filters, the queue's visibility
timeout and redrive, the tables' keys, indexes and TTL, the functions' environment) are read from the
template, so the offline stack and the tests cannot drift from what `sam deploy` creates. Re-running
against an existing moto state is safe: what exists is reused or brought back in line.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from s3kp.local.cfn_template import Resolver, function_environment, load_template

# Logical ids in template.yaml.
BUCKET = "UploadBucket"
QUEUE = "IngestQueue"
DEAD_LETTER_QUEUE = "DeadLetterQueue"
VIDEO_QUEUE = "VideoQueue"
VIDEO_DEAD_LETTER_QUEUE = "VideoDeadLetterQueue"
RESULTS_TABLE = "ResultsTable"
IDEMPOTENCY_TABLE = "IdempotencyTable"
API_KEY_SECRET = "RoboflowApiKeySecret"  # noqa: S105 - a logical id, not a secret
CURSOR_SECRET = "CursorSecret"  # noqa: S105 - a logical id, not a secret
EVENT_BUS = "ResultsEventBus"
INGEST_FUNCTION = "IngestFunction"
API_FUNCTION = "ApiFunction"
INFERENCE_FUNCTION = "InferenceFunction"
INFERENCE_FUNCTION_URL = "InferenceFunctionUrl"
VIDEO_FUNCTION = "VideoFunction"

_PREFIX_VARIABLES = ("INPUT_PREFIX", "OUTPUT_PREFIX", "PREDICTIONS_PREFIX")

# moto accepts any credentials; these only keep botocore from looking for real ones.
_DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@dataclass(frozen=True)
class LocalResources:
    endpoint_url: str
    region: str
    bucket: str
    input_prefix: str
    output_prefix: str
    predictions_prefix: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    max_receive_count: int
    visibility_timeout: int
    results_table: str
    idempotency_table: str
    api_key_secret_arn: str
    cursor_secret_arn: str
    event_bus_name: str = ""
    event_bus_arn: str = ""
    # The template the resources were created from (so environments resolve against the same file).
    template_path: Path | None = None
    # The video function's queue (notifications for the video suffixes and segment tasks) and its DLQ.
    video_queue_url: str = ""
    video_queue_arn: str = ""
    video_dlq_url: str = ""


def create_resources(
    endpoint_url: str,
    *,
    region: str = "us-east-1",
    name_prefix: str = "s3kp-local",
    api_key: str = "local-dev-key",
    bucket: str | None = None,
    template: Path | None = None,
    visibility_timeout: int | None = None,
) -> LocalResources:
    """Create (or reuse) the template's bucket + notification, queues, tables and secrets in moto.

    `visibility_timeout` overrides the template's (750 s) for tests that wait for a redelivery.
    """
    document = load_template(template)
    clients = _Clients(endpoint_url, region)
    bucket_name = bucket or f"{name_prefix}-uploads"

    dlq_url = _ensure_queue(
        clients.sqs, f"{name_prefix}-ingest-dlq", _queue_attributes(document, DEAD_LETTER_QUEUE)
    )
    dlq_arn = _queue_arn(clients.sqs, dlq_url)
    resolver = Resolver(
        document,
        references={f"{DEAD_LETTER_QUEUE}.Arn": dlq_arn, DEAD_LETTER_QUEUE: dlq_url},
        region=region,
        stack_name=name_prefix,
    )
    queue_attributes = _queue_attributes(document, QUEUE, resolver)
    if visibility_timeout is not None:
        queue_attributes["VisibilityTimeout"] = str(visibility_timeout)
    queue_url = _ensure_queue(clients.sqs, f"{name_prefix}-ingest", queue_attributes)
    queue_arn = _queue_arn(clients.sqs, queue_url)
    redrive = json.loads(queue_attributes.get("RedrivePolicy", "{}"))

    video_dlq_url = _ensure_queue(
        clients.sqs, f"{name_prefix}-video-dlq", _queue_attributes(document, VIDEO_DEAD_LETTER_QUEUE)
    )
    video_resolver = Resolver(
        document,
        references={
            f"{VIDEO_DEAD_LETTER_QUEUE}.Arn": _queue_arn(clients.sqs, video_dlq_url),
            VIDEO_DEAD_LETTER_QUEUE: video_dlq_url,
        },
        region=region,
        stack_name=name_prefix,
    )
    video_attributes = _queue_attributes(document, VIDEO_QUEUE, video_resolver)
    if visibility_timeout is not None:
        video_attributes["VisibilityTimeout"] = str(visibility_timeout)
    video_queue_url = _ensure_queue(clients.sqs, f"{name_prefix}-video", video_attributes)
    video_queue_arn = _queue_arn(clients.sqs, video_queue_url)

    results_table = _ensure_table(clients.dynamodb, f"{name_prefix}-results", document, RESULTS_TABLE)
    idempotency_table = _ensure_table(
        clients.dynamodb, f"{name_prefix}-idempotency", document, IDEMPOTENCY_TABLE
    )
    api_key_secret_arn = _ensure_secret(
        clients.secrets, f"{name_prefix}/roboflow-api-key", api_key, replace=True
    )
    cursor_secret_arn = _ensure_secret(
        clients.secrets, f"{name_prefix}/cursor-secret", secrets.token_urlsafe(48), replace=False
    )

    event_bus_name = str(resolver.resolve(_properties(document, EVENT_BUS)["Name"]))
    event_bus_arn = _ensure_event_bus(clients.events, event_bus_name)

    _ensure_bucket(clients.s3, bucket_name, region)
    queues = {QUEUE: (queue_url, queue_arn), VIDEO_QUEUE: (video_queue_url, video_queue_arn)}
    _ensure_notification(clients, bucket_name, queues, _notification(document, queues))

    ingest_variables = function_environment(document, INGEST_FUNCTION)
    prefixes = {name: str(resolver.resolve(ingest_variables[name])) for name in _PREFIX_VARIABLES}
    return LocalResources(
        endpoint_url=endpoint_url,
        region=region,
        bucket=bucket_name,
        input_prefix=prefixes["INPUT_PREFIX"],
        output_prefix=prefixes["OUTPUT_PREFIX"],
        predictions_prefix=prefixes["PREDICTIONS_PREFIX"],
        queue_url=queue_url,
        queue_arn=queue_arn,
        dlq_url=dlq_url,
        max_receive_count=int(redrive.get("maxReceiveCount", 0)),
        visibility_timeout=int(queue_attributes["VisibilityTimeout"]),
        results_table=results_table,
        idempotency_table=idempotency_table,
        api_key_secret_arn=api_key_secret_arn,
        cursor_secret_arn=cursor_secret_arn,
        event_bus_name=event_bus_name,
        event_bus_arn=event_bus_arn,
        template_path=template,
        video_queue_url=video_queue_url,
        video_queue_arn=video_queue_arn,
        video_dlq_url=video_dlq_url,
    )


def ingest_environment(
    resources: LocalResources,
    *,
    inference_url: str,
    model_id: str,
    inference_backend: str = "roboflow",
    **overrides: str,
) -> dict[str, str]:
    """Every variable the template gives the ingest function, resolved to the local resources. With the
    builtin backend, `inference_url` is the InferenceFunction's (local) Function URL."""
    parameters, references = _backend(inference_backend, inference_url, model_id)
    return _function_environment(resources, INGEST_FUNCTION, parameters, overrides, references)


def inference_environment(resources: LocalResources, *, model_id: str, **overrides: str) -> dict[str, str]:
    """Every variable the template gives the InferenceFunction (the builtin backend)."""
    parameters = {"InferenceBackend": "builtin", "ModelId": model_id}
    return _function_environment(resources, INFERENCE_FUNCTION, parameters, overrides)


def video_environment(
    resources: LocalResources,
    *,
    inference_url: str,
    model_id: str,
    inference_backend: str = "roboflow",
    **overrides: str,
) -> dict[str, str]:
    """Every variable the template gives the video function, resolved to the local resources (the
    inference endpoint as for the ingest function)."""
    parameters, references = _backend(inference_backend, inference_url, model_id)
    return _function_environment(resources, VIDEO_FUNCTION, parameters, overrides, references)


def api_environment(resources: LocalResources, **overrides: str) -> dict[str, str]:
    """Every variable the template gives the API function, resolved to the local resources."""
    return _function_environment(resources, API_FUNCTION, {}, overrides)


# ------------------------------------------------------------------------------------------ internals


def _backend(
    inference_backend: str, inference_url: str, model_id: str
) -> tuple[dict[str, str], dict[str, str]]:
    """The template parameters and references that point a function at its inference endpoint: with
    `builtin`, `inference_url` stands for the InferenceFunction's Function URL."""
    if inference_backend == "builtin":
        return {"InferenceBackend": "builtin", "ModelId": model_id}, {
            f"{INFERENCE_FUNCTION_URL}.FunctionUrl": inference_url
        }
    return {"InferenceBackend": "roboflow", "InferenceUrl": inference_url, "ModelId": model_id}, {}


class _Clients:
    def __init__(self, endpoint_url: str, region: str) -> None:
        session = boto3.session.Session(
            aws_access_key_id=_DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=_DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=_DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=region,
        )
        self.s3 = session.client("s3", endpoint_url=endpoint_url)
        self.sqs = session.client("sqs", endpoint_url=endpoint_url)
        self.dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
        self.secrets = session.client("secretsmanager", endpoint_url=endpoint_url)
        self.events = session.client("events", endpoint_url=endpoint_url)


def _properties(document: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    return dict(document["Resources"][logical_id]["Properties"])


def _queue_attributes(
    document: Mapping[str, Any], logical_id: str, resolver: Resolver | None = None
) -> dict[str, str]:
    """The SQS attributes the template sets on a queue (encryption and policies do not matter locally)."""
    properties = (resolver or Resolver(document)).resolve(_properties(document, logical_id))
    attributes = {
        name: str(properties[name])
        for name in ("VisibilityTimeout", "MessageRetentionPeriod")
        if name in properties
    }
    attributes.setdefault("VisibilityTimeout", "30")
    if "RedrivePolicy" in properties:
        redrive = properties["RedrivePolicy"]
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": redrive["deadLetterTargetArn"],
                "maxReceiveCount": int(redrive["maxReceiveCount"]),
            }
        )
    return attributes


def _ensure_queue(sqs: Any, name: str, attributes: dict[str, str]) -> str:
    try:
        url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as error:
        if "NonExistentQueue" not in error.response["Error"]["Code"]:
            raise
        return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def _queue_arn(sqs: Any, queue_url: str) -> str:
    return str(
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    )


def _ensure_table(dynamodb: Any, name: str, document: Mapping[str, Any], logical_id: str) -> str:
    """The table with the template's keys, indexes and billing mode; TTL as in the template."""
    properties = _properties(document, logical_id)
    request: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if properties.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index["IndexName"],
                "KeySchema": index["KeySchema"],
                "Projection": index["Projection"],
            }
            for index in properties["GlobalSecondaryIndexes"]
        ]
    try:
        dynamodb.create_table(**request)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        current = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            dynamodb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
    return name


def _ensure_secret(client: Any, name: str, value: str, *, replace: bool) -> str:
    """The secret's ARN; an existing secret keeps its value unless `replace`."""
    try:
        return str(client.create_secret(Name=name, SecretString=value)["ARN"])
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceExistsException":
            raise
    if replace:
        client.put_secret_value(SecretId=name, SecretString=value)
    return str(client.describe_secret(SecretId=name)["ARN"])


def _ensure_event_bus(events: Any, name: str) -> str:
    """The custom bus result events go to (its rules, e.g. `s3kp events`' own, are left alone)."""
    try:
        return str(events.create_event_bus(Name=name)["EventBusArn"])
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
    return str(events.describe_event_bus(Name=name)["Arn"])


def _ensure_bucket(s3: Any, name: str, region: str) -> None:
    request: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**request)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def _notification(document: Mapping[str, Any], queues: Mapping[str, tuple[str, str]]) -> list[dict[str, Any]]:
    """The template's queue configurations in the S3 API's shape, each pointed at its local queue
    (`queues`: logical id -> URL and ARN)."""
    configurations = _properties(document, BUCKET)["NotificationConfiguration"]["QueueConfigurations"]
    return [
        {
            "QueueArn": queues[configuration["Queue"]["Fn::GetAtt"][0]][1],
            "Events": [configuration["Event"]],
            "Filter": {"Key": {"FilterRules": list(configuration["Filter"]["S3Key"]["Rules"])}},
        }
        for configuration in configurations
    ]


def _comparable(configurations: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {
        (
            configuration["QueueArn"],
            tuple(sorted(configuration["Events"])),
            tuple(
                sorted((r["Name"].lower(), r["Value"]) for r in configuration["Filter"]["Key"]["FilterRules"])
            ),
        )
        for configuration in configurations
    }


def _ensure_notification(
    clients: _Clients,
    bucket: str,
    queues: Mapping[str, tuple[str, str]],
    configurations: list[dict[str, Any]],
) -> None:
    current = clients.s3.get_bucket_notification_configuration(Bucket=bucket).get("QueueConfigurations", [])
    if _comparable(current) == _comparable(configurations):
        return  # re-running: leave the queues (and any real messages in them) alone
    clients.s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configurations}
    )
    for queue_url, _ in queues.values():
        _discard_test_events(clients.sqs, queue_url)


def _discard_test_events(sqs: Any, queue_url: str) -> None:
    """Delete the `s3:TestEvent` message moto enqueues when a notification is set; release anything else."""
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return
        test_events = [message for message in messages if _is_test_event_body(message["Body"])]
        for message in messages:
            if message in test_events:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
        if not test_events:
            return


def _is_test_event_body(body: str) -> bool:
    try:
        return bool(json.loads(body).get("Event") == "s3:TestEvent")
    except (ValueError, AttributeError):
        return False


def _function_environment(
    resources: LocalResources,
    logical_id: str,
    parameters: Mapping[str, str],
    overrides: Mapping[str, str],
    references: Mapping[str, str] | None = None,
) -> dict[str, str]:
    document = load_template(resources.template_path)
    resolver = Resolver(
        document,
        references={
            BUCKET: resources.bucket,
            QUEUE: resources.queue_url,
            f"{QUEUE}.Arn": resources.queue_arn,
            DEAD_LETTER_QUEUE: resources.dlq_url,
            VIDEO_QUEUE: resources.video_queue_url,
            f"{VIDEO_QUEUE}.Arn": resources.video_queue_arn,
            VIDEO_DEAD_LETTER_QUEUE: resources.video_dlq_url,
            RESULTS_TABLE: resources.results_table,
            IDEMPOTENCY_TABLE: resources.idempotency_table,
            API_KEY_SECRET: resources.api_key_secret_arn,
            CURSOR_SECRET: resources.cursor_secret_arn,
            EVENT_BUS: resources.event_bus_name,
            f"{EVENT_BUS}.Arn": resources.event_bus_arn,
            **(references or {}),
        },
        parameters=parameters,
        region=resources.region,
    )
    resolved = resolver.resolve(function_environment(document, logical_id))
    environment = {name: _env_value(value) for name, value in resolved.items() if value is not None}
    environment.update(
        AWS_ENDPOINT_URL=resources.endpoint_url,
        AWS_REGION=resources.region,
        AWS_DEFAULT_REGION=resources.region,
        # No X-Ray daemon locally: the tracer would only warn.
        POWERTOOLS_TRACE_DISABLED="true",
        **_DUMMY_CREDENTIALS,
    )
    environment.update(overrides)
    return environment


def _env_value(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)
