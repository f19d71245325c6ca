"""The Lambda functions and HTTP API routes as `template.yaml` declares them.

Read from the template (parameters at their defaults, `Globals.Function` applied, the batch settings
from the function's `AWS::Lambda::EventSourceMapping`) so the offline stack runs each handler with the
timeout, memory, batch size and concurrency it gets in AWS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3kp.local.cfn_template import load_template, parameter_defaults, sqs_event_sources


@dataclass(frozen=True)
class TemplateFunction:
    logical_id: str
    handler: str
    code_uri: str
    timeout_seconds: float
    memory_mb: int
    sqs_batch_size: int | None = None
    sqs_maximum_concurrency: int | None = None
    sqs_batching_window_seconds: float = 0.0


def template_functions(path: Path | None = None) -> dict[str, TemplateFunction]:
    """Every `AWS::Serverless::Function` of the template, by logical id."""
    template = load_template(path)
    defaults = parameter_defaults(template)
    globals_ = template.get("Globals", {}).get("Function", {})
    functions: dict[str, TemplateFunction] = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = globals_ | resource.get("Properties", {})
        # An explicit event source mapping, not a SAM `Events: SQS` (template.yaml says why).
        sqs = next(iter(sqs_event_sources(template, logical_id)), None)
        concurrency = (
            _resolve(sqs.get("ScalingConfig", {}).get("MaximumConcurrency"), defaults) if sqs else None
        )
        functions[logical_id] = TemplateFunction(
            logical_id=logical_id,
            handler=str(_resolve(properties["Handler"], defaults)),
            code_uri=str(_resolve(properties.get("CodeUri", "."), defaults)),
            timeout_seconds=float(_resolve(properties.get("Timeout", 3), defaults)),  # Lambda's defaults
            memory_mb=int(_resolve(properties.get("MemorySize", 128), defaults)),
            sqs_batch_size=int(_resolve(sqs.get("BatchSize", 10), defaults)) if sqs else None,
            sqs_maximum_concurrency=None if concurrency is None else int(concurrency),
            sqs_batching_window_seconds=float(
                _resolve(sqs.get("MaximumBatchingWindowInSeconds", 0), defaults)
            )
            if sqs
            else 0.0,
        )
    return functions


def function_with_handler(functions: dict[str, TemplateFunction], module: str) -> TemplateFunction:
    """The function whose handler lives in `module` (e.g. `ingest_handler`)."""
    for function in functions.values():
        if function.handler.rpartition(".")[0] == module:
            return function
    raise LookupError(f"template.yaml declares no function with a handler in {module}")


def http_api_routes(path: Path | None = None) -> list[str]:
    """Route keys (`GET /results/{id}`) of every HTTP API's OpenAPI definition in the template."""
    routes: list[str] = []
    for resource in load_template(path)["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::HttpApi":
            continue
        paths = resource.get("Properties", {}).get("DefinitionBody", {}).get("paths", {})
        for route_path, operations in paths.items():
            routes.extend(f"{method.upper()} {route_path}" for method in operations if method != "parameters")
    return routes


@dataclass(frozen=True)
class CorsConfiguration:
    """An HTTP API's `CorsConfiguration`, which API Gateway itself applies (preflights, response headers)."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False


def http_api_cors(path: Path | None = None) -> CorsConfiguration | None:
    """The `CorsConfiguration` of the template's HTTP API (parameters at their defaults); None without."""
    template = load_template(path)
    defaults = parameter_defaults(template)
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::HttpApi":
            continue
        cors = resource.get("Properties", {}).get("CorsConfiguration")
        if not isinstance(cors, dict):
            continue

        max_age = _resolve(cors.get("MaxAge"), defaults)
        return CorsConfiguration(
            allow_origins=_strings(cors, "AllowOrigins", defaults),
            allow_methods=tuple(method.upper() for method in _strings(cors, "AllowMethods", defaults)),
            allow_headers=tuple(header.lower() for header in _strings(cors, "AllowHeaders", defaults)),
            expose_headers=tuple(header.lower() for header in _strings(cors, "ExposeHeaders", defaults)),
            max_age=None if max_age is None else int(max_age),
            allow_credentials=bool(_resolve(cors.get("AllowCredentials", False), defaults)),
        )
    return None


def _strings(mapping: dict[str, Any], name: str, defaults: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(_resolve(value, defaults)) for value in mapping.get(name, []))


def _resolve(value: Any, defaults: dict[str, Any]) -> Any:
    """A parameter reference becomes the parameter's default; anything else is returned as is."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return defaults.get(value["Ref"])
    return value
