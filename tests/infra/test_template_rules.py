"""Rules template.yaml must keep, read from the template itself (no AWS, no tools)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import api_settings
import inference_settings
import ingest_settings
import pytest
import video_settings
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from s3kp_core import results_schema

from s3kp.local.cfn_template import Resolver, function_environment, parameter_defaults, sqs_event_sources
from tests.infra.iac_tools import resources_of_type

# IAM statement resources that AWS only accepts as "*" (none are used today; listed here when needed).
WILDCARD_RESOURCE_ACTIONS: frozenset[str] = frozenset()


def _properties(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return dict(template["Resources"][logical_id]["Properties"])


def _ingest_sqs_event(template: dict[str, Any]) -> dict[str, Any]:
    (event,) = sqs_event_sources(template, "IngestFunction")
    return event


def _inline_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, statement)
        for name, function in resources_of_type(template, "AWS::Serverless::Function").items()
        for policy in function["Properties"].get("Policies", [])
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
    ]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# ------------------------------------------------------------------------------------------ IAM


def _stack_resource_of(resource: Any) -> tuple[str, str]:
    """(logical id, path after its ARN) of `!GetAtt X.Arn` or `!Sub ${X.Arn}/path`."""
    if "Fn::GetAtt" in resource:
        logical_id, attribute = resource["Fn::GetAtt"]
        assert attribute == "Arn", resource
        return logical_id, ""
    head, _, path = resource["Fn::Sub"].partition("/")
    assert head.startswith("${"), resource
    assert head.endswith(".Arn}"), resource
    return head[2:-5], path


def test_function_statements_name_exact_resources_and_actions(template: dict[str, Any]) -> None:
    statements = _inline_statements(template)
    assert statements, "expected inline statements scoped to the stack's resources"
    for function, statement in statements:
        assert statement["Effect"] == "Allow"
        actions = _as_list(statement["Action"])
        assert all("*" not in action for action in actions), f"{function}: wildcard action in {actions}"
        for resource in _as_list(statement["Resource"]):
            assert resource != "*" or set(actions) <= WILDCARD_RESOURCE_ACTIONS, f"{function}: Resource '*'"
            logical_id, path = _stack_resource_of(resource)
            assert logical_id in template["Resources"], (
                f"{function}: {resource} is not a resource of the stack"
            )
            if actions == ["s3:ListBucket"]:
                # The one bucket-level grant: it turns "missing key" into 404 instead of 403.
                assert (logical_id, path) == ("UploadBucket", ""), f"{function}: {resource}"
            elif any(action.startswith("s3:") for action in actions):
                # Object ARNs are scoped to one prefix of the upload bucket, never the whole bucket.
                assert logical_id == "UploadBucket", f"{function}: {resource}"
                assert path.endswith("/*"), f"{function}: {resource}"
                assert path.count("*") == 1, f"{function}: {resource}"
            elif any(action.startswith("dynamodb:") for action in actions):
                # A table, or one named index of it (never index/*).
                table = template["Resources"][logical_id]
                assert table["Type"] == "AWS::DynamoDB::Table", f"{function}: {resource}"
                indexes = {i["IndexName"] for i in table["Properties"].get("GlobalSecondaryIndexes", [])}
                assert path == "" or path.removeprefix("index/") in indexes, f"{function}: {resource}"
            elif any(action.startswith("events:") for action in actions):
                assert (logical_id, path) == ("ResultsEventBus", ""), f"{function}: {resource}"
            elif any(action.startswith("sqs:") for action in actions):
                # Retry timing, the video fan-out and the event source mapping's polling: own queue only.
                own = {"IngestFunction": "IngestQueue", "VideoFunction": "VideoQueue"}[function]
                assert (logical_id, path) == (own, ""), f"{function}: {resource}"


def test_no_function_uses_a_dynamodb_policy_template(template: dict[str, Any]) -> None:
    """SAM's DynamoDB templates grant Scan, batch writes and every index: the roles name exact actions
    (tests/integration/test_iam_proof.py proves they are enough)."""
    for name, function in resources_of_type(template, "AWS::Serverless::Function").items():
        for policy in function["Properties"].get("Policies", []):
            assert not any(key.startswith("DynamoDB") for key in policy), f"{name}: {policy}"


def test_only_the_ingest_and_video_functions_put_events_and_only_on_the_stacks_results_bus(
    template: dict[str, Any],
) -> None:
    grants = [
        (function, statement["Resource"])
        for function, statement in _inline_statements(template)
        if "events:PutEvents" in _as_list(statement["Action"])
    ]
    bus = {"Fn::GetAtt": ["ResultsEventBus", "Arn"]}
    assert sorted(grants, key=str) == [("IngestFunction", bus), ("VideoFunction", bus)]
    video_environment = template["Resources"]["VideoFunction"]["Properties"]["Environment"]["Variables"]
    assert video_environment["RESULTS_EVENT_BUS"] == {"Ref": "ResultsEventBus"}
    bus = template["Resources"]["ResultsEventBus"]
    assert bus["Type"] == "AWS::Events::EventBus"
    assert bus["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-results"}
    ingest_environment = template["Resources"]["IngestFunction"]["Properties"]["Environment"]["Variables"]
    assert ingest_environment["RESULTS_EVENT_BUS"] == {"Ref": "ResultsEventBus"}
    outputs = template["Outputs"]
    assert outputs["ResultsEventBusName"]["Value"] == {"Ref": "ResultsEventBus"}
    assert outputs["ResultsEventBusArn"]["Value"] == {"Fn::GetAtt": ["ResultsEventBus", "Arn"]}


def _policies_under_conditions(policies: list[Any]) -> list[Any]:
    """Each policy, with both branches of an `!If` (the other one is `!Ref AWS::NoValue`)."""
    found = []
    for policy in policies:
        if isinstance(policy, dict) and set(policy) == {"Fn::If"}:
            _, when_true, when_false = policy["Fn::If"]
            found += [p for p in (when_true, when_false) if p != {"Ref": "AWS::NoValue"}]
        else:
            found.append(policy)
    return found


def test_sam_policy_templates_are_scoped_to_the_stacks_own_resources(template: dict[str, Any]) -> None:
    for name, function in resources_of_type(template, "AWS::Serverless::Function").items():
        for policy in _policies_under_conditions(function["Properties"].get("Policies", [])):
            assert isinstance(policy, dict), f"{name}: managed policy {policy!r} is not scoped"
            if "Statement" in policy:
                continue
            ((template_name, arguments),) = policy.items()
            for argument in arguments.values():
                assert set(argument) == {"Ref"}, (
                    f"{name}: {template_name} must reference a resource of the stack"
                )
                assert argument["Ref"] in template["Resources"]


def test_ingest_writes_only_under_the_output_prefixes_and_reads_only_the_input_prefix(
    template: dict[str, Any],
) -> None:
    environment = function_environment(template, "IngestFunction")
    ingest = [s for name, s in _inline_statements(template) if name == "IngestFunction"]
    writes = {
        r["Fn::Sub"]
        for s in ingest
        if "s3:PutObject" in _as_list(s["Action"])
        for r in _as_list(s["Resource"])
    }
    reads = {
        r["Fn::Sub"]
        for s in ingest
        if "s3:GetObject" in _as_list(s["Action"])
        for r in _as_list(s["Resource"])
    }

    assert writes == {
        f"${{UploadBucket.Arn}}/{environment['OUTPUT_PREFIX']}*",
        f"${{UploadBucket.Arn}}/{environment['PREDICTIONS_PREFIX']}*",
    }
    assert reads == {f"${{UploadBucket.Arn}}/{environment['INPUT_PREFIX']}*"}


def test_api_function_only_reads_the_results_table_and_its_listing_indexes(template: dict[str, Any]) -> None:
    api = [s for name, s in _inline_statements(template) if name == "ApiFunction"]
    dynamodb = [s for s in api if any(a.startswith("dynamodb:") for a in _as_list(s["Action"]))]
    granted = {
        (action, _stack_resource_of(resource))
        for statement in dynamodb
        for action in _as_list(statement["Action"])
        for resource in _as_list(statement["Resource"])
    }

    assert granted == {
        ("dynamodb:GetItem", ("ResultsTable", "")),
        ("dynamodb:Query", ("ResultsTable", f"index/{results_schema.LIST_INDEX}")),
        ("dynamodb:Query", ("ResultsTable", f"index/{results_schema.STATUS_INDEX}")),
    }


def test_resource_policies_allow_no_anonymous_principal(template: dict[str, Any]) -> None:
    documents = [
        _properties(template, name)["PolicyDocument"]
        for kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy")
        for name in resources_of_type(template, kind)
    ]
    assert len(documents) == 3  # the bucket's, the ingest queues', the video queues'
    for document in documents:
        for statement in document["Statement"]:
            if statement["Principal"] == "*":
                assert statement["Effect"] == "Deny", statement
    bucket_policy = _properties(template, "UploadBucketPolicy")["PolicyDocument"]["Statement"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in bucket_policy)


@pytest.mark.parametrize(
    ("policy", "queue"), [("IngestQueuePolicy", "IngestQueue"), ("VideoQueuePolicy", "VideoQueue")]
)
def test_queue_policy_lets_exactly_the_upload_bucket_send(
    template: dict[str, Any], policy: str, queue: str
) -> None:
    """The policy names the bucket by its computed name (no cycle); both must compute the same name."""
    resolver = Resolver(template, stack_uuid="5f0c6a70-0a6e-11ef-9f1c-0a1b2c3d4e5f")
    bucket_name = resolver.resolve(_properties(template, "UploadBucket")["BucketName"])
    statements = _properties(template, policy)["PolicyDocument"]["Statement"]
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]

    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert allow["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert resolver.resolve(allow["Condition"]["ArnEquals"]["aws:SourceArn"]) == f"arn:aws:s3:::{bucket_name}"
    assert bucket_name == bucket_name.lower()
    assert 3 <= len(bucket_name) <= 63
    assert policy in template["Resources"]["UploadBucket"]["DependsOn"]


# ------------------------------------------------------------------------------------------ flow


def test_notification_listens_on_the_input_prefix_only_never_where_outputs_go(
    template: dict[str, Any],
) -> None:
    environment = function_environment(template, "IngestFunction")
    configurations = _properties(template, "UploadBucket")["NotificationConfiguration"]["QueueConfigurations"]
    assert configurations
    for configuration in configurations:
        rules = {rule["Name"]: rule["Value"] for rule in configuration["Filter"]["S3Key"]["Rules"]}
        assert rules["prefix"] == environment["INPUT_PREFIX"]
        for output in (environment["OUTPUT_PREFIX"], environment["PREDICTIONS_PREFIX"]):
            assert not output.startswith(rules["prefix"]), f"{output} would re-trigger the function"
        video = rules["suffix"].lower() in VIDEO_SUFFIXES
        assert configuration["Queue"] == {"Fn::GetAtt": ["VideoQueue" if video else "IngestQueue", "Arn"]}
        assert configuration["Event"].startswith("s3:ObjectCreated:")


VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi"}


def test_every_video_suffix_reaches_the_video_queue_in_both_cases(template: dict[str, Any]) -> None:
    configurations = _properties(template, "UploadBucket")["NotificationConfiguration"]["QueueConfigurations"]
    to_videos = {
        rule["Value"]
        for c in configurations
        if c["Queue"] == {"Fn::GetAtt": ["VideoQueue", "Arn"]}
        for rule in c["Filter"]["S3Key"]["Rules"]
        if rule["Name"] == "suffix"
    }
    assert to_videos == VIDEO_SUFFIXES | {suffix.upper() for suffix in VIDEO_SUFFIXES}


def test_abandoned_video_work_expires_after_the_longest_a_segment_may_wait(template: dict[str, Any]) -> None:
    from s3kp_core.video_processing import WORK_DIRECTORY

    rules = _properties(template, "UploadBucket")["LifecycleConfiguration"]["Rules"]
    (rule,) = [rule for rule in rules if rule["Id"] == "expire-abandoned-video-work"]
    predictions_prefix = function_environment(template, "VideoFunction")["PREDICTIONS_PREFIX"]
    retention = template["Parameters"]["MessageRetentionSeconds"]

    assert rule["Status"] == "Enabled"
    assert rule["Prefix"] == predictions_prefix + WORK_DIRECTORY
    assert rule["ExpirationInDays"] * 86_400 > retention["MaxValue"]


def test_every_image_suffix_is_filtered_in_lower_and_upper_case(template: dict[str, Any]) -> None:
    """S3 suffix filters are case-sensitive: `.JPG` from a camera must be processed too."""
    configurations = _properties(template, "UploadBucket")["NotificationConfiguration"]["QueueConfigurations"]
    suffixes = [
        rule["Value"]
        for c in configurations
        for rule in c["Filter"]["S3Key"]["Rules"]
        if rule["Name"] == "suffix"
    ]

    assert len(suffixes) == len(set(suffixes)) == len(configurations)
    assert {".jpg", ".jpeg", ".png"} <= set(suffixes)
    assert {s.upper() for s in suffixes} <= set(suffixes)
    assert {s.lower() for s in suffixes} <= set(suffixes)


@pytest.mark.parametrize(
    ("function", "queue"), [("IngestFunction", "IngestQueue"), ("VideoFunction", "VideoQueue")]
)
def test_queue_visibility_timeout_covers_six_function_timeouts_plus_the_batching_window(
    template: dict[str, Any], function: str, queue: str
) -> None:
    """AWS's guidance for SQS event sources, so a slow batch is not redelivered while still running."""
    timeout = _properties(template, function).get("Timeout", template["Globals"]["Function"]["Timeout"])
    (event,) = sqs_event_sources(template, function)
    window = event["MaximumBatchingWindowInSeconds"]
    longest_window = template["Parameters"][window["Ref"]]["MaxValue"] if isinstance(window, dict) else window

    assert _properties(template, queue)["VisibilityTimeout"] >= 6 * timeout + longest_window


def test_ingest_reports_partial_batch_failures_and_throughput_is_parameterised(
    template: dict[str, Any],
) -> None:
    event = _ingest_sqs_event(template)

    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["EventSourceArn"] == {"Fn::GetAtt": ["IngestQueue", "Arn"]}
    assert event["BatchSize"] == {"Ref": "BatchSize"}
    assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaxConcurrency"}
    # Lambda's minimum for MaximumConcurrency is 2.
    assert template["Parameters"]["MaxConcurrency"]["MinValue"] >= 2


@pytest.mark.parametrize(
    ("function", "queue", "dead_letters", "alarm"),
    [
        ("IngestFunction", "IngestQueue", "DeadLetterQueue", "DeadLetterQueueAlarm"),
        ("VideoFunction", "VideoQueue", "VideoDeadLetterQueue", "VideoDeadLetterQueueAlarm"),
    ],
)
def test_failed_messages_go_to_the_dead_letter_queue_after_max_receive_count(
    template: dict[str, Any], function: str, queue: str, dead_letters: str, alarm: str
) -> None:
    redrive = _properties(template, queue)["RedrivePolicy"]

    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [dead_letters, "Arn"]}
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert function_environment(template, function)["MAX_RECEIVE_COUNT"] == {"Ref": "MaxReceiveCount"}
    assert _properties(template, alarm)["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": [dead_letters, "QueueName"]}}
    ]


# ------------------------------------------------------------------------------------------ data


def test_results_table_keys_and_indexes_are_the_schema_constants(template: dict[str, Any]) -> None:
    table = _properties(template, "ResultsTable")
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}

    assert table["KeySchema"] == [{"AttributeName": results_schema.PARTITION_KEY, "KeyType": "HASH"}]
    assert set(indexes) == {results_schema.LIST_INDEX, results_schema.STATUS_INDEX}
    assert indexes[results_schema.LIST_INDEX]["KeySchema"] == [
        {"AttributeName": results_schema.LIST_PK, "KeyType": "HASH"},
        {"AttributeName": results_schema.LIST_SK, "KeyType": "RANGE"},
    ]
    assert indexes[results_schema.STATUS_INDEX]["KeySchema"] == [
        {"AttributeName": results_schema.STATUS_PK, "KeyType": "HASH"},
        {"AttributeName": results_schema.LIST_SK, "KeyType": "RANGE"},
    ]
    assert all(index["Projection"] == {"ProjectionType": "ALL"} for index in indexes.values())
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}


def test_idempotency_table_matches_powertools_persistence_layer_defaults(template: dict[str, Any]) -> None:
    defaults = inspect.signature(DynamoDBPersistenceLayer.__init__).parameters
    table = _properties(template, "IdempotencyTable")

    assert table["KeySchema"] == [{"AttributeName": defaults["key_attr"].default, "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": defaults["expiry_attr"].default,
        "Enabled": True,
    }


# ------------------------------------------------------------------------------------------ functions


@pytest.mark.parametrize(
    ("logical_id", "settings_model"),
    [
        ("IngestFunction", ingest_settings.IngestSettings),
        ("ApiFunction", api_settings.ApiSettings),
        ("InferenceFunction", inference_settings.InferenceFunctionSettings),
        ("VideoFunction", video_settings.VideoSettings),
    ],
)
def test_function_environment_is_exactly_what_its_settings_read(
    template: dict[str, Any], logical_id: str, settings_model: Any
) -> None:
    """No typo'd variable silently ignored; every required setting provided."""
    known = {setting.variable.name for setting in settings_model.settings()}
    required = {setting.variable.name for setting in settings_model.settings() if setting.required}
    variables = {
        name for name in function_environment(template, logical_id) if not name.startswith("POWERTOOLS_")
    }

    assert variables <= known, f"unknown to the function: {variables - known}"
    assert required <= variables


def test_globals_give_every_function_a_current_runtime_tracing_and_json_logs(
    template: dict[str, Any],
) -> None:
    globals_ = template["Globals"]["Function"]
    major, minor = (int(part) for part in globals_["Runtime"].removeprefix("python").split("."))

    assert (major, minor) >= (3, 12)
    assert globals_["Tracing"] == "Active"
    assert globals_["LoggingConfig"]["LogFormat"] == "JSON"
    assert globals_["Layers"] == [{"Ref": "SharedLayer"}]
    for name, function in resources_of_type(template, "AWS::Serverless::Function").items():
        own = function["Properties"]
        assert own.get("LoggingConfig", {}).get("LogFormat", "JSON") == "JSON", name
        assert own["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"], name


@pytest.mark.parametrize(
    ("layer_id", "content", "build_method"),
    [("SharedLayer", "layers/shared", None), ("ModelsLayer", "layers/models", "makefile")],
)
def test_each_layer_is_built_for_the_functions_runtime_and_architecture(
    template: dict[str, Any], layer_id: str, content: str, build_method: str | None
) -> None:
    """SAM's python builder for the shared layer; a Makefile asking pip for the same platform for the
    models layer (layers/models/Makefile says why)."""
    layer = template["Resources"][layer_id]
    runtime = template["Globals"]["Function"]["Runtime"]

    assert layer["Metadata"]["BuildMethod"] == (build_method or runtime)
    assert layer["Metadata"]["BuildArchitecture"] == "arm64"
    assert template["Globals"]["Function"]["Architectures"] == ["arm64"]
    assert layer["Properties"]["CompatibleRuntimes"] == [runtime]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Properties"]["ContentUri"] == content


def test_the_models_layers_makefile_asks_pip_for_the_runtimes_wheels() -> None:
    makefile = (Path(__file__).parents[2] / "layers" / "models" / "Makefile").read_text()
    assert "--only-binary=:all:" in makefile
    assert "--python-version 3.12" in makefile
    assert "--implementation cp" in makefile
    assert "manylinux_2_27_aarch64" in makefile
    assert "x86_64" not in makefile


# ------------------------------------------------------------------------------------------ builtin backend

BUILTIN_ONLY = (
    "ModelsLayer",
    "InferenceFunction",
    "InferenceFunctionUrl",
    "InferenceLogGroup",
    "InferenceErrorsAlarm",
)


def test_the_builtin_backends_resources_exist_only_with_it_and_the_api_key_secret_only_without(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    assert template["Conditions"]["UseBuiltinInference"] == {
        "Fn::Equals": [{"Ref": "InferenceBackend"}, "builtin"]
    }
    assert {name: resources[name].get("Condition") for name in BUILTIN_ONLY} == dict.fromkeys(
        BUILTIN_ONLY, "UseBuiltinInference"
    )
    assert resources["RoboflowApiKeySecret"]["Condition"] == "UseRoboflowInference"
    assert template["Outputs"]["RoboflowApiKeySecretArn"]["Condition"] == "UseRoboflowInference"
    assert template["Outputs"]["InferenceFunctionUrl"]["Condition"] == "UseBuiltinInference"


def test_the_inference_function_is_reachable_only_through_an_iam_function_url(
    template: dict[str, Any],
) -> None:
    """No AuthType NONE anywhere, no resource policy that lets anyone else invoke it."""
    urls = resources_of_type(template, "AWS::Lambda::Url")
    assert {name: url["Properties"]["AuthType"] for name, url in urls.items()} == {
        "InferenceFunctionUrl": "AWS_IAM"
    }
    assert urls["InferenceFunctionUrl"]["Properties"]["TargetFunctionArn"] == {
        "Fn::GetAtt": ["InferenceFunction", "Arn"]
    }
    function = template["Resources"]["InferenceFunction"]["Properties"]
    assert "FunctionUrlConfig" not in function  # the one URL is the explicit resource above
    assert "Events" not in function
    permissions = resources_of_type(template, "AWS::Lambda::Permission")
    assert all(p["Properties"]["FunctionName"] != {"Ref": "InferenceFunction"} for p in permissions.values())


def test_the_inference_function_runs_the_handler_with_the_models_layer(template: dict[str, Any]) -> None:
    function = template["Resources"]["InferenceFunction"]["Properties"]

    assert function["Handler"] == "inference_handler.lambda_handler"
    assert function["CodeUri"] == "functions/inference"
    assert function["Layers"] == [{"Ref": "ModelsLayer"}]  # SAM adds the Globals' SharedLayer
    assert function["Environment"]["Variables"]["MODEL_ID"] == {"Ref": "ModelId"}
    assert function["MemorySize"] >= 1024


# ------------------------------------------------------------------------------------------ HTTP API


@pytest.mark.parametrize(
    ("auth_type", "expected_security", "expected_schemes"),
    [
        ("IAM", [{"SigV4": []}], {"SigV4"}),
        ("JWT", [{"JwtAuthorizer": ["s3kp/results.read"]}], {"JwtAuthorizer"}),
        ("NONE", [], {"SigV4"}),
    ],
)
def test_every_route_follows_the_api_auth_type_parameter(
    template: dict[str, Any], auth_type: str, expected_security: list[Any], expected_schemes: set[str]
) -> None:
    resolver = Resolver(
        template,
        parameters={
            "ApiAuthType": auth_type,
            "JwtIssuer": "https://issuer.example",
            "JwtAudience": ["client"],
            "JwtScopes": ["s3kp/results.read"],
        },
        references={"ApiFunction.Arn": "arn:aws:lambda:us-east-1:123456789012:function:api"},
    )
    body = resolver.resolve(_properties(template, "HttpApi")["DefinitionBody"])

    operations = [operation for path in body["paths"].values() for operation in path.values()]
    assert {"/results", "/results/{result_id}", "/results/{result_id}/annotated"} <= set(body["paths"])
    for operation in operations:
        assert operation["security"] == expected_security
        assert operation["x-amazon-apigateway-integration"]["payloadFormatVersion"] == "2.0"
    assert set(body["components"]["securitySchemes"]) == expected_schemes


def test_iam_is_the_default_api_auth(template: dict[str, Any]) -> None:
    assert parameter_defaults(template)["ApiAuthType"] == "IAM"


def test_http_api_logs_access_and_throttles(template: dict[str, Any]) -> None:
    api = _properties(template, "HttpApi")

    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert "$context.requestId" in api["AccessLogSettings"]["Format"]
    assert api["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0


# ------------------------------------------------------------------------------------------ storage & outputs


def test_upload_bucket_is_private_encrypted_and_versioning_follows_the_parameter(
    template: dict[str, Any],
) -> None:
    bucket = _properties(template, "UploadBucket")

    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    enabled = Resolver(template, parameters={"EnableVersioning": "true"})
    assert enabled.resolve(bucket["VersioningConfiguration"]) == {"Status": "Enabled"}
    # Off means never configured (not "Suspended", which S3 cannot undo back to unversioned).
    disabled = Resolver(template, parameters={"EnableVersioning": "false"})
    assert disabled.resolve(bucket["VersioningConfiguration"]) in (None, {"Ref": "AWS::NoValue"})


def test_api_key_secret_is_a_placeholder_and_the_cursor_key_is_generated(template: dict[str, Any]) -> None:
    api_key = _properties(template, "RoboflowApiKeySecret")
    cursor = _properties(template, "CursorSecret")

    assert "REPLACE" in api_key["SecretString"]
    assert "SecretString" not in cursor
    assert cursor["GenerateSecretString"]["PasswordLength"] >= 32


def test_outputs_tell_users_where_to_upload_and_what_to_call(template: dict[str, Any]) -> None:
    assert {"ApiUrl", "UploadBucketName", "ResultsTableName", "IngestQueueUrl", "DeadLetterQueueUrl"} <= set(
        template["Outputs"]
    )


def test_model_id_parameter_accepts_exactly_what_the_function_accepts(template: dict[str, Any]) -> None:
    assert template["Parameters"]["ModelId"]["AllowedPattern"] == ingest_settings.MODEL_ID_PATTERN


def _numeric_parameters_of(template: dict[str, Any], logical_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (variable, template["Parameters"][value["Ref"]])
        for variable, value in function_environment(template, logical_id).items()
        if isinstance(value, dict)
        and "Ref" in value
        and template["Parameters"].get(value["Ref"], {}).get("Type") == "Number"
        and "MinValue" in template["Parameters"][value["Ref"]]
    ]


@pytest.mark.parametrize(
    ("function", "settings_model"),
    [("IngestFunction", ingest_settings.IngestSettings), ("VideoFunction", video_settings.VideoSettings)],
)
def test_every_value_a_numeric_parameter_allows_is_valid_for_the_ingest_and_video_functions(
    template: dict[str, Any], function: str, settings_model: Any
) -> None:
    """A value the template accepts at deploy time must not fail the function's settings at cold start."""
    required = {
        "MODEL_ID": "faces/1",
        "RESULTS_TABLE": "results",
        "IDEMPOTENCY_TABLE": "idempotency",
        "ROBOFLOW_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:key",
    }
    numeric = _numeric_parameters_of(template, function)
    assert {"CONFIDENCE", "MAX_SIDE_FOR_INFERENCE", "MAX_RECEIVE_COUNT"} <= {
        variable for variable, _ in numeric
    }
    for variable, parameter in numeric:
        for bound in ("MinValue", "MaxValue", "Default"):
            settings_model.from_environment({**required, variable: str(parameter[bound])})
    if function == "VideoFunction":  # the smallest sampling rate with the shortest segment still samples
        parameters = template["Parameters"]
        settings_model.from_environment(
            {
                **required,
                "VIDEO_FPS": str(parameters["VideoFps"]["MinValue"]),
                "VIDEO_SEGMENT_SECONDS": str(parameters["VideoSegmentSeconds"]["MinValue"]),
            }
        )


def test_every_value_a_numeric_parameter_allows_is_valid_for_the_api_function(
    template: dict[str, Any],
) -> None:
    numeric = _numeric_parameters_of(template, "ApiFunction")
    assert numeric
    for variable, parameter in numeric:
        for bound in ("MinValue", "MaxValue", "Default"):
            api_settings.ApiSettings.from_environment(
                {"RESULTS_TABLE": "results", "CURSOR_SECRET": "x" * 32, variable: str(parameter[bound])}
            )


@pytest.mark.parametrize(
    ("function", "settings_model"),
    [
        ("IngestFunction", ingest_settings.IngestSettings),
        ("ApiFunction", api_settings.ApiSettings),
        ("VideoFunction", video_settings.VideoSettings),
    ],
)
def test_a_numeric_parameter_defaults_to_the_functions_own_default(
    template: dict[str, Any], function: str, settings_model: type[Any]
) -> None:
    """CloudFormation needs literal defaults; the template's must be the ones the settings model declares
    (docs/settings.md), so a stack deployed without parameters behaves as the function does on its own."""
    defaults = {setting.variable.name: setting.default for setting in settings_model.settings()}
    numeric = _numeric_parameters_of(template, function)
    assert numeric
    for variable, parameter in numeric:
        assert float(parameter["Default"]) == float(defaults[variable]), variable
