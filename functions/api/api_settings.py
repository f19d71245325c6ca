"""The API function's configuration: environment variables, validated once at cold start.

Named `api_settings` (not `settings`) because both function directories share `sys.path` in tests and in
the offline stack. An invalid variable stops the cold start with a message naming it (never its value
when it is the cursor secret).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

# S3 accepts up to 7 days; a result link is meant to be followed now, so keep it short.
MAX_PRESIGN_EXPIRY_SECONDS = 3600


class ConfigurationError(RuntimeError):
    """A setting is missing or invalid; the message names it."""


def _env(name: str) -> Any:
    # The variable name is the alias, so validation errors name the variable, not the Python field.
    return Field(validation_alias=AliasChoices(name))


class ApiSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    results_table: Annotated[str, _env("RESULTS_TABLE"), Field(min_length=1)]
    presign_expiry_seconds: Annotated[
        int, _env("PRESIGN_EXPIRY_SECONDS"), Field(ge=1, le=MAX_PRESIGN_EXPIRY_SECONDS)
    ] = 300
    cursor_secret_arn: Annotated[str | None, _env("CURSOR_SECRET_ARN")] = None
    cursor_secret: Annotated[str | None, _env("CURSOR_SECRET"), Field(repr=False, min_length=16)] = None
    cursor_secret_cache_seconds: Annotated[int, _env("CURSOR_SECRET_CACHE_SECONDS"), Field(ge=0)] = 300
    cors_allow_origin: Annotated[str, _env("CORS_ALLOW_ORIGIN"), Field(min_length=1)] = "*"

    @model_validator(mode="after")
    def _one_cursor_key_source(self) -> Self:
        if not (self.cursor_secret_arn or self.cursor_secret):
            raise ValueError("set CURSOR_SECRET_ARN (Secrets Manager) or CURSOR_SECRET (local runs)")
        return self

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        source = os.environ if environ is None else environ
        values = {name: value for name, value in source.items() if value != ""}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ConfigurationError(_describe(error)) from None


def _describe(error: ValidationError) -> str:
    problems = []
    for detail in error.errors(include_input=False, include_url=False):
        location = ".".join(str(part) for part in detail["loc"]) or "settings"
        problems.append(f"{location}: {detail['msg']}")
    return "invalid API configuration: " + "; ".join(problems)
