"""Evaluates recorded AWS calls against each function's role as SAM deploys it.

The roles come from aws-sam-translator run on template.yaml (SAM policy templates expanded), with the
template's parameters and pseudo parameters substituted (the inference backend as the call's function
ran with it: its INFERENCE_AUTH says which statements apply), and every resource reference bound to the
concrete resource the recorded call used: a function's environment names its tables, bucket and secrets
(`RESULTS_TABLE: !Ref ResultsTable`), so the ARN in the policy and the ARN of the call are the same
string exactly when the template grants that resource. A resource no variable names is bound by its
type when the template has one of that type (the upload bucket, an event bus), or, for a queue, when it
is the queue the function's event source mapping reads (the queue runner's receives and deletes are
recorded as the function's: the mapping makes them with the function's role), or, for a signed request to
a Function URL, the function the template's URL resource serves. Each needed permission is
then evaluated with moto's IAM policy evaluator (`IAMPolicy.is_action_permitted`), never with moto's
server-side enforcement (which checks DynamoDB and Secrets Manager calls against `*`).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from s3kp.local.cfn_template import (
    TEMPLATE_PATH,
    Resolver,
    function_environment,
    load_template,
    sqs_event_sources,
)
from s3kp.local.template_functions import template_functions
from tests.iam_proof.actions import (
    ACCOUNT_ID,
    Call,
    Need,
    UnknownCall,
    bus_arn,
    function_arn,
    queue_arn,
    required_permissions,
)

ROOT = TEMPLATE_PATH.parent
TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"
# ModelId has no default; no policy depends on it.
DEPLOY_PARAMETERS = {"ModelId": "my-pose/1"}
# The variable that tells a call's InferenceBackend (the ingest function's INFERENCE_AUTH), recorded with
# each call: the roles differ by backend (the API key's secret, or the InferenceFunction's URL).
BACKEND_VARIABLE = "INFERENCE_AUTH"
BACKENDS = {"api_key": "roboflow", "aws_iam": "builtin"}


def deploy_parameters(environment: Mapping[str, str] | None) -> dict[str, str]:
    """The parameters the stack was deployed with, as far as the call's function environment tells."""
    auth = (environment or {}).get(BACKEND_VARIABLE, "api_key")
    return {**DEPLOY_PARAMETERS, "InferenceBackend": BACKENDS[auth]}


def _named_resources(
    template: Mapping[str, Any], function: str, parameters: Mapping[str, str]
) -> dict[str, str]:
    """The function's environment variables that name a resource of the stack (`!Ref X`, also under an
    `!If`) with these parameters -> X."""
    resources = template["Resources"]
    markers = _Markers({logical_id: f"resource:{logical_id}" for logical_id in resources})
    resolver = Resolver(template, references=markers, parameters=parameters)
    named = {}
    for variable, value in function_environment(template, function).items():
        try:
            resolved = resolver.resolve(value)
        except KeyError:
            continue
        if isinstance(resolved, str) and resolved.startswith("resource:"):
            named[variable] = resolved.removeprefix("resource:")
    return named


# The resource types a call can name, and how their Ref and Arn look for a concrete name.
_KIND_TYPES = {
    "object": "AWS::S3::Bucket",
    "bucket": "AWS::S3::Bucket",
    "table": "AWS::DynamoDB::Table",
    "index": "AWS::DynamoDB::Table",
    "secret": "AWS::SecretsManager::Secret",
    "queue": "AWS::SQS::Queue",
    "bus": "AWS::Events::EventBus",
    "parameter": "AWS::SSM::Parameter",
    "function_url": "AWS::Serverless::Function",
}


def recorder_settings(template_path: Path = TEMPLATE_PATH) -> tuple[dict[str, Path], tuple[str, ...]]:
    """What the recorder needs: each function's code directory, and the environment variables that name
    resources of the stack (recorded with each call, to tell which resource a call used)."""
    template = load_template(template_path)
    functions = {
        name: (template_path.parent / function.code_uri).resolve()
        for name, function in template_functions(template_path).items()
    }
    variables = {
        variable
        for name in functions
        for backend in BACKENDS.values()
        for variable in _named_resources(template, name, {**DEPLOY_PARAMETERS, "InferenceBackend": backend})
    }
    return functions, tuple(sorted(variables | {BACKEND_VARIABLE}))


def recorder_pollers(template_path: Path = TEMPLATE_PATH) -> dict[str, Path]:
    """The module that polls a queue on a function's behalf, by function: the offline stack's queue runner
    does what Lambda's event source mapping does, with the function's role (receive, delete). One module
    polls for every function; its threads are named after the function each polls for (see recorder)."""
    from s3kp.local import runner

    template = load_template(template_path)
    polled = [name for name in template_functions(template_path) if sqs_event_sources(template, name)]
    return {name: Path(runner.__file__).resolve() for name in polled}


@cache
def expanded_template(template_path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """template.yaml after the SAM transform (roles with their inline policies)."""
    if not TOOLS_PYTHON.exists():
        raise RuntimeError(f"{TOOLS_PYTHON} is missing: run `make setup` (it installs aws-sam-translator)")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT", "S3KP_AWS_CALL"))}
    environment.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    result = subprocess.run(
        [
            str(TOOLS_PYTHON),
            str(Path(__file__).with_name("sam_expand.py")),
            str(template_path),
            json.dumps(DEPLOY_PARAMETERS),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"aws-sam-translator failed on {template_path}:\n{result.stderr}")
    return dict(json.loads(result.stdout))


def function_policies(expanded: Mapping[str, Any], function: str) -> list[Any]:
    """The inline policies of the function's role as SAM writes them (unresolved: an entry may be an
    `Fn::If` on the backend); `policy_documents` resolves them."""
    role = expanded["Resources"][function]["Properties"]["Role"]
    role_id = role["Fn::GetAtt"][0]
    return list(expanded["Resources"][role_id]["Properties"].get("Policies", []))


def policy_documents(resolver: Resolver, policies: list[Any]) -> list[dict[str, Any]]:
    """The documents of the policies that apply with the resolver's parameters (an `Fn::If` may drop one)."""
    return [policy["PolicyDocument"] for policy in resolver.resolve(policies) if policy]


class _Markers(dict[str, str]):
    """References for `_named_resources`: each logical id's Ref is a marker; attributes are not needed."""

    def __missing__(self, name: str) -> str:
        return f"attribute:{name}"

    def __contains__(self, name: object) -> bool:
        return True


class _Bindings(Mapping[str, Any]):
    """Resolver references: bound resources by their concrete values, any other one by a placeholder
    no call can match (so a policy naming an unbound resource still resolves)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> Any:
        if name in self._values:
            return self._values[name]
        return f"arn:aws:unbound:::{name}"

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Any:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _references(resource_type: str, logical_id: str, name: str, region: str) -> dict[str, str]:
    """`Ref` and `Fn::GetAtt .Arn` of a resource of `resource_type` whose physical name is `name`."""
    if resource_type == "AWS::S3::Bucket":
        return {logical_id: name, f"{logical_id}.Arn": f"arn:aws:s3:::{name}"}
    if resource_type == "AWS::DynamoDB::Table":
        return {logical_id: name, f"{logical_id}.Arn": f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{name}"}
    if resource_type == "AWS::SecretsManager::Secret":
        return {logical_id: name, f"{logical_id}.Arn": name}
    if resource_type == "AWS::SQS::Queue":
        arn = queue_arn(name, region)
        return {logical_id: name, f"{logical_id}.Arn": arn, f"{logical_id}.QueueName": arn.rsplit(":", 1)[1]}
    if resource_type == "AWS::Events::EventBus":
        return {logical_id: name, f"{logical_id}.Arn": bus_arn(name, region), f"{logical_id}.Name": name}
    if resource_type == "AWS::SSM::Parameter":
        return {logical_id: name}
    if resource_type == "AWS::Serverless::Function":
        return {logical_id: name, f"{logical_id}.Arn": function_arn(name, region)}
    return {logical_id: name}


@dataclass(frozen=True)
class Verdict:
    call: Call
    need: Need
    logical_id: str | None
    allowed: bool

    def explain(self) -> str:
        presigned = " (a presigned URL)" if self.call.presigned else ""
        return (
            f"{self.call.function} calls {self.call.service}:{self.call.operation}{presigned}, which needs "
            f"{self.need.action} on {self.need.arn}; its role does not allow it. Add to "
            f"{self.call.function}'s Policies:\n      {suggest_statement(self)}"
        )


def suggest_statement(verdict: Verdict) -> str:
    need = verdict.need
    logical = verdict.logical_id or "<the resource>"
    if need.kind == "object":
        prefix = need.detail.split("/", 1)[0] + "/*" if "/" in need.detail else need.detail
        resource = f"!Sub ${{{logical}.Arn}}/{prefix}"
    elif need.kind == "index":
        resource = f"!Sub ${{{logical}.Arn}}/index/{need.detail}"
    elif need.kind == "secret":
        resource = f"!Ref {logical}"
    elif need.kind == "function_url":
        return (
            f"{{ Effect: Allow, Action: {need.action}, Resource: !GetAtt {logical}.Arn, "
            "Condition: { StringEquals: { lambda:FunctionUrlAuthType: AWS_IAM } } }"
        )
    elif need.kind == "parameter":
        arn = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/"
        resource = f"!Sub {arn}{need.name.lstrip('/')}"
    else:
        resource = f"!GetAtt {logical}.Arn"
    return f"{{ Effect: Allow, Action: {need.action}, Resource: {resource} }}"


class Proof:
    """Evaluates calls against the deployed roles of template.yaml."""

    def __init__(self, template_path: Path = TEMPLATE_PATH) -> None:
        self.template = load_template(template_path)
        self.expanded = expanded_template(template_path)
        self._types = {name: r["Type"] for name, r in self.template["Resources"].items()}
        self.functions = tuple(
            name for name, kind in self._types.items() if kind == "AWS::Serverless::Function"
        )

    def resource_variables(
        self, function: str, parameters: Mapping[str, str] = DEPLOY_PARAMETERS
    ) -> dict[str, str]:
        """The function's environment variables that name a resource of the stack (`!Ref X`) -> X."""
        return _named_resources(self.template, function, parameters)

    def _url_targets(self) -> list[str]:
        """The functions the template's Function URLs serve (`TargetFunctionArn: !GetAtt F.Arn`)."""
        return [
            resource["Properties"]["TargetFunctionArn"]["Fn::GetAtt"][0]
            for resource in self.template["Resources"].values()
            if resource["Type"] == "AWS::Lambda::Url"
        ]

    def _event_queues(self, function: str) -> list[str]:
        return [
            source["EventSourceArn"]["Fn::GetAtt"][0] for source in sqs_event_sources(self.template, function)
        ]

    def logical_id(self, call: Call, need: Need) -> str | None:
        """The template resource the call's resource is: named by the function's environment, or the one
        resource of its type, or (a queue) the queue the function's event source mapping reads."""
        if need.kind == "function_url":
            # A signed request to a Function URL: the function the template's (one) URL resource serves.
            targets = self._url_targets()
            return targets[0] if len(targets) == 1 else None
        resource_type = _KIND_TYPES[need.kind]
        environment = call.environment or {}
        named = self.resource_variables(call.function, deploy_parameters(call.environment))
        for variable, logical_id in named.items():
            if self._types[logical_id] == resource_type and environment.get(variable) == need.name:
                return logical_id
        if any(
            self._types[logical_id] == resource_type and variable in environment
            for variable, logical_id in named.items()
        ):
            # The function's environment names its resource of this type, and this call is not on it
            # (e.g. PutEvents on the default bus instead of RESULTS_EVENT_BUS): nothing of the stack's.
            # A poller's call carries no function environment (the video queue's runner): bound below.
            return None
        candidates = [name for name, kind in self._types.items() if kind == resource_type]
        if len(candidates) == 1:
            return candidates[0]
        if resource_type == "AWS::SQS::Queue":
            queues = self._event_queues(call.function)
            if len(queues) == 1:
                return queues[0]
        return None

    def _policies(self, call: Call, bindings: Mapping[str, str]) -> list[Any]:
        from moto.iam.access_control import IAMPolicy

        resolver = Resolver(
            self.expanded,
            references=_Bindings(bindings),
            parameters=deploy_parameters(call.environment),
            region=call.region,
        )
        documents = policy_documents(resolver, function_policies(self.expanded, call.function))
        return [IAMPolicy(json.dumps(document)) for document in documents]

    def evaluate(self, call: Call) -> list[Verdict]:
        needs = required_permissions(call)
        bindings: dict[str, str] = {}
        logical_ids: list[str | None] = []
        for need in needs:
            logical_id = self.logical_id(call, need)
            logical_ids.append(logical_id)
            if logical_id is not None:
                bindings.update(_references(self._types[logical_id], logical_id, need.name, call.region))
        environment = call.environment or {}
        # The function's other resources, as its environment names them (so every statement resolves).
        named = self.resource_variables(call.function, deploy_parameters(call.environment))
        for variable, logical_id in named.items():
            if variable in environment and logical_id not in bindings:
                resource_type = self._types[logical_id]
                bindings.update(_references(resource_type, logical_id, environment[variable], call.region))
        from moto.iam.access_control import PermissionResult

        policies = self._policies(call, bindings)
        verdicts = []
        for need, logical_id in zip(needs, logical_ids, strict=True):
            results = [policy.is_action_permitted(need.action, need.arn) for policy in policies]
            allowed = PermissionResult.PERMITTED in results and PermissionResult.DENIED not in results
            verdicts.append(Verdict(call, need, logical_id, allowed))
        return verdicts


def distinct_calls(records: Iterable[Mapping[str, Any]], functions: Iterable[str]) -> list[Call]:
    """One Call per distinct (function, operation, resource, environment); records of other code dropped."""
    wanted = set(functions)
    seen: dict[str, Call] = {}
    for record in records:
        if record["function"] not in wanted:
            continue
        key = json.dumps({k: v for k, v in record.items() if k != "pid"}, sort_keys=True)
        seen.setdefault(key, Call.from_record(record))
    return list(seen.values())


def denied(proof: Proof, calls: Iterable[Call]) -> tuple[list[Verdict], list[str]]:
    """(verdicts that are not allowed, calls no mapping knows)."""
    refused: list[Verdict] = []
    unknown: list[str] = []
    for call in calls:
        try:
            refused += [verdict for verdict in proof.evaluate(call) if not verdict.allowed]
        except UnknownCall as error:
            unknown.append(f"{call.function}: {error}")
    return refused, unknown
