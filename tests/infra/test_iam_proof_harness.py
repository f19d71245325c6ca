"""The IAM proof's own parts (tests/iam_proof): the call -> IAM action mapping, the evaluation against
the roles SAM deploys, and the recorder in this process and in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from s3kp.local import runner
from tests.iam_proof import recorder
from tests.iam_proof.actions import Call, UnknownCall, required_permissions
from tests.iam_proof.proof import Proof, recorder_pollers, recorder_settings

REGION = "us-east-1"
BUCKET = "uploads"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/s3kp-ingest-5f0c"
MOTO_QUEUE_URL = "http://127.0.0.1:45123/123456789012/s3kp-local-ingest"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:stack/roboflow-api-key-AbCdEf"
CURSOR_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:stack/cursor-Zyxwvu"
INGEST_ENVIRONMENT = {
    "RESULTS_TABLE": "results",
    "IDEMPOTENCY_TABLE": "idempotency",
    "OUTPUT_BUCKET": BUCKET,
    "ROBOFLOW_API_KEY_SECRET_ARN": SECRET,
    "RESULTS_EVENT_BUS": "s3kp-results",
}
API_ENVIRONMENT = {"RESULTS_TABLE": "results", "CURSOR_SECRET_ARN": CURSOR_SECRET}


def _call(service: str, operation: str, function: str = "IngestFunction", **fields: Any) -> Call:
    params = fields.pop("params", {})
    environment = fields.pop(
        "environment", INGEST_ENVIRONMENT if function == "IngestFunction" else API_ENVIRONMENT
    )
    return Call(function, service, operation, params, environment=environment, **fields)


def _needs(call: Call) -> list[tuple[str, str]]:
    return [(need.action, need.arn) for need in required_permissions(call)]


# ------------------------------------------------------------------------------------------ mapping


@pytest.mark.parametrize(
    ("operation", "version", "action"),
    [
        ("GetObject", None, "s3:GetObject"),
        ("HeadObject", None, "s3:GetObject"),
        ("GetObject", "v1", "s3:GetObjectVersion"),
        ("HeadObject", "v1", "s3:GetObjectVersion"),
        ("PutObject", None, "s3:PutObject"),
        ("DeleteObject", None, "s3:DeleteObject"),
        ("DeleteObject", "v1", "s3:DeleteObjectVersion"),
    ],
)
def test_object_calls_need_their_action_on_the_object(
    operation: str, version: str | None, action: str
) -> None:
    params = {"Bucket": BUCKET, "Key": "incoming/a b.jpg"} | ({"VersionId": version} if version else {})

    assert _needs(_call("s3", operation, params=params)) == [
        (action, "arn:aws:s3:::uploads/incoming/a b.jpg")
    ]


def test_a_presigned_url_needs_what_the_call_itself_needs() -> None:
    call = _call(
        "s3", "GetObject", "ApiFunction", params={"Bucket": BUCKET, "Key": "annotated/x.jpg"}, presigned=True
    )

    assert _needs(call) == [("s3:GetObject", "arn:aws:s3:::uploads/annotated/x.jpg")]


def test_listing_needs_list_bucket_on_the_bucket() -> None:
    call = _call("s3", "ListObjectsV2", params={"Bucket": BUCKET, "Prefix": "incoming/"})

    assert _needs(call) == [("s3:ListBucket", "arn:aws:s3:::uploads")]


@pytest.mark.parametrize("operation", ["GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan"])
def test_dynamodb_item_calls_need_their_action_on_the_table(operation: str) -> None:
    call = _call("dynamodb", operation, params={"TableName": "results"})

    assert _needs(call) == [
        (f"dynamodb:{operation}", "arn:aws:dynamodb:us-east-1:123456789012:table/results")
    ]


def test_a_query_on_an_index_needs_query_on_the_index() -> None:
    call = _call("dynamodb", "Query", "ApiFunction", params={"TableName": "results", "IndexName": "by_time"})

    assert _needs(call) == [
        ("dynamodb:Query", "arn:aws:dynamodb:us-east-1:123456789012:table/results/index/by_time")
    ]


def test_batch_and_transaction_calls_need_an_action_per_table() -> None:
    batch = _call("dynamodb", "BatchWriteItem", tables=("a", "b"))
    transaction = _call("dynamodb", "TransactWriteItems", transact=(("Put", "a"), ("ConditionCheck", "b")))

    table = "arn:aws:dynamodb:us-east-1:123456789012:table/"
    assert _needs(batch) == [
        ("dynamodb:BatchWriteItem", table + "a"),
        ("dynamodb:BatchWriteItem", table + "b"),
    ]
    assert _needs(transaction) == [
        ("dynamodb:PutItem", table + "a"),
        ("dynamodb:ConditionCheckItem", table + "b"),
    ]


def test_secrets_are_read_by_their_arn() -> None:
    call = _call("secretsmanager", "GetSecretValue", params={"SecretId": SECRET})

    assert _needs(call) == [("secretsmanager:GetSecretValue", SECRET)]


@pytest.mark.parametrize("operation", ["ChangeMessageVisibility", "ChangeMessageVisibilityBatch"])
@pytest.mark.parametrize(
    ("url", "arn"),
    [
        (QUEUE_URL, "arn:aws:sqs:us-east-1:123456789012:s3kp-ingest-5f0c"),
        (MOTO_QUEUE_URL, "arn:aws:sqs:us-east-1:123456789012:s3kp-local-ingest"),
    ],
)
def test_changing_visibility_needs_change_message_visibility_on_the_queue(
    operation: str, url: str, arn: str
) -> None:
    assert _needs(_call("sqs", operation, params={"QueueUrl": url})) == [("sqs:ChangeMessageVisibility", arn)]


def test_looking_up_a_queue_by_name_needs_get_queue_url_on_it() -> None:
    call = _call("sqs", "GetQueueUrl", params={"QueueName": "s3kp-ingest-5f0c"})

    assert _needs(call) == [("sqs:GetQueueUrl", "arn:aws:sqs:us-east-1:123456789012:s3kp-ingest-5f0c")]


def test_put_events_needs_put_events_on_each_bus_once() -> None:
    call = _call("events", "PutEvents", buses=("s3kp-results", "s3kp-results", "default"))

    assert _needs(call) == [
        ("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/s3kp-results"),
        ("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/default"),
    ]


def test_an_unmapped_call_is_an_error_not_a_pass() -> None:
    with pytest.raises(UnknownCall, match="s3 CopyObject: no IAM mapping"):
        required_permissions(_call("s3", "CopyObject", params={"Bucket": BUCKET, "Key": "k"}))


# ------------------------------------------------------------------------------------------ evaluation


@pytest.fixture(scope="module")
def proof() -> Proof:
    return Proof()


@pytest.mark.parametrize(
    ("call", "allowed"),
    [
        (
            _call("s3", "GetObject", params={"Bucket": BUCKET, "Key": "incoming/a.jpg", "VersionId": "v"}),
            True,
        ),
        (_call("s3", "PutObject", params={"Bucket": BUCKET, "Key": "annotated/a.jpg"}), True),
        # Writing under incoming/ would re-trigger the function: never granted.
        (_call("s3", "PutObject", params={"Bucket": BUCKET, "Key": "incoming/a.jpg"}), False),
        (_call("s3", "GetObject", "ApiFunction", params={"Bucket": BUCKET, "Key": "incoming/a.jpg"}), False),
        (_call("dynamodb", "PutItem", params={"TableName": "idempotency"}), True),
        (_call("dynamodb", "PutItem", "ApiFunction", params={"TableName": "results"}), False),
        (_call("dynamodb", "Scan", "ApiFunction", params={"TableName": "results"}), False),
        (_call("secretsmanager", "GetSecretValue", params={"SecretId": SECRET}), True),
        (_call("secretsmanager", "GetSecretValue", params={"SecretId": CURSOR_SECRET}), False),
        (_call("secretsmanager", "GetSecretValue", "ApiFunction", params={"SecretId": CURSOR_SECRET}), True),
        # RESULTS_EVENT_BUS names the function's bus: another bus (the default one) is not the stack's.
        (_call("events", "PutEvents", buses=(INGEST_ENVIRONMENT["RESULTS_EVENT_BUS"],)), True),
        (_call("events", "PutEvents", buses=("default",)), False),
    ],
)
def test_calls_are_judged_against_the_role_sam_deploys(proof: Proof, call: Call, allowed: bool) -> None:
    assert [verdict.allowed for verdict in proof.evaluate(call)] == [allowed]


def test_a_refused_call_names_the_statement_to_add(proof: Proof) -> None:
    call = _call("dynamodb", "Query", "ApiFunction", params={"TableName": "results", "IndexName": "by_color"})

    (verdict,) = proof.evaluate(call)

    assert not verdict.allowed
    assert verdict.logical_id == "ResultsTable"
    assert "ApiFunction's Policies" in verdict.explain()
    assert "Action: dynamodb:Query, Resource: !Sub ${ResultsTable.Arn}/index/by_color" in verdict.explain()


def test_resources_no_variable_names_are_bound_by_type_or_event_source(proof: Proof) -> None:
    """The API reads the upload bucket without a variable naming it; the ingest function's queue is the
    one its event source mapping reads."""
    presign = _call("s3", "GetObject", "ApiFunction", params={"Bucket": "any-name", "Key": "annotated/x.jpg"})
    visibility = _call("sqs", "ChangeMessageVisibility", params={"QueueUrl": MOTO_QUEUE_URL})

    assert [verdict.allowed for verdict in proof.evaluate(presign)] == [True]
    assert [verdict.logical_id for verdict in proof.evaluate(visibility)] == ["IngestQueue"]


VIDEO_QUEUE_URL = "http://127.0.0.1:45123/123456789012/s3kp-local-video"


def test_a_pollers_call_without_the_functions_environment_is_bound_to_its_event_source(proof: Proof) -> None:
    """The video function's environment names its queue (SEGMENT_QUEUE_URL); the offline stack's runner polls
    that queue for it from a process without that environment: the event source mapping's queue decides.
    In the function's own process the variable decides, and another queue is nothing of the stack's."""
    polled = Call("VideoFunction", "sqs", "ReceiveMessage", {"QueueUrl": VIDEO_QUEUE_URL}, environment={})
    fanned_out = Call(
        "VideoFunction", "sqs", "SendMessageBatch", {"QueueUrl": VIDEO_QUEUE_URL},
        environment={"SEGMENT_QUEUE_URL": VIDEO_QUEUE_URL},
    )  # fmt: skip
    elsewhere = Call(
        "VideoFunction", "sqs", "SendMessage", {"QueueUrl": MOTO_QUEUE_URL},
        environment={"SEGMENT_QUEUE_URL": VIDEO_QUEUE_URL},
    )  # fmt: skip

    assert [(v.logical_id, v.allowed) for v in proof.evaluate(polled)] == [("VideoQueue", True)]
    assert [(v.logical_id, v.allowed) for v in proof.evaluate(fanned_out)] == [("VideoQueue", True)]
    assert [(v.logical_id, v.allowed) for v in proof.evaluate(elsewhere)] == [(None, False)]


# ------------------------------------------------------------------------------------------ recorder

FUNCTION_CODE = """
import boto3

def presign(key):
    client = boto3.client("s3", region_name="us-east-1")
    return client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": key})
"""


def _fake_function(tmp_path: Path) -> Path:
    code = tmp_path / "fake_function"
    code.mkdir()
    (code / "fake_handler.py").write_text(FUNCTION_CODE)
    return code


def test_the_recorder_tags_calls_of_function_code_and_ignores_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    code = _fake_function(tmp_path)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setattr(recorder, "_state", dict(recorder._state))
    monkeypatch.syspath_prepend(str(code))
    monkeypatch.setenv("RESULTS_TABLE", "results-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    recorder.configure(log, {"FakeFunction": code}, ("RESULTS_TABLE",))
    recorder.set_enabled(True)
    import fake_handler

    fake_handler.presign("from-the-function.jpg")
    boto3.client("s3", region_name="us-east-1").generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "from-the-test.jpg"}
    )

    (record,) = recorder.read_log(log)
    assert record["function"] == "FakeFunction"
    assert (record["service"], record["operation"], record["presigned"]) == ("s3", "GetObject", True)
    assert record["params"] == {"Bucket": "b", "Key": "from-the-function.jpg"}
    assert record["environment"] == {"RESULTS_TABLE": "results-1"}


POLLER_CODE = """
def poll(client):
    return client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "polled"})
"""


def test_a_pollers_calls_are_recorded_as_the_function_it_polls_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue runner receives and deletes as Lambda's event source mapping does, with the function's
    role: its calls are the function's, whoever created its client; the same client elsewhere is not."""
    import boto3

    poller = tmp_path / "fake_poller.py"
    poller.write_text(POLLER_CODE)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setattr(recorder, "_state", dict(recorder._state))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    recorder.configure_from_environment(
        {
            recorder.LOG_VARIABLE: str(log),
            recorder.FUNCTIONS_VARIABLE: f"PolledFunction={_fake_function(tmp_path)}",
            recorder.POLLERS_VARIABLE: f"PolledFunction={poller}",
        }
    )
    recorder.set_enabled(True)
    import fake_poller

    client = boto3.client("s3", region_name="us-east-1")
    fake_poller.poll(client)
    client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "not-polled"})

    (record,) = recorder.read_log(log)
    assert record["function"] == "PolledFunction"
    assert record["params"]["Key"] == "polled"


def test_one_poller_module_for_two_functions_is_told_apart_by_the_name_of_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The offline stack runs one queue runner module for the ingest and the video queues; each poller
    thread is named after the function it polls for (`runner.RunnerSettings.logical_id`)."""
    import threading

    import boto3

    poller = tmp_path / "shared_poller.py"
    poller.write_text(POLLER_CODE)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setattr(recorder, "_state", dict(recorder._state))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    recorder.configure(log, {}, (), {"IngestFunction": poller, "VideoFunction": poller})
    recorder.set_enabled(True)
    import shared_poller

    client = boto3.client("s3", region_name="us-east-1")
    thread = threading.Thread(target=shared_poller.poll, args=(client,), name="sqs-poller-VideoFunction-0")
    thread.start()
    thread.join()

    (record,) = recorder.read_log(log)
    assert record["function"] == "VideoFunction"


SHARED_CODE = """
def presign(client, key):
    return client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": key})
"""
CALLER_CODE = """
import boto3
import shared_module

def handle(key):
    return shared_module.presign(boto3.client("s3", region_name="us-east-1"), key)
"""


def test_a_module_of_another_functions_directory_is_recorded_as_the_function_that_called_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The video function's package holds the ingest function's sqs_retries and s3_events (symlinks); run
    in one process, those modules load from the ingest directory: the handler on the stack decides."""
    owner, caller = tmp_path / "owner", tmp_path / "caller"
    owner.mkdir()
    caller.mkdir()
    (owner / "shared_module.py").write_text(SHARED_CODE)
    (caller / "caller_handler.py").write_text(CALLER_CODE)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setattr(recorder, "_state", dict(recorder._state))
    monkeypatch.syspath_prepend(str(owner))
    monkeypatch.syspath_prepend(str(caller))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    recorder.configure(log, {"OwnerFunction": owner, "CallerFunction": caller}, ())
    recorder.set_enabled(True)
    import caller_handler

    caller_handler.handle("from-the-caller")

    (record,) = recorder.read_log(log)
    assert record["function"] == "CallerFunction"


def test_the_recorder_runs_in_child_processes_through_sitecustomize(tmp_path: Path) -> None:
    """The offline stack's Lambda workers are spawned processes that replace their environment at once."""
    code = _fake_function(tmp_path)
    log = tmp_path / "calls.jsonl"
    site = Path(recorder.__file__).parent / "site"
    script = (
        "import os, sys\n"
        "os.environ.clear()\n"  # as workers.py does before importing the handler
        "os.environ.update(AWS_ACCESS_KEY_ID='testing', AWS_SECRET_ACCESS_KEY='testing')\n"
        f"sys.path.insert(0, {str(code)!r})\n"
        "import fake_handler\n"
        "fake_handler.presign('in-a-worker.jpg')\n"
    )
    environment = os.environ | {
        "PYTHONPATH": str(site),
        recorder.LOG_VARIABLE: str(log),
        recorder.FUNCTIONS_VARIABLE: f"WorkerFunction={code}",
        recorder.ENVIRONMENT_VARIABLE: "",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }

    subprocess.run([sys.executable, "-c", script], env=environment, check=True, timeout=60)

    (record,) = recorder.read_log(log)
    assert record["function"] == "WorkerFunction"
    assert record["params"]["Key"] == "in-a-worker.jpg"


SIGNING_CODE = """
from botocore.credentials import Credentials
from s3kp_core.request_signing import RequestSigner

def call_the_url(url):
    return RequestSigner(Credentials("AKID", "secret"), "us-east-1").signature_headers("POST", url, {}, b"x")
"""


def test_a_signed_request_to_a_function_url_is_recorded_as_invoke_function_url(tmp_path: Path) -> None:
    """Not a botocore API call: recorded where s3kp_core.request_signing signs it, in a fresh process
    (the worker's case: the module is patched when first imported)."""
    code = tmp_path / "signing_function"
    code.mkdir()
    (code / "signing_handler.py").write_text(SIGNING_CODE)
    log = tmp_path / "calls.jsonl"
    script = (
        f"import sys; sys.path.insert(0, {str(code)!r})\n"
        "import signing_handler\n"
        "signing_handler.call_the_url('https://abc.lambda-url.us-east-1.on.aws/pose/1?confidence=0.4')\n"
    )
    environment = os.environ | {
        "PYTHONPATH": os.pathsep.join(
            [str(Path(recorder.__file__).parent / "site"), os.environ.get("PYTHONPATH", "")]
        ),
        recorder.LOG_VARIABLE: str(log),
        recorder.FUNCTIONS_VARIABLE: f"IngestFunction={code}",
        recorder.ENVIRONMENT_VARIABLE: "INFERENCE_AUTH",
        "INFERENCE_AUTH": "aws_iam",
    }

    subprocess.run([sys.executable, "-c", script], env=environment, check=True, timeout=60)

    (record,) = recorder.read_log(log)
    assert (record["function"], record["service"], record["operation"]) == (
        "IngestFunction",
        "lambda",
        "InvokeFunctionUrl",
    )
    assert record["params"] == {"FunctionUrl": "https://abc.lambda-url.us-east-1.on.aws/"}
    assert record["environment"] == {"INFERENCE_AUTH": "aws_iam"}


def test_invoke_function_url_needs_its_action_on_the_function_the_templates_url_serves() -> None:
    call = _call(
        "lambda",
        "InvokeFunctionUrl",
        params={"FunctionUrl": "https://abc.lambda-url.us-east-1.on.aws/"},
        environment={**INGEST_ENVIRONMENT, "INFERENCE_AUTH": "aws_iam"},
    )
    proof = Proof()

    ((need, allowed),) = [(verdict.need, verdict.allowed) for verdict in proof.evaluate(call)]
    assert need.action == "lambda:InvokeFunctionUrl"
    assert proof.logical_id(call, need) == "InferenceFunction"
    assert allowed
    # The roboflow backend's role has no such statement.
    with_the_api_key = _call("lambda", "InvokeFunctionUrl", params=dict(call.params))
    assert [verdict.allowed for verdict in proof.evaluate(with_the_api_key)] == [False]


def test_the_recorder_knows_each_functions_code_and_resource_variables() -> None:
    functions, variables = recorder_settings()

    assert set(functions) == {"IngestFunction", "ApiFunction", "InferenceFunction", "VideoFunction"}
    assert all(
        (directory / "__init__.py").exists() or any(directory.glob("*_handler.py"))
        for directory in functions.values()
    )
    assert {"RESULTS_TABLE", "IDEMPOTENCY_TABLE", "ROBOFLOW_API_KEY_SECRET_ARN", "CURSOR_SECRET_ARN"} <= set(
        variables
    )
    assert "INFERENCE_AUTH" in variables  # which backend's role statements apply to a call
    # The offline stack's stand-in for the ingest and video functions' event source mappings.
    assert recorder_pollers() == {
        "IngestFunction": Path(runner.__file__).resolve(),
        "VideoFunction": Path(runner.__file__).resolve(),
    }
