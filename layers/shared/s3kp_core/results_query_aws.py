"""The AWS sources of a results query: `results_query.ItemSource` over DynamoDB, `DocumentSource` over S3."""

from __future__ import annotations

import json
from typing import Any, BinaryIO, cast

from s3kp_core.results import ObjectRef


class DynamoDBItems:
    """ItemSource over a boto3 DynamoDB client (thread-safe, unlike boto3 resources)."""

    def __init__(self, client: Any, table_name: str) -> None:
        from boto3.dynamodb.types import TypeDeserializer  # boto3 is slow to import: only when used

        self._client = client
        self._table_name = table_name
        self._deserialize = TypeDeserializer().deserialize

    def get_item(self, result_id: str) -> dict[str, Any] | None:
        response = self._client.get_item(TableName=self._table_name, Key={"result_id": {"S": result_id}})
        item = response.get("Item")
        return self._plain(item) if item else None

    def query(self, request: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        from boto3.dynamodb.types import TypeSerializer

        serialize = TypeSerializer().serialize
        typed = dict(request)
        for name in ("ExpressionAttributeValues", "ExclusiveStartKey"):
            if name in request:
                typed[name] = {k: serialize(v) for k, v in request[name].items()}
        response = self._client.query(**typed)
        items = [self._plain(item) for item in response.get("Items", [])]
        last_key = response.get("LastEvaluatedKey")
        return items, (self._plain(last_key) if last_key else None)

    def _plain(self, item: dict[str, Any]) -> dict[str, Any]:
        return {name: self._deserialize(value) for name, value in item.items()}


class S3Documents:
    """DocumentSource over a boto3 S3 client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def read_json(self, ref: ObjectRef) -> Any:
        arguments = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            arguments["VersionId"] = ref.version_id
        return json.loads(self._client.get_object(**arguments)["Body"].read())

    def open(self, ref: ObjectRef) -> BinaryIO:
        arguments = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            arguments["VersionId"] = ref.version_id
        return cast(BinaryIO, self._client.get_object(**arguments)["Body"])
