"""The local AWS endpoint (moto behind `s3kp.local.aws_server`), as `s3kp up` runs it.

Specification: it answers only this machine — a request naming another `Host` (DNS rebinding) or sent
by a page elsewhere (`Origin`) is refused with a 403 before moto sees it, and no origin is granted CORS —
while boto3 and the aws CLI work as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests

from tests.conftest import REGION, ROOT, free_port, wait_for_http

SECRET_VALUE = "rf_real_roboflow_key"  # what `s3kp up --api-key` stores in the local secret
DUMMY = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}
# A browser cannot sign, but moto does not check signatures: any credential scope names the service.
FORGED_SCOPE = (
    "AWS4-HMAC-SHA256 Credential=AKIDFORGED/20260101/us-east-1/secretsmanager/aws4_request, "
    "SignedHeaders=host, Signature=00"
)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """`python -m s3kp.local.aws_server`, the command `s3kp up` starts, on a free loopback port."""
    port = free_port()
    command = [sys.executable, "-m", "s3kp.local.aws_server", "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/moto-api/", timeout=60, process=process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def secret_name(endpoint: str) -> str:
    secrets = boto3.client("secretsmanager", endpoint_url=endpoint, **_credentials())
    secrets.create_secret(Name="s3kp-local-roboflow-api-key", SecretString=SECRET_VALUE)
    return "s3kp-local-roboflow-api-key"


def _credentials() -> dict[str, str]:
    return {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _get_secret_value(endpoint: str, secret: str, **headers: str) -> requests.Response:
    """GetSecretValue as a page's script would send it (fetch with a forged scope, no real signature)."""
    return requests.post(
        f"{endpoint}/",
        data=json.dumps({"SecretId": secret}),
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "secretsmanager.GetSecretValue",
            "Authorization": FORGED_SCOPE,
            **headers,
        },
        timeout=10,
    )


def _cors_headers(response: requests.Response) -> list[str]:
    return [name for name in response.headers if name.lower().startswith("access-control-")]


def test_a_rebinding_page_cannot_read_the_local_secret(endpoint: str, secret_name: str) -> None:
    """GIVEN the local secret holding the developer's Roboflow key WHEN a page whose name now resolves to
    127.0.0.1 asks for it (its Host is its own name) THEN 403 and nothing of the secret; the very same
    request with the loopback Host is answered (the forged scope is enough for moto)."""
    port = endpoint.rsplit(":", 1)[1]
    for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.nip.io:{port}"):
        rebound = _get_secret_value(endpoint, secret_name, Host=host)
        assert rebound.status_code == 403, host
        assert SECRET_VALUE not in rebound.text

    assert _get_secret_value(endpoint, secret_name).json()["SecretString"] == SECRET_VALUE


def test_a_page_elsewhere_is_refused_and_granted_no_cors(endpoint: str, secret_name: str) -> None:
    """GIVEN a page on another site WHEN it sends the request (its Origin set by the browser), or first a
    CORS preflight THEN both are refused with 403 and no Access-Control-* header; a page of this machine
    (the viewer's origin) is not granted CORS either: nothing in a browser needs the AWS endpoint."""
    foreign = "https://attacker.example"
    direct = _get_secret_value(endpoint, secret_name, Origin=foreign)
    assert direct.status_code == 403
    assert SECRET_VALUE not in direct.text
    assert _cors_headers(direct) == []

    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-amz-target"}
    refused = requests.options(f"{endpoint}/", headers={"Origin": foreign, **preflight}, timeout=10)
    assert refused.status_code == 403
    assert _cors_headers(refused) == []

    local_page = "http://127.0.0.1:8080"
    answered = requests.options(f"{endpoint}/", headers={"Origin": local_page, **preflight}, timeout=10)
    assert _cors_headers(answered) == []
    read = _get_secret_value(endpoint, secret_name, Origin=local_page)
    assert _cors_headers(read) == [], "no page can read an answer"


def test_a_form_post_from_a_page_elsewhere_cannot_upload(endpoint: str) -> None:
    """A cross-site form (no CORS needed) posting an object to a bucket is refused."""
    s3 = boto3.client("s3", endpoint_url=endpoint, **_credentials())
    s3.create_bucket(Bucket="form-target")
    form = requests.post(
        f"{endpoint}/form-target",
        files={"key": (None, "incoming/x.jpg"), "file": ("x.jpg", b"\xff\xd8\xff")},
        headers={"Origin": "https://attacker.example"},
        timeout=10,
    )
    assert form.status_code == 403
    assert s3.list_objects_v2(Bucket="form-target").get("KeyCount") == 0


def test_boto3_and_the_aws_cli_work_by_address_and_by_localhost(endpoint: str, tmp_path: Path) -> None:
    for url in (endpoint, endpoint.replace("127.0.0.1", "localhost")):
        s3 = boto3.client("s3", endpoint_url=url, **_credentials())
        s3.create_bucket(Bucket="clients")
        s3.put_object(Bucket="clients", Key="a.txt", Body=b"hello")
        assert s3.get_object(Bucket="clients", Key="a.txt")["Body"].read() == b"hello"
        sqs = boto3.client("sqs", endpoint_url=url, **_credentials())
        queue = sqs.create_queue(QueueName="clients")["QueueUrl"]
        sqs.send_message(QueueUrl=queue, MessageBody="m")
        assert sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"] == "m"

    aws = Path(sys.executable).parent / "aws"
    copy = subprocess.run(
        [str(aws), "--endpoint-url", endpoint, "s3", "cp", "s3://clients/a.txt", str(tmp_path / "a.txt")],
        env=os.environ | DUMMY,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert copy.returncode == 0, copy.stderr
    assert (tmp_path / "a.txt").read_bytes() == b"hello"
