"""Reading `template.yaml` as data: a YAML loader for CloudFormation's short tags and a small resolver.

The offline stack and the infra tests take resource settings from the SAM template itself, so the two
cannot drift. Only what they need is resolved: parameter defaults, pseudo parameters, references to
resources (mapped to local names by the caller) and the common intrinsic functions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[3] / "template.yaml"


class _CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]  # no stubs for PyYAML
    """SafeLoader that turns `!Ref x` into `{"Ref": "x"}` and `!Sub s` into `{"Fn::Sub": "s"}`, etc."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path | None = None) -> dict[str, Any]:
    """The template as plain data, short-form tags expanded to their long (JSON) form."""
    text = (path or TEMPLATE_PATH).read_text(encoding="utf-8")
    document = yaml.load(text, Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(document, dict) or "Resources" not in document:
        raise ValueError(f"{path or TEMPLATE_PATH} is not a CloudFormation template")
    return document


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, Any]:
    """Each parameter's default (CommaDelimitedList defaults become lists); parameters without one omitted."""
    defaults: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        if "Default" not in spec:
            continue
        default = spec["Default"]
        if spec.get("Type") == "CommaDelimitedList":
            default = [part.strip() for part in str(default).split(",")]
        defaults[name] = default
    return defaults


def function_environment(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """A function's environment variables as SAM deploys them: Globals merged with the function's own."""
    global_variables = (
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    own = template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})
    return {**global_variables, **own}


def sqs_event_sources(template: Mapping[str, Any], function: str) -> list[dict[str, Any]]:
    """The properties of every `AWS::Lambda::EventSourceMapping` that feeds `function` (by `!Ref` or
    `!GetAtt .Arn`) from a queue of the template (`EventSourceArn: !GetAtt Queue.Arn`)."""
    resources = template["Resources"]
    by_function = ({"Ref": function}, {"Fn::GetAtt": [function, "Arn"]})
    sources = []
    for resource in resources.values():
        properties = resource.get("Properties", {})
        if (
            resource.get("Type") != "AWS::Lambda::EventSourceMapping"
            or properties.get("FunctionName") not in by_function
        ):
            continue
        source = properties.get("EventSourceArn")
        if isinstance(source, dict) and "Fn::GetAtt" in source:
            queue, attribute = source["Fn::GetAtt"]
            if attribute == "Arn" and resources.get(queue, {}).get("Type") == "AWS::SQS::Queue":
                sources.append(dict(properties))
    return sources


_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


@dataclass(frozen=True)
class Resolver:
    """Evaluates intrinsic functions with parameter values and caller-supplied values for resources.

    `references` maps a logical id to its `Ref` value and "LogicalId.Attribute" to its `Fn::GetAtt` value.
    """

    template: Mapping[str, Any]
    references: Mapping[str, Any] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    region: str = "us-east-1"
    account_id: str = "123456789012"
    stack_name: str = "s3kp-local"
    stack_uuid: str = "00000000-0000-4000-8000-000000000000"

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}"
            f"/{self.stack_uuid}",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        defaults = parameter_defaults(self.template)
        if name in defaults:
            return defaults[name]
        if name in self.references:
            return self.references[name]
        raise KeyError(f"no value for Ref {name!r}: a parameter without default or an unmapped resource")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {key: self.resolve(item) for key, item in value.items()}
        ((function, argument),) = value.items()
        if function == "Ref":
            return self._ref(argument)
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::GetAtt":
            key = ".".join(argument)
            if key not in self.references:
                raise KeyError(f"no value for Fn::GetAtt {key}")
            return self.references[key]
        if function == "Fn::Sub":
            template_string, variables = (argument, {}) if isinstance(argument, str) else argument
            local = {name: self.resolve(item) for name, item in variables.items()}
            return _SUB_VARIABLE.sub(lambda m: str(self._sub_variable(m.group(1), local)), template_string)
        if function == "Fn::If":
            name, when_true, when_false = argument
            return self.resolve(when_true if self.condition(name) else when_false)
        if function == "Fn::Equals":
            left, right = self.resolve(argument)
            return str(left) == str(right)
        if function == "Fn::Not":
            return not self.resolve(argument[0])
        if function == "Fn::And":
            return all(self.resolve(argument))
        if function == "Fn::Or":
            return any(self.resolve(argument))
        if function == "Fn::Join":
            separator, items = argument
            return str(separator).join(str(item) for item in self.resolve(items))
        if function == "Fn::Split":
            separator, source = argument
            return str(self.resolve(source)).split(separator)
        if function == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        if function == "Fn::FindInMap":
            map_name, top, second = (self.resolve(part) for part in argument)
            return self.template["Mappings"][map_name][top][second]
        return {function: self.resolve(argument)}

    def _sub_variable(self, name: str, local: Mapping[str, Any]) -> Any:
        if name in local:
            return local[name]
        if "." in name and not name.startswith("AWS::"):
            logical_id, attribute = name.split(".", 1)
            return self.resolve({"Fn::GetAtt": [logical_id, attribute]})
        return self._ref(name)
