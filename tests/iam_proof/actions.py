"""Which IAM action on which resource an AWS API call needs (the Service Authorization Reference's
"actions, resources and condition keys" tables, for the calls this project makes).

An unknown call is an error, not a pass: add its row here when the code starts making it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

ACCOUNT_ID = "123456789012"  # moto's account, and the Resolver's


@dataclass(frozen=True)
class Need:
    """One permission a call needs: `action` on `arn`; `kind`/`name`/`detail` say which resource it is
    (`name` as the call named it: bucket, table, secret id, queue URL, bus; `detail`: key or index)."""

    action: str
    arn: str
    kind: str
    name: str
    detail: str = ""


@dataclass(frozen=True)
class Call:
    """One recorded API call (see recorder.py for the fields)."""

    function: str
    service: str
    operation: str
    params: Mapping[str, str]
    region: str = "us-east-1"
    presigned: bool = False
    tables: tuple[str, ...] = ()
    transact: tuple[tuple[str, str], ...] = ()
    buses: tuple[str, ...] = ()
    environment: Mapping[str, str] | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Call:
        return cls(
            function=record["function"],
            service=record["service"],
            operation=record["operation"],
            params=dict(record.get("params", {})),
            region=record.get("region", "us-east-1"),
            presigned=bool(record.get("presigned")),
            tables=tuple(record.get("tables", ())),
            transact=tuple((op, table) for op, table in record.get("transact", ())),
            buses=tuple(record.get("buses", ())),
            environment=dict(record.get("environment", {})),
        )


class UnknownCall(LookupError):
    """A call with no row in the mapping: the proof cannot say what it needs."""


# ---------------------------------------------------------------------------------------------- S3


def _object(call: Call, action: str, versioned_action: str | None = None) -> list[Need]:
    bucket, key = call.params["Bucket"], call.params["Key"]
    if versioned_action and call.params.get("VersionId"):
        action = versioned_action
    return [Need(action, f"arn:aws:s3:::{bucket}/{key}", "object", bucket, key)]


def _bucket(call: Call, action: str) -> list[Need]:
    bucket = call.params["Bucket"]
    return [Need(action, f"arn:aws:s3:::{bucket}", "bucket", bucket)]


_S3: dict[str, Callable[[Call], list[Need]]] = {
    # HeadObject is authorized as GetObject; a VersionId makes both GetObjectVersion.
    "GetObject": lambda c: _object(c, "s3:GetObject", "s3:GetObjectVersion"),
    "HeadObject": lambda c: _object(c, "s3:GetObject", "s3:GetObjectVersion"),
    "PutObject": lambda c: _object(c, "s3:PutObject"),
    "DeleteObject": lambda c: _object(c, "s3:DeleteObject", "s3:DeleteObjectVersion"),
    "GetObjectTagging": lambda c: _object(c, "s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
    "ListObjectsV2": lambda c: _bucket(c, "s3:ListBucket"),
    "ListObjects": lambda c: _bucket(c, "s3:ListBucket"),
    "ListObjectVersions": lambda c: _bucket(c, "s3:ListBucketVersions"),
    "HeadBucket": lambda c: _bucket(c, "s3:ListBucket"),
}

# ---------------------------------------------------------------------------------------------- DynamoDB


def _table_arn(call: Call, table: str) -> str:
    return f"arn:aws:dynamodb:{call.region}:{ACCOUNT_ID}:table/{table}"


def _table(call: Call, action: str) -> list[Need]:
    table, index = call.params["TableName"], call.params.get("IndexName", "")
    arn = _table_arn(call, table) + (f"/index/{index}" if index else "")
    return [Need(action, arn, "index" if index else "table", table, index)]


_DYNAMODB_SINGLE = (
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "DescribeTable",
    "DescribeTimeToLive",
)
# TransactWriteItems / TransactGetItems are authorized per item with the single-item actions.
_TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}


def _batch(call: Call, action: str) -> list[Need]:
    return [Need(action, _table_arn(call, table), "table", table) for table in call.tables]


def _transact(call: Call) -> list[Need]:
    return [
        Need(_TRANSACT_ACTIONS[operation], _table_arn(call, table), "table", table)
        for operation, table in call.transact
    ]


_DYNAMODB: dict[str, Callable[[Call], list[Need]]] = {
    **{operation: (lambda c, a=f"dynamodb:{operation}": _table(c, a)) for operation in _DYNAMODB_SINGLE},
    "BatchGetItem": lambda c: _batch(c, "dynamodb:BatchGetItem"),
    "BatchWriteItem": lambda c: _batch(c, "dynamodb:BatchWriteItem"),
    "TransactWriteItems": _transact,
    "TransactGetItems": _transact,
}

# ---------------------------------------------------------------------------------------------- others


def _secret(call: Call, action: str) -> list[Need]:
    secret = call.params["SecretId"]
    arn = (
        secret
        if secret.startswith("arn:")
        else f"arn:aws:secretsmanager:{call.region}:{ACCOUNT_ID}:secret:{secret}"
    )
    return [Need(action, arn, "secret", secret)]


def _parameter(call: Call, action: str) -> list[Need]:
    name = call.params["Name"]
    arn = (
        name
        if name.startswith("arn:")
        else f"arn:aws:ssm:{call.region}:{ACCOUNT_ID}:parameter/{name.lstrip('/')}"
    )
    return [Need(action, arn, "parameter", name)]


def queue_arn(queue_url: str, region: str) -> str:
    """`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` (or moto's `http://host/ACCOUNT/NAME`) as an ARN."""
    account, name = urlsplit(queue_url).path.strip("/").split("/")[-2:]
    return f"arn:aws:sqs:{region}:{account}:{name}"


def _queue(call: Call, action: str) -> list[Need]:
    url = call.params["QueueUrl"]
    return [Need(action, queue_arn(url, call.region), "queue", url)]


def _queue_by_name(call: Call) -> list[Need]:
    name = call.params["QueueName"]
    arn = f"arn:aws:sqs:{call.region}:{ACCOUNT_ID}:{name}"
    return [
        Need("sqs:GetQueueUrl", arn, "queue", f"https://sqs.{call.region}.amazonaws.com/{ACCOUNT_ID}/{name}")
    ]


def function_arn(name: str, region: str) -> str:
    return f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"


def _function_url(call: Call) -> list[Need]:
    """A SigV4-signed request to a Function URL with AuthType AWS_IAM: `lambda:InvokeFunctionUrl` on the
    function behind the URL (which the URL does not name: the proof binds it to the template's URL)."""
    url = call.params["FunctionUrl"]
    name = f"behind-{urlsplit(url).netloc.replace(':', '-')}"
    return [Need("lambda:InvokeFunctionUrl", function_arn(name, call.region), "function_url", name, url)]


def bus_arn(bus: str, region: str) -> str:
    return bus if bus.startswith("arn:") else f"arn:aws:events:{region}:{ACCOUNT_ID}:event-bus/{bus}"


def _events(call: Call) -> list[Need]:
    return [
        Need("events:PutEvents", bus_arn(bus, call.region), "bus", bus) for bus in dict.fromkeys(call.buses)
    ]


_MAPPINGS: dict[str, dict[str, Callable[[Call], list[Need]]]] = {
    "s3": _S3,
    "dynamodb": _DYNAMODB,
    "secretsmanager": {
        "GetSecretValue": lambda c: _secret(c, "secretsmanager:GetSecretValue"),
        "DescribeSecret": lambda c: _secret(c, "secretsmanager:DescribeSecret"),
    },
    "ssm": {
        "GetParameter": lambda c: _parameter(c, "ssm:GetParameter"),
    },
    "sqs": {
        # The batch calls are authorized as their single-message action.
        "ChangeMessageVisibility": lambda c: _queue(c, "sqs:ChangeMessageVisibility"),
        "ChangeMessageVisibilityBatch": lambda c: _queue(c, "sqs:ChangeMessageVisibility"),
        "DeleteMessage": lambda c: _queue(c, "sqs:DeleteMessage"),
        "DeleteMessageBatch": lambda c: _queue(c, "sqs:DeleteMessage"),
        "SendMessage": lambda c: _queue(c, "sqs:SendMessage"),
        "SendMessageBatch": lambda c: _queue(c, "sqs:SendMessage"),
        "GetQueueAttributes": lambda c: _queue(c, "sqs:GetQueueAttributes"),
        "ReceiveMessage": lambda c: _queue(c, "sqs:ReceiveMessage"),
        "GetQueueUrl": _queue_by_name,
    },
    "events": {"PutEvents": _events},
    # Not a botocore call: the recorder logs each request s3kp_core.request_signing signs for a Function URL.
    "lambda": {"InvokeFunctionUrl": _function_url},
    # Needs no permission (any principal may ask who it is).
    "sts": {"GetCallerIdentity": lambda c: []},
}


def required_permissions(call: Call) -> list[Need]:
    """What IAM must allow for `call` to succeed (a presigned URL needs what the call itself needs)."""
    try:
        mapping = _MAPPINGS[call.service][call.operation]
    except KeyError:
        raise UnknownCall(
            f"{call.service} {call.operation}: no IAM mapping in tests/iam_proof/actions.py - add the "
            "action and resource it needs (Service Authorization Reference)"
        ) from None
    return mapping(call)
