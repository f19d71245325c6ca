"""How pydantic sees the result types (msgspec Structs): for the API's validation and OpenAPI document.

pydantic does not support msgspec Structs, and we found no maintained bridge, so each result type answers
pydantic's `__get_pydantic_core_schema__` here, on first use: pydantic describes an equivalent
dataclass (same name, docstring, fields, defaults, and each field's `doc()` as the dataclass field
metadata pydantic reads `description` and `examples` from), so the OpenAPI document is what it was when
the result types were dataclasses. Instances of the type pass validation as they are (as dataclass
instances did: pydantic does not revalidate them); anything else is validated as the dataclass would be,
then made the Struct. msgspec serializes them (`to_builtins`): the JSON pydantic wrote for the
dataclasses, except that a float field holding an int (never the case for data read back or computed
here) is written `30` rather than `30.0`.

Only the API imports this module (through the hook, when pydantic first asks); the ingest function never
does, so it never loads pydantic.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, get_args, get_origin

import msgspec
from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

_EQUIVALENTS: dict[type[msgspec.Struct], type] = {}


def core_schema_of(
    struct_type: type[msgspec.Struct], handler: GetCoreSchemaHandler
) -> core_schema.CoreSchema:
    """The core schema of a result type (pydantic's `__get_pydantic_core_schema__`)."""
    described = handler.generate_schema(dataclass_equivalent(struct_type))
    names = struct_type.__struct_fields__

    def validate(value: Any, validate_as_equivalent: core_schema.ValidatorFunctionWrapHandler) -> Any:
        if isinstance(value, struct_type):
            return value
        validated = validate_as_equivalent(value)
        return struct_type(**{name: getattr(validated, name) for name in names})

    # Serialized by msgspec, the whole tree at once: ISO-8601 datetimes with a `Z`, enums by value, as
    # pydantic writes them. (Building equivalent instances for pydantic to walk cost 2.8x the dataclasses'
    # time on a 300-detection result; this costs 1.8x: pydantic still walks the builtins it returns.)
    # Without a `return_schema`, pydantic documents the serialized form with the wrapped schema.
    serialization = core_schema.plain_serializer_function_ser_schema(msgspec.to_builtins)
    return core_schema.no_info_wrap_validator_function(validate, described, serialization=serialization)


def dataclass_equivalent(struct_type: type[msgspec.Struct]) -> type:
    """A keyword-only dataclass with `struct_type`'s name, docstring, fields and documentation.

    Only pydantic reads it: it generates no methods (no `__init__`, `__eq__`, `__repr__`, frozen
    `__setattr__`), whose compilation would cost the API's first request ~0.8 ms a type; pydantic sets a
    validated instance's fields itself.
    """
    if struct_type not in _EQUIVALENTS:
        fields = [_dataclass_field(info) for info in msgspec.structs.fields(struct_type)]
        equivalent = dataclasses.make_dataclass(
            struct_type.__name__,
            fields,
            init=False,
            repr=False,
            eq=False,
            match_args=False,
            kw_only=True,
            module=struct_type.__module__,
        )
        equivalent.__qualname__ = struct_type.__qualname__
        equivalent.__doc__ = struct_type.__doc__
        _EQUIVALENTS[struct_type] = equivalent
    return _EQUIVALENTS[struct_type]


def _dataclass_field(info: msgspec.structs.FieldInfo) -> tuple[str, Any, Any]:
    annotation, documentation = _documented(info.type)
    if info.default is not msgspec.NODEFAULT:
        field = dataclasses.field(default=info.default, metadata=documentation)
    elif info.default_factory is not msgspec.NODEFAULT:
        field = dataclasses.field(default_factory=info.default_factory, metadata=documentation)
    else:
        field = dataclasses.field(metadata=documentation)
    return info.name, annotation, field


def _documented(annotation: Any) -> tuple[Any, dict[str, Any]]:
    """The type without its `Annotated` wrapper, and the `description`/`examples` its `doc()` gave."""
    if get_origin(annotation) is not Annotated:
        return annotation, {}
    base, *extras = get_args(annotation)
    documentation: dict[str, Any] = {}
    for meta in extras:
        if isinstance(meta, msgspec.Meta):
            if meta.description is not None:
                documentation["description"] = meta.description
            if meta.examples is not None:
                documentation["examples"] = list(meta.examples)
    return base, documentation
