"""Deployment footguns the template refuses or defuses: a public API by accident, an API key sent over
plain http, alarm emails that can never arrive, a dead-letter queue any queue can use, an API key source
without a grant. Rules are evaluated here with the template's own parameter constraints and `Rules`
section, as CloudFormation evaluates them before creating anything."""

from __future__ import annotations

import re
from typing import Any

import ingest_settings
import pytest

from s3kp.local.cfn_template import Resolver, function_environment, parameter_defaults

STACK_UUID = "5f0c6a70-0a6e-11ef-9f1c-0a1b2c3d4e5f"
JWT = {"ApiAuthType": "JWT", "JwtIssuer": "https://issuer.example", "JwtAudience": ["client-id"]}


def _rule_value(template: dict[str, Any], parameters: dict[str, Any], value: Any) -> Any:
    """A rule expression's value: CloudFormation's rule functions over parameter values."""
    if isinstance(value, list):
        return [_rule_value(template, parameters, item) for item in value]
    if not isinstance(value, dict):
        return value
    ((function, argument),) = value.items()
    if function == "Ref":
        return {**parameter_defaults(template), **parameters}[argument]
    if function == "Fn::EachMemberEquals":
        values, expected = _rule_value(template, parameters, argument)
        return all(str(item) == str(expected) for item in values)
    if function == "Fn::Equals":
        left, right = _rule_value(template, parameters, argument)
        return str(left) == str(right)
    if function == "Fn::Not":
        return not _rule_value(template, parameters, argument[0])
    if function == "Fn::And":
        return all(_rule_value(template, parameters, argument))
    if function == "Fn::Or":
        return any(_rule_value(template, parameters, argument))
    if function == "Fn::Contains":
        values, value = _rule_value(template, parameters, argument)
        return str(value) in [str(item) for item in values]
    raise AssertionError(f"{function} is not a CloudFormation rule function")


def deployment_errors(template: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    """What CloudFormation would refuse for these parameter values: AllowedPattern/AllowedValues
    violations, then failing rule assertions (by their AssertDescription)."""
    values = {**parameter_defaults(template), **parameters}
    errors = []
    for name, spec in template["Parameters"].items():
        if name not in values:
            continue
        value = values[name]
        if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], str(value)):
            errors.append(f"{name}: {spec.get('ConstraintDescription', spec['AllowedPattern'])}")
        if "AllowedValues" in spec and str(value) not in [str(v) for v in spec["AllowedValues"]]:
            errors.append(f"{name}: not one of {spec['AllowedValues']}")
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not _rule_value(template, values, rule["RuleCondition"]):
            continue
        errors += [
            f"{name}: {assertion['AssertDescription'].strip()}"
            for assertion in rule["Assertions"]
            if not _rule_value(template, values, assertion["Assert"])
        ]
    return errors


# ------------------------------------------------------------------------------------------ HTTP API auth


def test_the_defaults_deploy(template: dict[str, Any]) -> None:
    assert deployment_errors(template, {"ModelId": "my-pose/1"}) == []


def test_a_public_api_needs_an_explicit_second_acknowledgement(template: dict[str, Any]) -> None:
    """GIVEN ApiAuthType=NONE alone THEN the stack is refused; WITH AcknowledgePublicApi=true it deploys."""
    refused = deployment_errors(template, {"ModelId": "m/1", "ApiAuthType": "NONE"})
    accepted = deployment_errors(
        template, {"ModelId": "m/1", "ApiAuthType": "NONE", "AcknowledgePublicApi": "true"}
    )

    assert any("AcknowledgePublicApi=true" in error for error in refused), refused
    assert accepted == []
    assert parameter_defaults(template)["AcknowledgePublicApi"] == "false"


def test_jwt_mode_requires_scopes(template: dict[str, Any]) -> None:
    without_scopes = deployment_errors(template, {"ModelId": "m/1", **JWT})
    with_scopes = deployment_errors(template, {"ModelId": "m/1", **JWT, "JwtScopes": ["s3kp/results.read"]})

    assert any("JwtScopes" in error for error in without_scopes), without_scopes
    assert with_scopes == []


def test_every_route_demands_the_jwt_scopes(template: dict[str, Any]) -> None:
    scopes = ["s3kp/results.read", "s3kp/admin"]
    resolver = Resolver(
        template,
        parameters={**JWT, "JwtScopes": scopes},
        references={"ApiFunction.Arn": "arn:aws:lambda:us-east-1:123456789012:function:api"},
    )
    body = resolver.resolve(template["Resources"]["HttpApi"]["Properties"]["DefinitionBody"])

    operations = [operation for path in body["paths"].values() for operation in path.values()]
    assert operations
    assert all(operation["security"] == [{"JwtAuthorizer": scopes}] for operation in operations)


# ------------------------------------------------------------------------------------------ inference URL


@pytest.mark.parametrize(
    ("parameters", "refused_because"),
    [
        ({"InferenceUrl": "https://infer.example.com"}, None),
        ({"InferenceUrl": "http://infer.example.com"}, "InferenceUrl: must start with https://"),
        ({"InferenceUrl": "https://"}, "InferenceUrl"),
        ({"PlainHttpInferenceUrl": "http://10.0.0.5:9001"}, None),
        ({"PlainHttpInferenceUrl": "https://10.0.0.5:9001"}, "PlainHttpInferenceUrl"),
        (
            {"InferenceUrl": "https://infer.example.com", "PlainHttpInferenceUrl": "http://10.0.0.5:9001"},
            "not both",
        ),
    ],
)
def test_the_api_key_travels_over_plain_http_only_by_explicit_opt_in(
    template: dict[str, Any], parameters: dict[str, str], refused_because: str | None
) -> None:
    errors = deployment_errors(template, {"ModelId": "m/1", **parameters})

    if refused_because is None:
        assert errors == []
    else:
        assert any(refused_because in error for error in errors), errors


@pytest.mark.parametrize(
    ("parameters", "expected_url"),
    [
        ({}, "https://detect.roboflow.com"),
        ({"InferenceUrl": "https://infer.example.com"}, "https://infer.example.com"),
        ({"PlainHttpInferenceUrl": "http://10.0.0.5:9001"}, "http://10.0.0.5:9001"),
    ],
)
def test_the_function_calls_the_endpoint_the_parameters_chose(
    template: dict[str, Any], parameters: dict[str, str], expected_url: str
) -> None:
    resolver = Resolver(template, parameters=parameters)

    assert resolver.resolve(function_environment(template, "IngestFunction")["INFERENCE_URL"]) == expected_url


@pytest.mark.parametrize(
    ("parameters", "refused_because"),
    [
        ({"ModelId": "pose/1"}, None),
        ({"ModelId": "hands/1"}, None),
        ({"ModelId": "my-pose/1"}, "builtin serves ModelId faces/1, faces/2, pose/1 or hands/1"),
        ({"ModelId": "faces/2", "InferenceUrl": "https://infer.example.com"}, "needs no InferenceUrl"),
        ({"ModelId": "faces/2", "PlainHttpInferenceUrl": "http://10.0.0.5:9001"}, "needs no InferenceUrl"),
    ],
)
def test_the_builtin_backend_serves_its_own_models_and_takes_no_endpoint(
    template: dict[str, Any], parameters: dict[str, str], refused_because: str | None
) -> None:
    errors = deployment_errors(template, {"InferenceBackend": "builtin", **parameters})

    if refused_because is None:
        assert errors == []
    else:
        assert any(refused_because in error for error in errors), errors


def test_the_rules_models_are_the_ones_the_inference_function_loads(template: dict[str, Any]) -> None:
    from s3kp_models.model_files import MODEL_IDS

    (assertion, *_) = template["Rules"]["BuiltinBackendServesBuiltinModels"]["Assertions"]
    models, model_id = assertion["Assert"]["Fn::Contains"]
    assert (models, model_id) == (list(MODEL_IDS), {"Ref": "ModelId"})
    assert template["Parameters"]["InferenceBackend"]["Default"] == "roboflow"
    assert deployment_errors(template, {"InferenceBackend": "hosted", "ModelId": "m/1"}) == [
        "InferenceBackend: not one of ['roboflow', 'builtin']"
    ]


@pytest.mark.parametrize("logical_id", ["IngestFunction", "VideoFunction"])
def test_the_builtin_backend_sends_signed_requests_to_the_stacks_function_url(
    template: dict[str, Any], logical_id: str
) -> None:
    url = "https://abc123.lambda-url.us-east-1.on.aws/"
    resolver = Resolver(
        template,
        parameters={"InferenceBackend": "builtin"},
        references={"InferenceFunctionUrl.FunctionUrl": url},
    )
    environment = function_environment(template, logical_id)

    assert resolver.resolve(environment["INFERENCE_URL"]) == url
    assert resolver.resolve(environment["INFERENCE_AUTH"]) == "aws_iam"
    assert Resolver(template).resolve(environment["INFERENCE_AUTH"]) == "api_key"


# ------------------------------------------------------------------------------------------ alarms


def test_alarm_topic_uses_a_key_cloudwatch_may_use(template: dict[str, Any]) -> None:
    """CloudWatch alarms cannot publish to a topic under the AWS managed aws/sns key: the alarm emails
    would never arrive. The topic's key must be the stack's own, its policy letting CloudWatch use it."""
    resources = template["Resources"]
    topic = resources["AlarmTopic"]
    key_reference = topic["Properties"].get("KmsMasterKeyId")

    assert isinstance(key_reference, dict), f"topic key {key_reference!r} must be a key of this stack"
    key_id = key_reference["Ref"]
    key = resources[key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key.get("Condition") == topic.get("Condition"), "the key exists exactly when the topic does"
    assert key["Properties"]["EnableKeyRotation"] is True
    cloudwatch = [
        statement
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
        if statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert len(cloudwatch) == 1
    (statement,) = cloudwatch
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    # The account keeps administering its key (otherwise the key becomes unmanageable).
    assert any(
        s.get("Principal") == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
        for s in key["Properties"]["KeyPolicy"]["Statement"]
    )
    for name, resource in resources.items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            assert "AlarmTopic" in str(resource["Properties"]["AlarmActions"]), name


# ------------------------------------------------------------------------------------------ queues


def test_only_the_ingest_queue_may_dead_letter_into_the_dead_letter_queue(template: dict[str, Any]) -> None:
    resolver = Resolver(template, stack_uuid=STACK_UUID)
    resources = template["Resources"]
    queue_name = resolver.resolve(resources["IngestQueue"]["Properties"]["QueueName"])
    redrive_allow = resolver.resolve(resources["DeadLetterQueue"]["Properties"]["RedriveAllowPolicy"])

    assert redrive_allow == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [f"arn:aws:sqs:us-east-1:123456789012:{queue_name}"],
    }
    assert STACK_UUID in queue_name
    assert len(queue_name) <= 80  # SQS's limit


# ------------------------------------------------------------------------------------------ API key sources


def test_every_aws_api_key_source_the_ingest_function_reads_is_the_one_the_template_sets_and_grants(
    template: dict[str, Any],
) -> None:
    """An API key source the function accepts but the template neither sets nor grants (an SSM parameter
    did so) fails only in production: the sources backed by an AWS service are exactly the template's."""
    aws_backed = {
        setting.variable.name
        for setting in ingest_settings.IngestSettings.settings()
        if setting.variable.name.startswith("ROBOFLOW_API_KEY_")
    }
    references = {
        "RoboflowApiKeySecret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:key",
        "InferenceFunction.Arn": "arn:aws:lambda:us-east-1:123456789012:function:inference",
        "InferenceFunctionUrl.FunctionUrl": "https://abc.lambda-url.us-east-1.on.aws/",
    }
    assert aws_backed == {"ROBOFLOW_API_KEY_SECRET_ARN"}
    for backend, secret in (("roboflow", references["RoboflowApiKeySecret"]), ("builtin", None)):
        parameters = {"InferenceBackend": backend, "ModelId": "faces/1"}
        resolver = Resolver(template, references=references, parameters=parameters)
        variable = function_environment(template, "IngestFunction")["ROBOFLOW_API_KEY_SECRET_ARN"]
        policies = template["Resources"]["IngestFunction"]["Properties"]["Policies"]
        grants = [resolver.resolve(policy) for policy in policies if "Statement" not in policy]
        assert resolver.resolve(variable) == secret, backend
        reads_the_secret = {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": secret}} in grants
        assert reads_the_secret == (secret is not None), backend
