"""A Lambda Function URL with AuthType AWS_IAM, reproduced locally for the InferenceFunction.

The offline stack's builtin backend (`s3kp up --inference-backend builtin`) serves the InferenceFunction's
handler, running in a Lambda worker, behind this bridge, and the ingest worker calls it exactly as it
calls the Function URL in AWS: SigV4-signed requests for service `lambda`. What AWS does around the
function, and the bridge does too:

- the shared Host/Origin guard first (`host_guard`: a request from a page elsewhere, or a rebinding
  name, gets 403 before anything else), as every local server;
- a payload over 6 MB is refused with 413 (Lambda's synchronous invocation limit), unread;
- IAM authentication: an unsigned or wrongly signed request, one signed with other credentials, for
  another region or service, or too old, is answered 403 `{"Message": "Forbidden"}` (`sigv4_check`
  recomputes botocore's signature over the received request with the local credentials);
- the request becomes a payload format 2.0 event (`apigw.http_api_event`, routeKey `$default`) with the
  caller in `requestContext.authorizer.iam`; the handler's response becomes the HTTP answer; a function
  error or timeout is a 502 `{"Message": "Internal Server Error"}`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from s3kp.local import apigw
from s3kp.local.bridge_handler import bridge_request_handler
from s3kp.local.host_guard import REFUSED_STATUS, HostGuard
from s3kp.local.lambda_runtime import LambdaContext
from s3kp.local.loopback_server import GuardedHandler, LoopbackServer, guarded_http_server
from s3kp.local.sigv4_check import ExpectedSigner, SignatureRejected, check_signature
from s3kp.local.workers import InvocationError

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
URL_ID = "local0inference0function0url0000"  # stands for the 32-character id of a Function URL's host
TOO_LARGE = f"Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the InvokeFunction operation"
Invoke = Callable[[dict[str, Any], LambdaContext], Any]
Response = tuple[int, list[tuple[str, str]], bytes]


def _message(status: int, message: str) -> Response:
    return status, [("content-type", "application/json")], json.dumps({"Message": message}).encode()


class FunctionUrlBridge(LoopbackServer):
    """A threading HTTP server on `host:port` that checks each request as an AWS_IAM Function URL does
    and forwards it to `invoke`."""

    def __init__(
        self,
        host: str,
        port: int,
        invoke: Invoke,
        *,
        signer: ExpectedSigner,
        function_name: str = "s3kp-inference",
        timeout_seconds: float = 30.0,
        guard: HostGuard | None = None,
    ) -> None:
        self._invoke = invoke
        self._signer = signer
        self._function_name = function_name
        self._timeout_seconds = timeout_seconds
        super().__init__(
            guarded_http_server(host, port, self._request_handler_class(), guard), thread_name="function-url"
        )

    def handle(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str
    ) -> Response:
        """One request the guard let through (`bridge_handler`), through the IAM check and the function:
        status, headers and body."""
        received = {name.lower(): value for name, value in headers}
        try:
            check_signature(self._signer, method, target, dict(headers), body)
        except SignatureRejected as rejected:
            log.warning("%s %s refused: %s", method, target.split("?", 1)[0], rejected)
            return _message(403, "Forbidden")
        path, _, query = target.partition("?")
        event = apigw.http_api_event(method, path, query, headers, body, source_ip=source_ip)
        context = event["requestContext"]
        context.update(apiId=URL_ID, domainName=received.get("host", ""), domainPrefix=URL_ID)
        credentials = self._signer.credentials
        context["authorizer"] = {
            "iam": {
                "accessKey": credentials.access_key,
                "accountId": apigw.ACCOUNT_ID,
                "callerId": f"AROALOCAL:{self._function_name}-caller",
                "cognitoIdentity": None,
                "principalOrgId": None,
                "userArn": f"arn:aws:sts::{apigw.ACCOUNT_ID}:assumed-role/local-caller/session",
                "userId": "AROALOCAL:session",
            }
        }
        lambda_context = LambdaContext(
            function_name=self._function_name, timeout_seconds=self._timeout_seconds
        )
        try:
            result = self._invoke(event, lambda_context)
        except InvocationError as error:
            log.warning("%s %s: the function failed: %s", method, path, error)
            return _message(502, "Internal Server Error")
        return apigw.http_response(result)

    def _request_handler_class(self) -> type[GuardedHandler]:
        return bridge_request_handler(
            self.handle,
            server_version="s3kp-local-function-url",
            max_body_bytes=MAX_PAYLOAD_BYTES,
            too_large=_message(413, TOO_LARGE),
            refused=partial(_message, REFUSED_STATUS),
        )
