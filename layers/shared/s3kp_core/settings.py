"""Settings from environment variables, validated once at cold start: the mechanism both functions use.

A function declares its settings as a subclass of `EnvironmentSettings`, a msgspec Struct declared
`frozen=True, kw_only=True` (repeated on each subclass: type checkers read the options per class; a
dataclass would cost the cold start ~1 ms of generated methods per class). Each field names the variable
it is read from and may carry msgspec constraints:

    confidence: Annotated[float, env("CONFIDENCE"), Meta(ge=0, le=1)] = 0.4

`from_environment()` converts every variable on its own (msgspec, lax: "0.4" is a float), then builds the
object, whose `__post_init__` may check rules across variables. A bad value fails the cold start with one
message naming every bad variable, with its value unless it is declared `secret`.

Why a small mechanism of our own on top of msgspec rather than pydantic (or one `msgspec.convert` of the
whole environment): pydantic's import and model building were a fifth of the ingest function's cold
start (docs/ingest-cold-start.md); msgspec imports in a few milliseconds but stops at the first error,
and an operator fixing a stack's parameters should see every bad variable at once.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Self

import msgspec


class ConfigurationError(RuntimeError):
    """A setting is missing or invalid; the message names it."""


class Variable(msgspec.Struct, frozen=True):
    """Where a field's value comes from (the metadata `env()` puts in its annotation)."""

    name: str
    # Turns the variable's text into the value the field's type then checks (e.g. a comma-separated
    # list into a tuple); a ValueError's message is reported against the variable.
    parse: Callable[[str], object] | None = None
    # Its value never appears in an error message or the settings' repr.
    secret: bool = False


def env(name: str, *, parse: Callable[[str], object] | None = None, secret: bool = False) -> Variable:
    """Annotation metadata: the field is read from the environment variable `name`."""
    return Variable(name, parse, secret)


class Setting(msgspec.Struct, frozen=True):
    """One field of a settings class as `from_environment()` reads it (also what the template tests
    compare the template with)."""

    field: str
    variable: Variable
    # The field's type with its msgspec constraints, which the variable's (parsed) value must satisfy.
    type: Any
    default: Any = msgspec.NODEFAULT

    @property
    def required(self) -> bool:
        return self.default is msgspec.NODEFAULT

    def convert(self, text: str) -> object:
        """The value of the variable's `text`; raises ValueError or msgspec.ValidationError."""
        value: object = self.variable.parse(text) if self.variable.parse else text
        if isinstance(value, str) and not _accepts_text(self.type):
            value = value.strip()  # " 300" is a number, as in any shell
        return msgspec.convert(value, self.type, strict=False)


class EnvironmentSettings(msgspec.Struct, frozen=True, kw_only=True):
    """A function's settings: the one validated object every domain setting is derived from.

    Each function loads its subclass once per container through `from_environment()` (its dependencies
    module caches it; its handler calls that at import, so a bad variable fails the cold start).
    Subclasses are declared `frozen=True, kw_only=True`, as this base is (frozen: hashable, `lru_cache`
    keys).
    """

    # Named in the error message ("invalid ingest configuration: ...").
    description: ClassVar[str] = "function"

    def __repr__(self) -> str:
        shown = (
            f"{setting.field}={'***' if setting.variable.secret else repr(getattr(self, setting.field))}"
            for setting in self.settings()
        )
        return f"{type(self).__name__}({', '.join(shown)})"

    @classmethod
    def settings(cls) -> tuple[Setting, ...]:
        """Every field with the variable it is read from, in declaration order."""
        if cls not in _SETTINGS:  # read once per class, when first needed (its annotations are strings)
            _SETTINGS[cls] = _settings_of(cls)
        return _SETTINGS[cls]

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Validate `environ` (default: the process environment); raise ConfigurationError naming every
        bad variable."""
        source = os.environ if environ is None else environ
        values: dict[str, object] = {}
        problems: list[str] = []
        for setting in cls.settings():
            variable = setting.variable
            text = source.get(variable.name, "")
            if text.strip() == "":  # an empty variable means "not set" (templates pass "" for optional ones)
                if setting.required:
                    problems.append(f"{variable.name} is required")
                continue
            try:
                values[setting.field] = setting.convert(text)
            except (ValueError, msgspec.ValidationError) as error:
                shown = variable.name if variable.secret else f"{variable.name}={text!r}"
                problems.append(f"{shown}: {error}")
        if problems:
            raise ConfigurationError(f"invalid {cls.description} configuration: " + "; ".join(problems))
        try:
            return cls(**values)
        except ValueError as error:  # a rule across variables (`__post_init__`); it names them
            raise ConfigurationError(f"invalid {cls.description} configuration: {error}") from None


_SETTINGS: dict[type[EnvironmentSettings], tuple[Setting, ...]] = {}


def _settings_of(cls: type[EnvironmentSettings]) -> tuple[Setting, ...]:
    settings = []
    for field in msgspec.structs.fields(cls):
        annotation = field.type
        metadata = getattr(annotation, "__metadata__", ())
        variables = [item for item in metadata if isinstance(item, Variable)]
        if len(variables) != 1:
            raise TypeError(f"{cls.__name__}.{field.name}: annotate it with exactly one env(...)")
        constraints = [item for item in metadata if not isinstance(item, Variable)]
        base = typing.get_args(annotation)[0]
        checked = Annotated[tuple([base, *constraints])] if constraints else base
        default = field.default
        if field.default_factory is not msgspec.NODEFAULT:
            default = field.default_factory()
        settings.append(Setting(field.name, variables[0], checked, default))
    return tuple(settings)


def _accepts_text(annotation: Any) -> bool:
    """Whether a str is a valid value of `annotation` as it is (so it is passed on unstripped)."""
    if typing.get_origin(annotation) is Annotated:
        return _accepts_text(typing.get_args(annotation)[0])
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = typing.get_args(annotation) if union else ()
    return annotation is str or any(_accepts_text(option) for option in options)
