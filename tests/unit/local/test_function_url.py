"""The local AWS_IAM Function URL's answers that the integration test does not reach: a function error
is AWS's 502, the event carries the signed caller as `requestContext.authorizer.iam`, and a foreign `Host`
beside a loopback one is the guard's 403."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from s3kp.local.function_url import FunctionUrlBridge
from s3kp.local.host_guard import REFUSED_MESSAGE
from s3kp.local.lambda_runtime import LambdaContext
from s3kp.local.sigv4_check import ExpectedSigner
from s3kp.local.workers import HandlerError

CREDENTIALS = Credentials("AKIDLOCAL", "local-secret", "local-token")


@pytest.fixture
def bridge_with(request: pytest.FixtureRequest) -> Iterator[tuple[FunctionUrlBridge, list[dict[str, Any]]]]:
    events: list[dict[str, Any]] = []
    failing = getattr(request, "param", False)

    def invoke(event: dict[str, Any], context: LambdaContext) -> Any:
        events.append(event)
        if failing:
            raise HandlerError("RuntimeError: boom")
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"}

    bridge = FunctionUrlBridge(
        "127.0.0.1", 0, invoke, signer=ExpectedSigner(CREDENTIALS.get_frozen_credentials(), "us-east-1")
    )
    try:
        yield bridge, events
    finally:
        bridge.stop()


def signed_headers(target: str, body: bytes) -> list[tuple[str, str]]:
    request = AWSRequest(
        method="POST", url=f"http://127.0.0.1:9001{target}", data=body, headers={"Content-Type": "text/plain"}
    )
    SigV4Auth(CREDENTIALS.get_frozen_credentials(), "lambda", "us-east-1").add_auth(request)
    return [("Host", "127.0.0.1:9001"), *request.headers.items()]


def test_the_function_gets_a_payload_2_event_naming_its_signed_caller(
    bridge_with: tuple[FunctionUrlBridge, list[dict[str, Any]]],
) -> None:
    bridge, events = bridge_with
    status, _, _ = bridge.handle(
        "POST", "/faces/2?confidence=0.4", signed_headers("/faces/2?confidence=0.4", b"x"), b"x", "127.0.0.1"
    )

    assert status == 200
    (event,) = events
    assert (event["version"], event["routeKey"], event["rawPath"]) == ("2.0", "$default", "/faces/2")
    assert event["rawQueryString"] == "confidence=0.4"
    assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == "AKIDLOCAL"
    assert event["requestContext"]["http"]["method"] == "POST"


@pytest.mark.parametrize("bridge_with", [True], indirect=True)
def test_a_function_error_is_answered_502_as_aws_does(
    bridge_with: tuple[FunctionUrlBridge, list[dict[str, Any]]],
) -> None:
    bridge, _ = bridge_with
    status, _, body = bridge.handle("POST", "/faces/2", signed_headers("/faces/2", b"x"), b"x", "127.0.0.1")

    assert (status, json.loads(body)) == (502, {"Message": "Internal Server Error"})


def test_nothing_reaches_the_function_unsigned(
    bridge_with: tuple[FunctionUrlBridge, list[dict[str, Any]]],
) -> None:
    bridge, events = bridge_with
    status, _, body = bridge.handle("POST", "/faces/2", [("Host", "127.0.0.1:9001")], b"x", "127.0.0.1")

    assert (status, json.loads(body)) == (403, {"Message": "Forbidden"})
    assert events == []


def test_a_foreign_host_beside_a_loopback_one_is_refused_by_the_guard(
    bridge_with: tuple[FunctionUrlBridge, list[dict[str, Any]]],
) -> None:
    """GIVEN a request repeating `Host` (no browser does) THEN the guard refuses it when any value is
    foreign, whichever comes first, before the IAM check and the function."""
    bridge, events = bridge_with
    bridge.start()
    for hosts in (("127.0.0.1:9001", "attacker.example"), ("attacker.example", "127.0.0.1:9001")):
        connection = http.client.HTTPConnection("127.0.0.1", bridge.port, timeout=5)
        connection.putrequest("POST", "/faces/2", skip_host=True)
        for host in hosts:
            connection.putheader("Host", host)
        connection.putheader("Content-Length", "0")
        connection.endheaders()
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())) == (403, {"Message": REFUSED_MESSAGE}), hosts
        connection.close()
    assert events == []
