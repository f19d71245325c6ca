"""Least privilege as `sam deploy` creates it: the roles aws-sam-translator generates (inline statements and
the AWS managed policies it attaches, read from moto's copy of their documents) and the bucket policy,
judged for concrete requests. No role may touch a queue but its own function's (the ingest queue, the video
queue); nobody but the ingest and video functions (and an optional admin) may write or delete the outputs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.iam.aws_managed_policies import aws_managed_policies_data

from s3kp.local.cfn_template import Resolver, function_environment
from tests.iam_proof.proof import policy_documents
from tests.infra.iac_tools import resources_of_type
from tests.infra.policy_evaluation import Decision, Request, as_list, matches_action, resource_policy_decision

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "s3kp-123456789012-5f0c6a70"
INGEST_ROLE = f"arn:aws:iam::{ACCOUNT}:role/s3-keypoints-IngestFunctionRole-AbCdEf123456"
VIDEO_ROLE = f"arn:aws:iam::{ACCOUNT}:role/s3-keypoints-VideoFunctionRole-GhIjKl789012"
WRITERS = {"the ingest function": INGEST_ROLE, "the video function": VIDEO_ROLE}
# Each role that may use SQS, and the one queue it may use: its own event source mapping's.
OWN_QUEUE = {"IngestFunctionRole": "IngestQueue", "VideoFunctionRole": "VideoQueue"}
OTHERS = {
    "an uploader": f"arn:aws:iam::{ACCOUNT}:role/uploader",
    "the API function": f"arn:aws:iam::{ACCOUNT}:role/s3-keypoints-ApiFunctionRole-ZyXwVu654321",
    "the account root": f"arn:aws:iam::{ACCOUNT}:root",
    "an admin's SSO role": f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Ops",
    "an AWS service (no principal ARN)": None,
}
# Every SQS action a policy could grant (the Service Authorization Reference's list).
SQS_ACTIONS = [
    f"sqs:{name}"
    for name in (
        "AddPermission",
        "CancelMessageMoveTask",
        "ChangeMessageVisibility",
        "CreateQueue",
        "DeleteMessage",
        "DeleteQueue",
        "GetQueueAttributes",
        "GetQueueUrl",
        "ListDeadLetterSourceQueues",
        "ListMessageMoveTasks",
        "ListQueueTags",
        "ListQueues",
        "PurgeQueue",
        "ReceiveMessage",
        "RemovePermission",
        "SendMessage",
        "SetQueueAttributes",
        "StartMessageMoveTask",
        "TagQueue",
        "UntagQueue",
    )
]
# What Lambda's event source mapping needs on the queue (with the function's role), and what the ingest
# and video functions themselves call (functions/ingest/sqs_retries.py; the video function's fan-out).
POLLING = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
RETRY_TIMING = ["sqs:ChangeMessageVisibility", "sqs:SendMessage"]
WRITES = [
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectTagging",
    "s3:PutObjectAcl",
]


def _queue_arn(logical_id: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{logical_id}"


def _references(expanded: dict[str, Any]) -> dict[str, str]:
    """A made-up concrete value for every resource's Ref and attributes (queues with a real SQS ARN)."""
    references: dict[str, str] = {}
    for logical_id, resource in expanded["Resources"].items():
        arn = (
            _queue_arn(logical_id)
            if resource["Type"] == "AWS::SQS::Queue"
            else f"arn:aws:{resource['Type'].split('::')[1].lower()}:{REGION}:{ACCOUNT}:{logical_id}"
        )
        for attribute in ("Arn", "Name", "QueueName"):
            references[f"{logical_id}.{attribute}"] = arn if attribute == "Arn" else logical_id
        references[logical_id] = logical_id
    return references


def _managed_policy(arn: str) -> dict[str, Any]:
    """An AWS managed policy's document, from moto's copy of them (unknown: fail, nothing to judge)."""
    documents = json.loads(aws_managed_policies_data)
    name = arn.rsplit("/", 1)[1]
    assert arn.startswith("arn:aws:iam::aws:policy/"), f"{arn} is not an AWS managed policy"
    assert name in documents, f"{arn}: no copy of this managed policy to judge what it grants"
    return dict(documents[name]["Document"])


def _role_policies(expanded: dict[str, Any], role: str, backend: str = "roboflow") -> list[dict[str, Any]]:
    """Every policy document the role carries as deployed with InferenceBackend `backend`: its inline
    policies (resolved; an `Fn::If` on the backend may drop one) and managed ones."""
    parameters = {"ModelId": "faces/2", "InferenceBackend": backend}
    resolver = Resolver(expanded, references=_references(expanded), parameters=parameters)
    properties = expanded["Resources"][role]["Properties"]
    inline = policy_documents(resolver, properties.get("Policies", []))
    managed = [_managed_policy(arn) for arn in resolver.resolve(properties.get("ManagedPolicyArns", []))]
    return inline + managed


def _permitted(policies: list[dict[str, Any]], action: str, resource: str) -> bool:
    results = [IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource) for policy in policies]
    return PermissionResult.PERMITTED in results and PermissionResult.DENIED not in results


def _dependencies(expanded: dict[str, Any], resource: dict[str, Any]) -> set[str]:
    """Every resource CloudFormation creates before `resource`: DependsOn, Ref and GetAtt, transitively."""
    found: set[str] = set()

    def named(value: Any) -> set[str]:
        if isinstance(value, list):
            return set().union(*(named(item) for item in value))
        if not isinstance(value, dict):
            return set()
        direct = set()
        if isinstance(value.get("Ref"), str):
            direct.add(value["Ref"])
        if "Fn::GetAtt" in value:
            direct.add(value["Fn::GetAtt"][0])
        if isinstance(value.get("Fn::Sub"), str):
            direct |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", value["Fn::Sub"])}
        return direct.union(*(named(item) for item in value.values()))

    pending = set(as_list(resource.get("DependsOn", []))) | named(resource.get("Properties", {}))
    while pending:
        name = pending.pop()
        if name in found or name not in expanded["Resources"]:
            continue  # a parameter or pseudo parameter
        found.add(name)
        other = expanded["Resources"][name]
        pending |= set(as_list(other.get("DependsOn", []))) | named(other.get("Properties", {}))
    return found


def _roles(expanded: dict[str, Any]) -> list[str]:
    roles = list(resources_of_type(expanded, "AWS::IAM::Role"))
    assert {"IngestFunctionRole", "ApiFunctionRole", "VideoFunctionRole"} <= set(roles)
    return roles


# ------------------------------------------------------------------------------------------ SQS


def test_no_role_gets_a_managed_policy_that_grants_sqs(expanded: dict[str, Any]) -> None:
    """SAM attaches AWSLambdaSQSQueueExecutionRole (receive and delete on every queue of the account) to
    a function with an `Events: Type: SQS`: the template must not get it, nor any other managed SQS grant."""
    for role in _roles(expanded):
        for arn in expanded["Resources"][role]["Properties"].get("ManagedPolicyArns", []):
            statements = as_list(_managed_policy(arn)["Statement"])
            granting = [
                s
                for s in statements
                if s["Effect"] == "Allow" and any(matches_action(s, a) for a in SQS_ACTIONS)
            ]
            assert not granting, f"{role}: {arn} grants SQS: {granting}"


def test_every_statement_granting_sqs_names_only_the_roles_own_queue(expanded: dict[str, Any]) -> None:
    for role in _roles(expanded):
        for policy in _role_policies(expanded, role):
            for statement in as_list(policy["Statement"]):
                if statement["Effect"] == "Allow" and any(matches_action(statement, a) for a in SQS_ACTIONS):
                    assert role in OWN_QUEUE, f"{role}: {statement}"
                    assert as_list(statement.get("Resource")) == [_queue_arn(OWN_QUEUE[role])], statement


@pytest.mark.parametrize("role", sorted(OWN_QUEUE))
def test_a_functions_role_polls_and_times_retries_on_its_own_queue_and_on_no_other(
    expanded: dict[str, Any], role: str
) -> None:
    """Judged over every policy the role carries: the event source mapping's receive/delete/attributes
    and the function's visibility changes and re-sends (the video function's segment tasks too) work on its
    own queue, nothing SQS anywhere else (the dead-letter queues, the other function's queue, another
    application's queue)."""
    policies = _role_policies(expanded, role)
    own = OWN_QUEUE[role]
    elsewhere = [
        _queue_arn(name)
        for name in ("IngestQueue", "VideoQueue", "DeadLetterQueue", "VideoDeadLetterQueue")
        if name != own
    ] + [f"arn:aws:sqs:{REGION}:{ACCOUNT}:another-applications-queue"]

    for action in POLLING + RETRY_TIMING:
        assert _permitted(policies, action, _queue_arn(own)), action
    for action in SQS_ACTIONS:
        for queue in elsewhere:
            assert not _permitted(policies, action, queue), f"{action} on {queue}"


def test_no_other_role_has_any_sqs_permission(expanded: dict[str, Any]) -> None:
    for role in _roles(expanded):
        if role in OWN_QUEUE:
            continue
        policies = _role_policies(expanded, role)
        for action in SQS_ACTIONS:
            for queue in OWN_QUEUE.values():
                assert not _permitted(policies, action, _queue_arn(queue)), f"{role}: {action}"


@pytest.mark.parametrize(
    ("function", "queue", "batch_size", "window"),
    [
        ("IngestFunction", "IngestQueue", {"Ref": "BatchSize"}, {"Ref": "MaxBatchingWindowSeconds"}),
        ("VideoFunction", "VideoQueue", 1, 0),  # a segment is minutes of work: one a batch
    ],
)
def test_each_event_source_mapping_feeds_its_function_from_its_queue_after_its_role_exists(
    expanded: dict[str, Any], function: str, queue: str, batch_size: Any, window: Any
) -> None:
    """The trigger SAM's `Events: SQS` would have generated, with the template's throughput parameters;
    created after the role (Lambda checks the role's queue permissions when the mapping is created)."""
    mappings = resources_of_type(expanded, "AWS::Lambda::EventSourceMapping").values()
    (mapping,) = [m for m in mappings if m["Properties"]["FunctionName"] == {"Ref": function}]
    properties = mapping["Properties"]

    assert properties["EventSourceArn"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert properties["BatchSize"] == batch_size
    assert properties["MaximumBatchingWindowInSeconds"] == window
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "MaxConcurrency"}}
    assert f"{function}Role" in _dependencies(expanded, mapping)


# ------------------------------------------------------------------------------------------ bucket policy


def _bucket_policy(expanded: dict[str, Any], **parameters: str) -> dict[str, Any]:
    resolver = Resolver(
        expanded,
        references={
            "UploadBucket": BUCKET,
            "UploadBucket.Arn": f"arn:aws:s3:::{BUCKET}",
            "IngestFunctionRole.Arn": INGEST_ROLE,
            "VideoFunctionRole.Arn": VIDEO_ROLE,
        },
        parameters={"ModelId": "my-pose/1", **parameters},
    )
    policy = expanded["Resources"]["UploadBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "UploadBucket"}
    return dict(resolver.resolve(policy["PolicyDocument"]))


def _decision(
    policy: dict[str, Any], principal: str | None, action: str, key: str, *, https: bool = True
) -> Decision:
    context = {"aws:SecureTransport": "true" if https else "false"}
    if principal is not None:
        context["aws:PrincipalArn"] = principal
    return resource_policy_decision(policy, Request(action, f"arn:aws:s3:::{BUCKET}/{key}", context))


@pytest.fixture(scope="module")
def output_keys(template: dict[str, Any]) -> list[str]:
    """A key under each prefix the ingest and video functions write (their environments', as deployed)."""
    environment = function_environment(template, "IngestFunction")
    assert environment["OUTPUT_BUCKET"] == {"Ref": "UploadBucket"}
    video = function_environment(template, "VideoFunction")
    assert {name: video[name] for name in ("OUTPUT_BUCKET", "OUTPUT_PREFIX", "PREDICTIONS_PREFIX")} == {
        name: environment[name] for name in ("OUTPUT_BUCKET", "OUTPUT_PREFIX", "PREDICTIONS_PREFIX")
    }
    return [
        f"{environment['OUTPUT_PREFIX']}cat.jpg.e1.jpg",
        f"{environment['PREDICTIONS_PREFIX']}r1.e1.json",
        f"{environment['OUTPUT_PREFIX']}clip.mp4.r1.mp4",
        f"{environment['PREDICTIONS_PREFIX']}video-work/r1/run/piece-00000.mp4",
    ]


@pytest.mark.parametrize("who", list(OTHERS))
def test_nobody_but_the_ingest_and_video_functions_writes_or_deletes_the_outputs(
    expanded: dict[str, Any], output_keys: list[str], who: str
) -> None:
    policy = _bucket_policy(expanded)

    for key in output_keys:
        for action in WRITES:
            assert _decision(policy, OTHERS[who], action, key) == Decision.DENY, f"{who}: {action} {key}"
            for writer, role in WRITERS.items():
                assert _decision(policy, role, action, key) != Decision.DENY, f"{writer}: {action} {key}"


def test_uploads_and_reads_stay_with_identity_policies_and_plain_http_is_refused_to_all(
    expanded: dict[str, Any], output_keys: list[str]
) -> None:
    policy = _bucket_policy(expanded)
    uploader = OTHERS["an uploader"]

    assert _decision(policy, uploader, "s3:PutObject", "incoming/cat.jpg") == Decision.NEUTRAL
    assert _decision(policy, uploader, "s3:GetObject", output_keys[0]) == Decision.NEUTRAL
    for principal in (uploader, INGEST_ROLE, VIDEO_ROLE):
        assert _decision(policy, principal, "s3:PutObject", output_keys[0], https=False) == Decision.DENY


def test_the_admin_parameter_adds_one_principal_and_nothing_when_empty(
    expanded: dict[str, Any], output_keys: list[str]
) -> None:
    admin = OTHERS["an admin's SSO role"]
    with_admin = _bucket_policy(expanded, OutputsAdminPrincipalArn=admin)
    (deny,) = [
        s for s in _bucket_policy(expanded)["Statement"] if s.get("Sid") == "OnlyTheFunctionsWriteOutputs"
    ]

    for key in output_keys:
        for action in WRITES:
            assert _decision(with_admin, admin, action, key) != Decision.DENY
            assert _decision(with_admin, INGEST_ROLE, action, key) != Decision.DENY
            assert _decision(with_admin, VIDEO_ROLE, action, key) != Decision.DENY
            assert _decision(with_admin, OTHERS["an uploader"], action, key) == Decision.DENY
    # Empty: the two roles alone (no empty string that some future operator could read as a match).
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": [INGEST_ROLE, VIDEO_ROLE]}}


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        (f"arn:aws:iam::{ACCOUNT}:role/ops-admin", True),
        (OTHERS["an admin's SSO role"], True),
        (f"arn:aws:iam::{ACCOUNT}:user/alice", True),
        (f"arn:aws:iam::{ACCOUNT}:root", True),
        ("*", False),  # would exempt everyone
        (f"arn:aws:iam::{ACCOUNT}:role/*", False),
        (f"arn:aws:iam::{ACCOUNT}:*", False),
        ("ops-admin", False),
    ],
)
def test_the_admin_parameter_takes_one_exact_principal_arn(
    template: dict[str, Any], value: str, accepted: bool
) -> None:
    pattern = template["Parameters"]["OutputsAdminPrincipalArn"]["AllowedPattern"]

    assert (re.fullmatch(pattern, value) is not None) == accepted


# ------------------------------------------------------------------------------------------ builtin backend


def _function_arn(logical_id: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:{logical_id}"


@pytest.mark.parametrize("role", ["IngestFunctionRole", "VideoFunctionRole"])
def test_the_ingest_and_video_roles_may_call_the_inference_functions_url_and_nothing_else_of_lambda(
    expanded: dict[str, Any], role: str
) -> None:
    """InferenceBackend builtin: InvokeFunctionUrl on the InferenceFunction only (not the API function, not
    another function, not a plain Invoke), and only through a URL that demands IAM auth."""
    builtin = _role_policies(expanded, role, "builtin")
    inference = _function_arn("InferenceFunction")

    assert _permitted(builtin, "lambda:InvokeFunctionUrl", inference)
    others = ("ApiFunction", "IngestFunction", "VideoFunction")
    for other in (*(_function_arn(name) for name in others), f"{inference}-other"):
        assert not _permitted(builtin, "lambda:InvokeFunctionUrl", other), other
    assert not _permitted(builtin, "lambda:InvokeFunction", inference)
    (statement,) = [
        statement
        for policy in builtin
        for statement in as_list(policy["Statement"])
        if matches_action(statement, "lambda:InvokeFunctionUrl")
    ]
    assert statement["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}


def test_with_the_roboflow_backend_no_role_may_call_the_inference_function(expanded: dict[str, Any]) -> None:
    for role in _roles(expanded):
        policies = _role_policies(expanded, role, "roboflow")
        assert not _permitted(policies, "lambda:InvokeFunctionUrl", _function_arn("InferenceFunction")), role


@pytest.mark.parametrize("role", ["IngestFunctionRole", "VideoFunctionRole"])
def test_the_builtin_ingest_and_video_roles_read_no_api_key_secret(
    expanded: dict[str, Any], role: str
) -> None:
    secret = _references(expanded)["RoboflowApiKeySecret"]  # what the policy names (the secret's Ref)
    read = "secretsmanager:GetSecretValue"
    assert _permitted(_role_policies(expanded, role, "roboflow"), read, secret)
    assert not _permitted(_role_policies(expanded, role, "builtin"), read, secret)


def test_the_inference_function_may_write_its_logs_and_traces_and_nothing_else(
    expanded: dict[str, Any],
) -> None:
    """It reads nothing and calls no AWS service: the image arrives in the request."""
    role = expanded["Resources"]["InferenceFunctionRole"]
    assert role["Condition"] == "UseBuiltinInference"
    assert role["Properties"].get("Policies", []) == []
    assert sorted(arn.rsplit("/", 1)[1] for arn in role["Properties"]["ManagedPolicyArns"]) == [
        "AWSLambdaBasicExecutionRole",
        "AWSXrayWriteOnlyAccess",
    ]
