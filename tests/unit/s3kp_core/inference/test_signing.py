"""With `auth` aws_iam the client signs each attempt with SigV4 (service `lambda`) instead of sending a key.

Each request is checked the way the local Function URL checks it (`s3kp.local.sigv4_check`, botocore's
signature recomputed over the received request): what the client sends is what AWS would accept.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest
import responses
from botocore.credentials import Credentials
from s3kp_core.errors import EndpointUnavailable
from s3kp_core.inference import InferenceClient
from s3kp_core.request_signing import RequestSigner, canonical_url

from s3kp.local.sigv4_check import ExpectedSigner, SignatureRejected, check_signature
from tests.unit.s3kp_core.inference.builders import ENDPOINT, JPEG, OK_BODY, FakeTime, settings

CREDENTIALS = Credentials("AKIDSIGNINGTEST", "signing-secret", "session-token-xyz")
EXPECTED = ExpectedSigner(CREDENTIALS.get_frozen_credentials(), "eu-west-1")


def signing_client(fake_time: FakeTime, **overrides: object) -> InferenceClient:
    return InferenceClient(
        settings(auth="aws_iam", api_key=None, **overrides),
        signer=RequestSigner(CREDENTIALS, "eu-west-1"),
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        jitter=lambda limit: limit,
    )


def check(call: responses.Call) -> None:
    """The request as the endpoint received it, checked as AWS checks it."""
    parts = urlsplit(call.request.url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    headers = {"Host": parts.netloc, **call.request.headers}
    check_signature(EXPECTED, call.request.method, target, headers, call.request.body)


def test_each_request_is_signed_for_lambda_in_the_region_and_carries_no_key(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, json=OK_BODY)

    signing_client(fake_time).predict(JPEG)

    (call,) = mocked.calls
    authorization = call.request.headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDSIGNINGTEST/")
    assert "/eu-west-1/lambda/aws4_request" in authorization
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token," in authorization
    assert call.request.headers["X-Amz-Security-Token"] == "session-token-xyz"
    assert "api_key" not in call.request.url
    check(call)


def test_every_attempt_is_signed_and_callers_see_the_request_without_the_signature(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, status=503)
    mocked.post(ENDPOINT, json=OK_BODY)
    client = signing_client(fake_time)

    client.predict(JPEG)

    assert len(mocked.calls) == 2
    for call in mocked.calls:
        check(call)
    # What tracers and callers get back (`response.request`) is the request as built, unsigned.
    answered = client._session.post(ENDPOINT, data=b"x", headers={"Content-Type": "text/plain"})
    assert "Authorization" not in answered.request.headers


def test_the_query_is_sent_as_it_is_signed_per_rfc_3986(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    """A class name with a space: `%20` (AWS would read a `+` back as another string)."""
    mocked.post(ENDPOINT, json=OK_BODY)

    signing_client(fake_time, classes=("left hand", "face")).predict(JPEG)

    (call,) = mocked.calls
    assert "classes=left%20hand%2Cface" in call.request.url
    check(call)


def test_a_request_changed_after_signing_is_refused(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, json=OK_BODY)
    signing_client(fake_time).predict(JPEG)
    (call,) = mocked.calls
    parts = urlsplit(call.request.url)
    headers = {"Host": parts.netloc, **call.request.headers}
    target = f"{parts.path}?{parts.query}"

    with pytest.raises(SignatureRejected, match="does not match"):
        check_signature(EXPECTED, "POST", target, headers, call.request.body + b"x")
    with pytest.raises(SignatureRejected, match="does not match"):
        check_signature(EXPECTED, "POST", target.replace("0.4", "0.1"), headers, call.request.body)
    with pytest.raises(SignatureRejected, match="unsigned"):
        check_signature(EXPECTED, "POST", target, {"Host": parts.netloc}, call.request.body)
    other = ExpectedSigner(Credentials("AKIDOTHER", "s", "t").get_frozen_credentials(), "eu-west-1")
    with pytest.raises(SignatureRejected, match="other credentials"):
        check_signature(other, "POST", target, headers, call.request.body)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
    with pytest.raises(SignatureRejected, match="expired"):
        check_signature(EXPECTED, "POST", target, headers, call.request.body, now=later)


def test_a_403_names_the_role_permission_not_an_api_key(
    mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.post(ENDPOINT, status=403, json={"Message": "Forbidden"})

    with pytest.raises(EndpointUnavailable) as raised:
        signing_client(fake_time).predict(JPEG)

    assert raised.value.code == "inference_unauthorized"
    assert "lambda:InvokeFunctionUrl" in raised.value.message
    assert len(mocked.calls) == 1  # a policy does not fix itself in seconds: the message waits


def test_aws_iam_without_a_signer_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="signer"):
        InferenceClient(settings(auth="aws_iam", api_key=None))


def test_the_canonical_url_keeps_the_order_and_encodes_per_rfc_3986() -> None:
    assert canonical_url("https://h/p?b=a+b&a=%2C~") == "https://h/p?b=a%20b&a=%2C~"
    assert canonical_url("https://h/p") == "https://h/p"
