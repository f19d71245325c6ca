"""Settings from environment variables, validated once at cold start: the mechanism both functions use.

Each function describes its settings as a pydantic model whose fields are aliased to the variable names
(`env("NAME")`), so a bad value fails the cold start with a message naming the variable, never echoing
a secret's value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

SettingsModel = TypeVar("SettingsModel", bound=BaseModel)


class ConfigurationError(RuntimeError):
    """A setting is missing or invalid; the message names it."""


def env(name: str) -> Any:
    """Field metadata: the variable name is the alias, so validation errors name the variable."""
    return Field(validation_alias=AliasChoices(name))


class EnvironmentSettings(BaseModel):
    """A function's settings: the one validated object every domain setting is derived from.

    Each function loads its subclass once per container through `from_environment()` (its dependencies
    module caches it; its handler calls that at import, so a bad variable fails the cold start).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Named in the error message ("invalid ingest configuration: ...").
    description: ClassVar[str] = "function"
    # Variables whose values an error message must never echo.
    secret_variables: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Validate `environ` (default: the process environment); raise ConfigurationError naming every
        bad variable."""
        return load_from_environment(
            cls, what=cls.description, secret_names=cls.secret_variables, environ=environ
        )


def load_from_environment(
    model: type[SettingsModel],
    *,
    what: str,
    secret_names: frozenset[str] = frozenset(),
    environ: Mapping[str, str] | None = None,
) -> SettingsModel:
    """Validate the environment into `model`; raise ConfigurationError naming every bad setting."""
    source = os.environ if environ is None else environ
    # An empty variable means "not set" (templates pass "" for optional parameters).
    present = {name: value for name, value in source.items() if value.strip() != ""}
    try:
        return model.model_validate(present)
    except ValidationError as error:
        raise ConfigurationError(describe(error, what=what, secret_names=secret_names)) from None


def describe(error: ValidationError, *, what: str, secret_names: frozenset[str] = frozenset()) -> str:
    """One line naming each bad variable and, unless it is a secret, the value it had."""
    problems = []
    for issue in error.errors(include_url=False, include_input=True):
        name = ".".join(str(part) for part in issue["loc"]) or "settings"
        message = issue["msg"].removeprefix("Value error, ")
        if issue["type"] == "missing":
            problems.append(f"{name} is required")
        elif name in secret_names or not issue["loc"]:
            problems.append(f"{name}: {message}")
        else:
            problems.append(f"{name}={issue.get('input')!r}: {message}")
    return f"invalid {what} configuration: " + "; ".join(problems)
