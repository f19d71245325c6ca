"""IAM proven, not assumed: every AWS call the handlers made in this session is allowed by their roles.

Runs after every other test (marker `iam_proof`, ordered by tests/conftest.py). It first drives a
representative set of events through the handlers itself, so the proof holds when it runs alone or with
a subset: an upload that succeeds with its predictions spilled to S3, a bad file (failed), an object
deleted before processing (skipped), a versioned bucket (GetObject with a VersionId), a redelivered
message (Powertools idempotency), a stale event, a batch the queue runner receives and deletes as the
event source mapping does with the function's role; a video planned into segments, a segment deferred by
an endpoint outage, the segments processed through the video queue's runner and the video finished; then
the API's list, status filter, pagination, get, by-source, annotated-image and frames routes, and the
builtin backend's signed call to the InferenceFunction's Function URL (InvokeFunctionUrl). Then it
evaluates every call recorded in the session (this test's and those of every earlier integration test, the
offline stack's worker processes included) against the role SAM deploys for the function that made it
(tests/iam_proof/proof.py).
"""

from __future__ import annotations

import importlib
import json
import sys
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus, urlencode

import pytest
from botocore.credentials import ReadOnlyCredentials
from s3kp_core.results_store_dynamodb import DynamoDBResultsStore

from s3kp import samples
from s3kp.local.apigw import http_api_event, http_response
from s3kp.local.function_url import FunctionUrlBridge
from s3kp.local.lambda_runtime import LambdaContext
from s3kp.local.resources import api_environment, video_environment
from s3kp.local.runner import QueueRunner, RunnerSettings
from s3kp.local.sigv4_check import ExpectedSigner
from s3kp.local.stack import DUMMY_CREDENTIALS
from s3kp.paths import model_dir
from s3kp.video_samples import sample_video
from tests.conftest import free_port
from tests.iam_proof import recorder
from tests.iam_proof.proof import Proof, denied, distinct_calls
from tests.integration.test_ingest_pipeline import (  # noqa: F401 - fixtures
    FULL_RANGE_FACES,
    Fault,
    IngestStack,
    StackFactory,
    ingest_stack,
    proxy,
)

pytestmark = pytest.mark.iam_proof

BUILTIN_MODEL = "faces/2"
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")

# What the drive below must have exercised (so a recorder that silently records nothing cannot pass).
EXERCISED = {
    ("IngestFunction", "s3:GetObjectVersion"),
    ("IngestFunction", "s3:PutObject"),
    ("IngestFunction", "dynamodb:GetItem"),
    ("IngestFunction", "dynamodb:PutItem"),
    ("IngestFunction", "dynamodb:UpdateItem"),
    ("IngestFunction", "dynamodb:DeleteItem"),
    ("IngestFunction", "secretsmanager:GetSecretValue"),
    ("IngestFunction", "s3:DeleteObject"),
    ("IngestFunction", "events:PutEvents"),
    ("IngestFunction", "sqs:ChangeMessageVisibility"),
    ("IngestFunction", "sqs:SendMessage"),  # a message deferred while the endpoint is unavailable
    ("IngestFunction", "sqs:ReceiveMessage"),  # the event source mapping's, with the function's role
    ("IngestFunction", "sqs:DeleteMessage"),
    ("VideoFunction", "s3:GetObject"),  # ranged reads of the video, then its segments' parts and pieces
    ("VideoFunction", "s3:PutObject"),
    ("VideoFunction", "s3:DeleteObject"),
    ("VideoFunction", "dynamodb:GetItem"),
    ("VideoFunction", "dynamodb:PutItem"),
    ("VideoFunction", "dynamodb:UpdateItem"),
    ("VideoFunction", "dynamodb:DeleteItem"),  # the idempotency record of the deferred segment
    ("VideoFunction", "secretsmanager:GetSecretValue"),
    ("VideoFunction", "events:PutEvents"),
    ("VideoFunction", "sqs:SendMessage"),  # the fan-out, and the deferral
    ("VideoFunction", "sqs:ChangeMessageVisibility"),
    ("VideoFunction", "sqs:ReceiveMessage"),
    ("VideoFunction", "sqs:DeleteMessage"),
    ("ApiFunction", "dynamodb:Query"),
    ("ApiFunction", "dynamodb:GetItem"),
    ("ApiFunction", "secretsmanager:GetSecretValue"),
    ("ApiFunction", "s3:GetObject"),
    ("IngestFunction", "lambda:InvokeFunctionUrl"),  # the builtin backend (InferenceBackend=builtin)
}


def _with_version_id(message: dict[str, Any], versions: dict[str, str]) -> dict[str, Any]:
    """The message as AWS sends it for a versioned bucket (moto's notification leaves out `versionId`)."""
    body = json.loads(message["Body"])
    for record in body["Records"]:
        key = unquote_plus(record["s3"]["object"]["key"])
        record["s3"]["object"]["versionId"] = versions[key]
    return {**message, "Body": json.dumps(body)}


def _drive_ingest(stack: IngestStack) -> dict[str, str]:
    """Every kind of outcome the ingest function records; returns the succeeded result's id and key."""
    s3, bucket = stack.s3, stack.resources.bucket
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    faces = samples.sample_jpeg("faces_2x2")
    good = stack.upload("proof/good.jpg", faces)
    stack.upload("proof/empty.jpg", b"")
    gone = stack.upload("proof/gone.jpg", faces)
    versions = {
        version["Key"]: version["VersionId"]
        for version in s3.list_object_versions(Bucket=bucket, Prefix=stack.key_for("proof/"))["Versions"]
    }
    s3.delete_object(Bucket=bucket, Key=gone, VersionId=versions[gone])
    # The endpoint answers 503 once (one attempt): the circuit opens (its state in the idempotency table),
    # the image's message is deferred (sent again with a delay), and idempotency drops its in-progress
    # record so that the copy runs it again: the copy is the probe that closes the circuit.
    stack.proxy.faults.append(Fault(503))
    messages = [_with_version_id(message, versions) for message in stack.receive(3)]
    assert stack.invoke(messages) == set()
    (retry,) = stack.receive(1, timeout=15)
    for _ in range(2):  # the copy succeeds; the next redelivery is answered by idempotency
        assert stack.invoke([_with_version_id(retry, versions)]) == set()
        stack.make_visible_again([retry])
        (retry,) = stack.receive(1)

    # A stale event: the second version is processed first, then the first version's event arrives.
    stack.upload("proof/twice.jpg", faces)
    first = stack.receive(1)
    stack.upload("proof/twice.jpg", samples.sample_jpeg("astronaut"))
    stack.invoke(stack.receive(1))
    stack.invoke(first)

    # A newer upload processed in order: its result replaces the first, whose drawing it deletes.
    stack.upload("proof/again.jpg", faces)
    stack.invoke(stack.receive(1))
    stack.upload("proof/again.jpg", samples.sample_jpeg("astronaut"))
    stack.invoke(stack.receive(1))

    states = {
        name: (stack.result(stack.key_for(f"proof/{name}.jpg")) or {}).get("status")
        for name in ("good", "empty", "gone")
    }
    assert states == {"good": "succeeded", "empty": "failed", "gone": "skipped"}, states
    record = stack.result(good)
    assert record is not None
    return {"good": record["result_id"], "good_key": good}


def _poll_once(runner: QueueRunner, handler: Any) -> Any:
    """`runner.poll_once` in a thread named as the runner names its pollers (the recorder tells the
    functions one runner module polls for apart by it)."""
    outcome: list[Any] = []
    thread = threading.Thread(
        target=lambda: outcome.append(runner.poll_once(handler)),
        name=f"sqs-poller-{runner.settings.logical_id}-0",
    )
    thread.start()
    thread.join()
    return outcome[0]


def _poll_like_the_event_source_mapping(stack: IngestStack) -> None:
    """One batch through the queue runner: it receives, invokes the handler and deletes what succeeded,
    as Lambda's event source mapping does with the function's role."""
    stack.upload("proof/polled.jpg", samples.sample_jpeg("astronaut"))
    handler = stack.handler.lambda_handler
    settings = RunnerSettings(
        stack.resources.queue_url, stack.resources.queue_arn, wait_seconds=10, logical_id="IngestFunction"
    )
    outcome = _poll_once(QueueRunner(stack.sqs, settings, [handler]), handler)
    assert outcome is not None
    assert outcome.deleted, outcome


def _drive_video(monkeypatch: pytest.MonkeyPatch, stack: IngestStack) -> dict[str, str]:
    """A clip planned into two segments; the first deferred by an outage (503), then both processed
    through the video queue's runner, the second finishing the video."""
    environment = video_environment(
        stack.resources,
        inference_url=stack.proxy.url,
        model_id=FULL_RANGE_FACES,
        VIDEO_SEGMENT_SECONDS="2",
        INFERENCE_MAX_ATTEMPTS="1",
        CIRCUIT_PROBE_SECONDS="1",
        OUTAGE_MAX_DEFER_SECONDS="1",
    )
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # a fresh container: the video function reads the key itself
    for name in (
        "video_handler",
        "video_dependencies",
        "video_settings",
        "ingest_settings",
        "s3_events",
        "sqs_retries",
    ):
        sys.modules.pop(name, None)
    handler = importlib.import_module("video_handler").lambda_handler
    key = stack.upload("proof/clip.mp4", sample_video())
    resources = stack.resources
    settings = RunnerSettings(
        resources.video_queue_url,
        resources.video_queue_arn,
        wait_seconds=10,
        timeout_seconds=900,
        batch_size=1,
        logical_id="VideoFunction",
    )
    runner = QueueRunner(stack.sqs, settings, [handler])
    assert _poll_once(runner, handler).deleted  # the plan: two tasks sent
    stack.proxy.faults.append(Fault(status=503))
    assert _poll_once(runner, handler).deleted  # a segment deferred (a delayed copy), not failed
    deadline = time.monotonic() + 60
    while stack.result(key)["status"] != "succeeded":  # type: ignore[index]
        assert time.monotonic() < deadline, stack.result(key)
        _poll_once(runner, handler)
    record = stack.result(key)
    assert record is not None
    return {"video": record["result_id"]}


def _api(monkeypatch: pytest.MonkeyPatch, stack: IngestStack) -> Any:
    for name, value in api_environment(stack.resources).items():
        monkeypatch.setenv(name, value)
    import api_dependencies

    api_dependencies.reset()
    sys.modules.pop("api_handler", None)
    handler = importlib.import_module("api_handler")

    def get(path: str, query: dict[str, Any] | None = None) -> tuple[int, Any]:
        event = http_api_event("GET", quote(path), urlencode(query or {}), {"user-agent": "pytest"}, b"")
        status, _, body = http_response(handler.lambda_handler(event, LambdaContext(function_name="api")))
        return status, json.loads(body) if body else None

    return get


def _drive_api(get: Any, stack: IngestStack, ids: dict[str, str]) -> None:
    status, page = get("/results", {"limit": 1})
    assert status == 200
    assert page["next_cursor"], page
    assert get("/results", {"limit": 1, "cursor": page["next_cursor"]})[0] == 200
    assert get("/results", {"status": "failed"})[0] == 200
    status, item = get(f"/results/{ids['good']}")
    assert status == 200
    assert item["predictions"], item  # read back from S3 (spilled)
    assert get(f"/results/{ids['good']}/annotated")[0] in (200, 302, 307)
    assert get("/results/by-source", {"bucket": stack.resources.bucket, "key": ids["good_key"]})[0] == 200
    assert get(f"/results/{ids['video']}/frames", {"limit": 5})[0] == 200
    assert get(f"/results/{ids['video']}/annotated")[0] in (200, 302, 307)


def _drive_builtin(ingest_stack: StackFactory, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """InferenceBackend=builtin: the ingest function signs its call to the InferenceFunction's Function URL
    (recorded where it is signed). The URL is the offline stack's bridge, which checks the signature; the
    InferenceFunction's handler runs in this process."""
    for name, value in {"MODEL_ID": BUILTIN_MODEL, "MODEL_DIR": str(model_dir())}.items():
        monkeypatch.setenv(name, value)
    for module in ("inference_handler", "inference_dependencies"):
        sys.modules.pop(module, None)
    inference = importlib.import_module("inference_handler")
    credentials = ReadOnlyCredentials(*(DUMMY_CREDENTIALS[name] for name in CREDENTIAL_VARIABLES))
    bridge = FunctionUrlBridge(
        "127.0.0.1", free_port(), inference.lambda_handler, signer=ExpectedSigner(credentials, "us-east-1")
    )
    bridge.start()
    try:
        stack = ingest_stack(
            model_id=BUILTIN_MODEL,
            inference_backend="builtin",
            inference_url=f"http://127.0.0.1:{bridge.port}/",
            **{name: DUMMY_CREDENTIALS[name] for name in CREDENTIAL_VARIABLES},
        )
        key = stack.upload("proof/builtin.jpg", samples.sample_jpeg("astronaut"))
        assert stack.invoke(stack.receive(1)) == set()
        record = stack.result(key)
        assert record is not None
        assert (record["status"], record["detections"]) == ("succeeded", 1), record
    finally:
        bridge.stop()


def test_every_aws_call_the_handlers_make_is_allowed_by_the_role_sam_deploys(
    ingest_stack: StackFactory,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
    aws_call_log: Path,
) -> None:
    stack = ingest_stack(
        model_id=FULL_RANGE_FACES,
        INFERENCE_MAX_ATTEMPTS="1",
        CIRCUIT_PROBE_SECONDS="1",
        OUTAGE_MAX_DEFER_SECONDS="1",
    )
    # A tiny item budget: every result with predictions keeps them in S3 (predictions/), as big ones do.
    ingest_dependencies = sys.modules["ingest_dependencies"]
    monkeypatch.setattr(
        ingest_dependencies, "DynamoDBResultsStore", partial(DynamoDBResultsStore, item_budget=600)
    )
    ids = _drive_ingest(stack)
    _poll_like_the_event_source_mapping(stack)
    ids |= _drive_video(monkeypatch, stack)
    _drive_api(_api(monkeypatch, stack), stack, ids)
    _drive_builtin(ingest_stack, monkeypatch)

    proof = Proof()
    calls = distinct_calls(recorder.read_log(aws_call_log), proof.functions)
    refused, unknown = denied(proof, calls)

    assert not unknown, "\n".join(unknown)
    assert not refused, "\n".join(verdict.explain() for verdict in refused)
    exercised = {(call.function, verdict.need.action) for call in calls for verdict in proof.evaluate(call)}
    assert exercised >= EXERCISED, f"not exercised: {EXERCISED - exercised}"
