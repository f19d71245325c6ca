"""What the Lambda service gives a handler, reproduced locally: the context object and SQS events.

The event shape is the one Lambda's SQS event source mapping delivers (`Records[].eventSource =
"aws:sqs"`, `messageId`, `receiptHandle`, `body`, `attributes`, `md5OfBody`, `eventSourceARN`,
`awsRegion`), built from real `ReceiveMessage` results so the handler sees what it would in AWS.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LambdaContext:
    """A realistic `LambdaContext`: the remaining time counts down from the configured timeout."""

    function_name: str = "s3kp-ingest"
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 60.0
    function_version: str = "$LATEST"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self.log_stream_name = (
            self.log_stream_name or f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        )

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def queue_arn(queue_url: str, region: str = "us-east-1", account_id: str = "123456789012") -> str:
    return f"arn:aws:sqs:{region}:{account_id}:{queue_url.rstrip('/').rsplit('/', 1)[-1]}"


def sqs_event(messages: list[dict[str, Any]], source_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    """A Lambda SQS event from `ReceiveMessage` results (asked with `MessageSystemAttributeNames=["All"]`)."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value["DataType"],
                    }
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": source_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


def failed_message_ids(response: Any) -> set[str]:
    """Message ids a handler reported in `batchItemFailures` (partial batch response)."""
    if not isinstance(response, dict):
        return set()
    return {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
