"""The local AWS endpoint (moto behind `s3kp.local.aws_server`), as `s3kp up` runs it.

Specification: it answers only this machine — a request naming another `Host` (DNS rebinding) or sent
by a page elsewhere (`Origin`) is refused with a 403 before moto sees it, and no origin is granted CORS —
while boto3 and the aws CLI work as before; and concurrent receives lose no message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

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


# --------------------------------------------------------------------------------- concurrent receives
# The fixture `fresh_aws` is the same server in this test process (tests/conftest.py), so the test can
# reach moto's queue and open the race window two pollers otherwise hit by chance under load.


class _RaceWindow(list[Any]):
    """A queue's message list whose first `remove` (moto moving a message to the DLQ at the end of a
    receive) first lets `second_receive` run to its end: the interleaving of two concurrent receives."""

    def __init__(self, messages: list[Any], second_receive: Callable[[], None]) -> None:
        super().__init__(messages)
        self._second_receive = second_receive
        self.second: threading.Thread | None = None

    def remove(self, message: Any) -> None:
        if self.second is None:
            self.second = threading.Thread(target=self._second_receive)
            self.second.start()
            # Unlocked, the second receive runs to its end here. Locked, it waits for this one: the
            # join gives up after a while and this receive goes on (a bound on waiting, not a check).
            self.second.join(timeout=2)
        super().remove(message)


def test_concurrent_receives_at_max_receive_count_lose_no_message(fresh_aws: str) -> None:
    """GIVEN a queue with a DLQ (maxReceiveCount 1), message A received once, then B and C WHEN two
    receives run at once and both find A due for the DLQ THEN each of B and C goes to one receiver, A is
    in the DLQ, and no receive fails. (moto 5.2.5 unpatched: the second `remove(A)` raises ValueError,
    that receive fails with a 500, and the message it had marked received reappears only after its
    visibility timeout.)"""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    once = Config(retries={"total_max_attempts": 1})  # a failed receive shows, it is not retried
    sqs = boto3.client("sqs", endpoint_url=fresh_aws, region_name=REGION, config=once)
    dlq = sqs.create_queue(QueueName="race-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
    queue = sqs.create_queue(QueueName="race", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="A")
    assert sqs.receive_message(QueueUrl=queue, VisibilityTimeout=0)["Messages"][0]["Body"] == "A"
    sqs.send_message(QueueUrl=queue, MessageBody="B")
    sqs.send_message(QueueUrl=queue, MessageBody="C")

    delivered: list[str] = []
    errors: list[str] = []

    def receive() -> None:
        client = boto3.client("sqs", endpoint_url=fresh_aws, region_name=REGION, config=once)
        try:
            answer = client.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, VisibilityTimeout=600)
        except ClientError as error:
            errors.append(str(error))
            return
        delivered.extend(message["Body"] for message in answer.get("Messages", []))

    moto_queue = sqs_backends[DEFAULT_ACCOUNT_ID][REGION].get_queue("race")
    window = _RaceWindow(moto_queue._messages, receive)
    moto_queue._messages = window
    receive()
    assert window.second is not None, "the first receive moved A to the DLQ"
    window.second.join()

    assert errors == []
    assert sorted(delivered) == ["B", "C"]
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert [message["Body"] for message in dead] == ["A"]


def test_a_long_poll_does_not_hold_up_other_queue_calls(
    fresh_aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a receive long-polling an empty queue, waiting for messages WHEN a message is sent meanwhile
    THEN the send is answered and the poll returns that message (no lock is held while a poll waits)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    sqs = boto3.client("sqs", endpoint_url=fresh_aws, region_name=REGION)
    queue = sqs.create_queue(QueueName="long-poll")["QueueUrl"]
    moto_queue = sqs_backends[DEFAULT_ACCOUNT_ID][REGION].get_queue("long-poll")
    waiting = threading.Event()
    wait_for_messages = moto_queue.wait_for_messages

    def wait_and_tell(timeout: int) -> None:
        waiting.set()
        wait_for_messages(timeout)

    monkeypatch.setattr(moto_queue, "wait_for_messages", wait_and_tell)
    received: list[str] = []
    poll = threading.Thread(
        target=lambda: received.extend(
            m["Body"] for m in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=20).get("Messages", [])
        )
    )
    poll.start()
    waiting.wait()
    boto3.client("sqs", endpoint_url=fresh_aws, region_name=REGION).send_message(
        QueueUrl=queue, MessageBody="while polling"
    )
    poll.join()
    assert received == ["while polling"]
