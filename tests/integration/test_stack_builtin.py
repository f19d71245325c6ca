"""The offline stack with `--inference-backend builtin`, run the way AWS runs it.

The InferenceFunction's handler runs in Lambda workers behind a local AWS_IAM Function URL; the ingest
and video workers call it with SigV4-signed requests (INFERENCE_AUTH=aws_iam), no API key. Checked from
outside, as a client of the stack: an image and a video uploaded get their keypoints from the
InferenceFunction; the Function URL
answers 403 to anything not signed exactly as AWS requires, refuses a foreign Host and a payload over
6 MB, and answers a signed request as the model server would (200, 400, 404, 422).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from s3kp_core.results import result_id_for

from s3kp import samples
from s3kp.local.stack import DUMMY_CREDENTIALS, LocalStack, StackError, StackOptions
from s3kp.video_samples import sample_video
from tests.conftest import free_port

pytestmark = pytest.mark.slow

RESULT_TIMEOUT = 180.0
LOCAL = Credentials(
    DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
    DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
)
FACE = base64.b64encode(samples.sample_jpeg("astronaut"))
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = StackOptions(
        aws_port=free_port(),
        inference_port=free_port(),
        api_port=free_port(),
        inference_backend="builtin",
        model_id="faces/2",
        log_dir=tmp_path_factory.mktemp("stack-logs"),
    )
    running = LocalStack(options, echo=lambda line: None, report_batches=False)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def signed(
    url: str,
    body: bytes = FACE,
    *,
    credentials: Credentials = LOCAL,
    region: str = "us-east-1",
    service: str = "lambda",
    content_type: str = FORM,
) -> dict[str, str]:
    """The headers of a request signed as a caller with `credentials` would sign it."""
    request = AWSRequest(method="POST", url=url, data=body, headers={"Content-Type": content_type})
    SigV4Auth(credentials.get_frozen_credentials(), service, region).add_auth(request)
    return dict(request.headers.items())


def post(url: str, headers: dict[str, str], body: bytes = FACE) -> requests.Response:
    return requests.post(url, data=body, headers=headers, timeout=60)


def test_an_upload_is_answered_by_the_inference_function_through_its_signed_url(stack: LocalStack) -> None:
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint, region_name="us-east-1")
    key = f"{stack.resources.input_prefix}builtin/astronaut.jpg"
    s3.put_object(Bucket=stack.resources.bucket, Key=key, Body=samples.sample_jpeg("astronaut"))

    url = f"{stack.api_url}/results/{result_id_for(stack.resources.bucket, key)}"
    deadline = time.monotonic() + RESULT_TIMEOUT
    while (response := requests.get(url, timeout=30)).status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.5)
    result: dict[str, Any] = response.json()
    assert result["status"] == "succeeded", result
    assert result["model_id"] == "faces/2"
    assert result["detections"] == 1
    assert result["counts"] == {"face": 1}


def test_a_video_uploaded_is_answered_by_the_inference_function_through_its_signed_url(
    stack: LocalStack,
) -> None:
    """The video workers sign their calls as the ingest workers do: unsigned, every frame would be refused
    (403) and the video would wait for the endpoint instead of succeeding."""
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint, region_name="us-east-1")
    key = f"{stack.resources.input_prefix}builtin/clip.mp4"
    s3.put_object(Bucket=stack.resources.bucket, Key=key, Body=sample_video(seconds=1.0))

    url = f"{stack.api_url}/results/{result_id_for(stack.resources.bucket, key)}"
    deadline = time.monotonic() + RESULT_TIMEOUT
    result: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = requests.get(url, timeout=30)
        if response.status_code == 200 and (result := response.json())["status"] not in (
            "pending",
            "processing",
        ):
            break
        time.sleep(0.5)
    assert result.get("status") == "succeeded", result
    assert result["media_type"] == "video"
    assert result["model_id"] == "faces/2"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"drop_signature": True}, "unsigned"),
        ({"credentials": Credentials("AKIDSOMEONEELSE", "other-secret", "other-token")}, "other credentials"),
        ({"region": "eu-west-1"}, "another region"),
        ({"service": "execute-api"}, "another service"),
        ({"tamper_body": True}, "a body changed after signing"),
        ({"tamper_query": True}, "a query changed after signing"),
    ],
)
def test_the_function_url_refuses_what_aws_iam_auth_refuses_with_403(
    stack: LocalStack, change: dict[str, Any], why: str
) -> None:
    url = f"{stack.inference_url}faces/2?confidence=0.4"
    options = {k: v for k, v in change.items() if k in ("credentials", "region", "service")}
    headers = signed(url, **options)
    body, target = FACE, url
    if change.get("drop_signature"):
        headers = {"Content-Type": FORM}
    if change.get("tamper_body"):
        body = FACE + b"A"
    if change.get("tamper_query"):
        target = url.replace("0.4", "0.1")

    response = post(target, headers, body)

    assert (response.status_code, response.json()) == (403, {"Message": "Forbidden"}), why


def test_a_signed_request_is_answered_as_the_model_server_answers_it(stack: LocalStack) -> None:
    base = stack.inference_url
    ok = post(f"{base}faces/2?confidence=0.4", signed(f"{base}faces/2?confidence=0.4"))
    assert ok.status_code == 200, ok.text
    assert ok.json()["image"] == {"width": 512, "height": 512}
    assert len(ok.json()["predictions"]) == 1

    garbage = base64.b64encode(b"not an image")
    undecodable = post(f"{base}faces/2", signed(f"{base}faces/2", garbage), garbage)
    assert undecodable.status_code == 400
    assert undecodable.json()["message"].startswith("Could not load input image")
    unknown = post(f"{base}pose/1", signed(f"{base}pose/1"))
    assert (unknown.status_code, unknown.json()["message"]) == (
        404,
        "Model 'pose/1' not found (this endpoint serves faces/2)",
    )
    invalid = post(f"{base}faces/2?max_detections=0", signed(f"{base}faces/2?max_detections=0"))
    assert invalid.status_code == 422


def test_the_function_url_refuses_a_foreign_host_and_an_oversized_payload(stack: LocalStack) -> None:
    url = f"{stack.inference_url}faces/2"
    rebinding = post(url, {**signed(url), "Host": f"attacker.example:{stack.options.inference_port}"})
    assert rebinding.status_code == 403
    assert "only this machine" in rebinding.json()["Message"]

    big = b"A" * (6 * 1024 * 1024 + 1)
    too_large = post(url, signed(url, big), big)
    assert too_large.status_code == 413


def test_the_builtin_backend_takes_no_inference_url_and_only_built_in_models() -> None:
    for options, message in (
        (StackOptions(inference_backend="builtin", inference_url="https://x.example"), "--inference-url"),
        (StackOptions(inference_backend="builtin", model_id="my-pose/1"), "builtin serves"),
    ):
        with pytest.raises(StackError, match=message):
            LocalStack(options, echo=lambda line: None).start()
