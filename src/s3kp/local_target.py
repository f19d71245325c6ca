"""Finding the running local stack (`s3kp up`) from another command: its endpoint and resource names.

The stack's names follow `--name-prefix` (default `s3kp-local`): queues `<prefix>-ingest` and
`<prefix>-video`, results table `<prefix>-results`, event bus `<prefix>-results` (the template's
`${AWS::StackName}-results`). The endpoint is `--endpoint-url`, else `$AWS_ENDPOINT_URL`, else the stack's
default `http://127.0.0.1:4566`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

DEFAULT_ENDPOINT = "http://127.0.0.1:4566"
DEFAULT_NAME_PREFIX = "s3kp-local"
REGION = "us-east-1"
# moto accepts any credentials; fixed dummy ones keep the user's real credentials out of local requests.
_DUMMY_CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "aws_session_token": "testing",
}


class LocalTargetError(RuntimeError):
    pass


@dataclass(frozen=True)
class LocalTarget:
    endpoint_url: str
    session: Any  # boto3 Session with the local stack's dummy credentials
    queue_url: str
    results_table: str
    event_bus: str
    video_queue_url: str | None = None  # `<prefix>-video`, when the stack has one


def local_session() -> Any:
    import boto3

    return boto3.session.Session(**_DUMMY_CREDENTIALS, region_name=REGION)


def local_target(name_prefix: str | None = None, endpoint_url: str | None = None) -> LocalTarget:
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    prefix = name_prefix or DEFAULT_NAME_PREFIX
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or DEFAULT_ENDPOINT
    session = local_session()
    sqs = session.client(
        "sqs",
        endpoint_url=endpoint,
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )
    try:
        queue_url = str(sqs.get_queue_url(QueueName=f"{prefix}-ingest")["QueueUrl"])
    except ClientError:
        raise LocalTargetError(f"the local stack at {endpoint} has no queue {prefix}-ingest") from None
    except BotoCoreError:
        raise LocalTargetError(f"no local stack answers at {endpoint} (is `s3kp up` running?)") from None
    try:
        video_queue_url: str | None = str(sqs.get_queue_url(QueueName=f"{prefix}-video")["QueueUrl"])
    except ClientError:
        video_queue_url = None
    return LocalTarget(
        endpoint_url=endpoint,
        session=session,
        queue_url=queue_url,
        video_queue_url=video_queue_url,
        results_table=f"{prefix}-results",
        event_bus=f"{prefix}-results",
    )
