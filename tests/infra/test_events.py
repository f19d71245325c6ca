"""Every ready event in events/ (for `sam local invoke` and the tests) is valid and shaped like AWS's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    LambdaFunctionUrlModel,
    S3Model,
    SqsModel,
)
from s3_events import decode_key, parse_notification

from s3kp.local.cfn_template import load_template
from tests.infra.iac_tools import ROOT

EVENTS = sorted((ROOT / "events").glob("*.json"))
# S3's notification-configuration probe: not a Records event, the ingest function must skip it.
S3_TEST_EVENT_KEYS = {"Service", "Event", "Time", "Bucket", "RequestId", "HostId"}


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _api_routes() -> set[str]:
    body = load_template()["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]
    return {f"{method.upper()} {path}" for path, methods in body["paths"].items() for method in methods}


def _route_pattern(route_key: str) -> re.Pattern[str]:
    _, path = route_key.split(" ", 1)
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$")


def test_there_is_an_event_for_every_handler_path() -> None:
    names = {path.name for path in EVENTS}

    assert {"api-list.json", "api-get.json", "api-annotated.json"} <= names
    assert any(name.startswith("s3-") for name in names)
    assert any(name.startswith("sqs-") for name in names)
    assert "function-url-inference.json" in names


@pytest.mark.parametrize("path", EVENTS, ids=lambda p: p.name)
def test_event_is_valid_json_of_its_kind(path: Path) -> None:
    """GIVEN a ready event WHEN read with Powertools' strict model of its kind (AWS's shape) THEN it is
    valid, and what the function reads from it agrees with that model."""
    event = _load(path)
    if path.name.startswith("api-"):
        request = APIGatewayProxyEventV2Model.model_validate(event)
        method, _ = request.routeKey.split(" ", 1)
        assert request.requestContext.http.method == method
    elif path.name.startswith("sqs-"):
        for record in SqsModel.model_validate(event).Records:
            _validate_s3_body(json.loads(record.body))
    elif path.name.startswith("s3-"):
        _validate_s3_body(event)
    elif path.name.startswith("function-url-"):
        request = LambdaFunctionUrlModel.model_validate(event)
        assert request.rawPath == request.requestContext.http.path
        assert request.requestContext.authorizer is not None, "an AWS_IAM Function URL names its caller"
    else:
        pytest.fail(f"{path.name}: name it api-*, s3-*, sqs-* or function-url-* so its shape can be checked")


def _validate_s3_body(body: dict[str, Any]) -> None:
    notification = parse_notification(body)
    if body.get("Event") == "s3:TestEvent":
        assert set(body) == S3_TEST_EVENT_KEYS
        assert notification.is_test_event
    else:
        records = S3Model.model_validate(body).Records
        # The ingest function reads the objects AWS's model names (keys URL-decoded), one per record.
        assert [(e.source.bucket, e.source.key) for e in notification.objects] == [
            (r.s3.bucket.name, decode_key(r.s3.object.key)) for r in records
        ]


@pytest.mark.parametrize("path", [p for p in EVENTS if p.name.startswith("api-")], ids=lambda p: p.name)
def test_api_event_targets_a_route_of_the_template(path: Path) -> None:
    event = APIGatewayProxyEventV2Model.model_validate(_load(path))

    assert event.routeKey in _api_routes()
    assert event.requestContext.routeKey == event.routeKey
    assert _route_pattern(event.routeKey).match(event.rawPath), (
        f"{event.rawPath} does not match {event.routeKey}"
    )
    assert event.requestContext.http.method == event.routeKey.split(" ")[0]
    assert event.requestContext.http.path == event.rawPath
    # The template's default authorization is IAM: events carry the IAM caller like API Gateway sends it.
    assert event.requestContext.authorizer is not None
    assert event.requestContext.authorizer.iam is not None
