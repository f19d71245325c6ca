"""Reading the query string of Roboflow's v0 route (`POST /{project}/{version}?confidence=…`).

Two readers, one set of rules (`params.v0_params`):

- `read_plain_query`: only values in a plain form, read to exactly what FastAPI's validation would read
  (the local server's fast path answers those itself and hands anything else to FastAPI);
- `read_query`: every spelling the route's validation accepts (pydantic's lax reading of numbers and
  booleans), with FastAPI's 422 detail for a value it refuses: the InferenceFunction, which has no
  FastAPI in front of it.

Both read a query string as Starlette does (latin-1, `parse_qsl`, the last of a repeated name wins).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from s3kp_models import params as rf

MAX_DETECTIONS = 10_000  # the route's limits (the local server's FastAPI route declares the same)
MAX_STROKE = 50

# A subset of what pydantic accepts, read to the same value: anything else goes to FastAPI.
_PLAIN_NUMBER = re.compile(r"\d{1,9}(?:\.\d{1,9})?", re.ASCII)  # ASCII: pydantic reads no other digits
_PLAIN_INTEGER = re.compile(r"[1-9]\d{0,4}", re.ASCII)
_PLAIN_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
# pydantic's lax booleans (case-insensitive).
_BOOLEANS = {
    **dict.fromkeys(("1", "on", "t", "true", "y", "yes"), True),
    **dict.fromkeys(("0", "off", "f", "false", "n", "no"), False),
}
_FORMATS = {output.value: output for output in rf.OutputFormat}
# pydantic's lax integers: ASCII digits (underscores between them), a sign, a fraction of zeros, spaces.
_LAX_INTEGER = re.compile(r"\s*([+-]?[0-9]+(?:_[0-9]+)*)(?:\.0+)?\s*", re.ASCII)
_FLOAT_PARSING = "Input should be a valid number, unable to parse string as a number"
_INT_PARSING = "Input should be a valid integer, unable to parse string as an integer"


@dataclass(frozen=True)
class V0Query:
    params: rf.InferenceParams
    api_key: str | None  # the caller's, if it sent one (never logged)
    image_url: str | None  # `image=<url>`: fetch this instead of reading the body


class QueryInvalid(Exception):
    """A query value the route refuses; `detail` is FastAPI's 422 body (`{"detail": detail}`)."""

    status_code = 422

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail))
        self.detail = detail


def _query(query_string: bytes) -> dict[str, str]:
    return dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))


# --- the plain reader --------------------------------------------------------------------------------


class _NotPlain(Exception):
    """A parameter the plain reader does not read itself: FastAPI validates it (and may answer 422)."""


def _plain_number(value: str | None) -> float | None:
    if value is None:
        return None
    if not _PLAIN_NUMBER.fullmatch(value):
        raise _NotPlain
    return float(value)  # digits only, so >= 0 as the route requires


def _plain_integer(value: str | None, maximum: int) -> int | None:
    if value is None:
        return None
    if not _PLAIN_INTEGER.fullmatch(value) or int(value) > maximum:
        raise _NotPlain
    return int(value)  # >= 1: no leading zero, no sign


def _plain_boolean(value: str | None) -> bool:
    if value is None:
        return False
    try:
        return _PLAIN_BOOLEANS[value]
    except KeyError:
        raise _NotPlain from None


def _plain_output(value: str | None) -> rf.OutputFormat:
    if value is None:
        return rf.OutputFormat.JSON
    try:
        return _FORMATS[value]
    except KeyError:
        raise _NotPlain from None


def read_plain_query(query_string: bytes) -> V0Query | None:
    """The query when every parameter is in plain form, else None (FastAPI reads it then)."""
    get = _query(query_string).get
    try:
        params = rf.v0_params(
            confidence=_plain_number(get("confidence")),
            overlap=_plain_number(get("overlap")),
            classes=get("classes"),
            keypoint_confidence=_plain_number(get("keypoint_confidence")),
            max_detections=_plain_integer(get("max_detections"), MAX_DETECTIONS) or rf.DEFAULT_MAX_DETECTIONS,
            output=_plain_output(get("format")),
            labels=_plain_boolean(get("labels")),
            stroke=_plain_integer(get("stroke"), MAX_STROKE),
        )
    except _NotPlain:
        return None
    return V0Query(params, get("api_key"), get("image"))


# --- the full reader ---------------------------------------------------------------------------------


class _Reader:
    """Reads each parameter as the route's validation does, collecting FastAPI-shaped errors."""

    def __init__(self, query: dict[str, str]) -> None:
        self.query = query
        self.errors: list[dict[str, Any]] = []

    def _error(self, name: str, kind: str, message: str) -> None:
        self.errors.append({"type": kind, "loc": ["query", name], "msg": message})

    def number(self, name: str) -> float | None:
        value = self.query.get(name)
        if value is None:
            return None
        try:
            if not value.isascii():  # Python reads other scripts' digits; pydantic does not
                raise ValueError(value)
            number = float(value.strip())
        except ValueError:
            self._error(name, "float_parsing", _FLOAT_PARSING)
            return None
        if math.isnan(number) or number < 0:  # pydantic's floats allow infinity (read as 100 %)
            self._error(name, "greater_than_equal", "Input should be greater than or equal to 0")
            return None
        return number

    def integer(self, name: str, maximum: int) -> int | None:
        value = self.query.get(name)
        if value is None:
            return None
        match = _LAX_INTEGER.fullmatch(value)
        try:
            if match is None:
                raise ValueError(value)
            number = int(match.group(1))
        except ValueError:
            self._error(name, "int_parsing", _INT_PARSING)
            return None
        if number < 1:
            self._error(name, "greater_than_equal", "Input should be greater than or equal to 1")
        elif number > maximum:
            self._error(name, "less_than_equal", f"Input should be less than or equal to {maximum}")
        else:
            return number
        return None

    def boolean(self, name: str) -> bool:
        value = self.query.get(name)
        if value is None:
            return False
        try:
            return _BOOLEANS[value.lower()]  # no spaces: pydantic reads " true" as no boolean
        except KeyError:
            self._error(name, "bool_parsing", "Input should be a valid boolean, unable to interpret input")
            return False

    def output(self) -> rf.OutputFormat:
        value = self.query.get("format")
        if value is None:
            return rf.OutputFormat.JSON
        try:
            return _FORMATS[value]
        except KeyError:
            *first, last = (f"'{name}'" for name in _FORMATS)
            self._error("format", "enum", f"Input should be {', '.join(first)} or {last}")
            return rf.OutputFormat.JSON


def read_query(query_string: bytes) -> V0Query:
    """Every parameter, read as the local server's v0 route reads it; raises QueryInvalid (422)."""
    query = _query(query_string)
    reader = _Reader(query)
    confidence = reader.number("confidence")
    overlap = reader.number("overlap")
    keypoint_confidence = reader.number("keypoint_confidence")
    max_detections = reader.integer("max_detections", MAX_DETECTIONS)
    output = reader.output()
    labels = reader.boolean("labels")
    stroke = reader.integer("stroke", MAX_STROKE)
    if reader.errors:
        raise QueryInvalid(reader.errors)
    params = rf.v0_params(
        confidence=confidence,
        overlap=overlap,
        classes=query.get("classes"),
        keypoint_confidence=keypoint_confidence,
        max_detections=max_detections or rf.DEFAULT_MAX_DETECTIONS,
        output=output,
        labels=labels,
        stroke=stroke,
    )
    return V0Query(params, query.get("api_key"), query.get("image"))
