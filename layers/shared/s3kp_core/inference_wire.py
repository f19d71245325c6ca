"""The wire shape of a Roboflow-compatible keypoint endpoint's 200 response, and its parser.

Field by field in docs/ingest-domain.md (from the hosted API's documentation and its official clients):
the self-hosted server names a label `class`, the hosted docs `class_name`; unknown fields are ignored.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Annotated

import msgspec

from s3kp_core import errors
from s3kp_core.errors import PermanentError
from s3kp_core.results import Keypoint, Prediction

# msgspec rather than pydantic for the ingest's cold start (docs/ingest-cold-start.md). Lax conversion, as
# a JSON client expects: 10.0 is an int. No infinity or NaN (Python's json module accepts both literals):
# a finite float is one within the largest float's bounds, which NaN is not either.
Finite = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
Size = Annotated[float, msgspec.Meta(ge=0, le=sys.float_info.max)]
_NOT_FINITE = re.compile(r"Expected `float` [<>]=? -?1\.7976931348623157e\+308")


@dataclass(frozen=True)
class ParsedResponse:
    predictions: tuple[Prediction, ...]
    image_width: int | None
    image_height: int | None
    inference_id: str | None
    server_time_ms: float | None


class _WireKeypoint(msgspec.Struct):
    x: Finite
    y: Finite
    confidence: Finite
    class_id: int | None = None
    # The self-hosted server names the label `class`, the hosted docs `class_name`: accept either.
    label: str | None = msgspec.field(default=None, name="class")
    class_name: str | None = None


class _WirePrediction(msgspec.Struct):
    x: Finite
    y: Finite
    width: Size
    height: Size
    confidence: Finite
    # `class` or `class_name`, one of them required (msgspec has one name per field).
    label: str | msgspec.UnsetType = msgspec.field(default=msgspec.UNSET, name="class")
    class_name: str | msgspec.UnsetType = msgspec.UNSET
    class_id: int = -1
    detection_id: str | None = None
    keypoints: list[_WireKeypoint] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.label is msgspec.UNSET and self.class_name is msgspec.UNSET:
            raise ValueError("Object missing required field `class`")  # msgspec's own wording: see _problem

    @property
    def name(self) -> str:
        return self.label if isinstance(self.label, str) else str(self.class_name)


class _WireImage(msgspec.Struct):
    width: Annotated[int, msgspec.Meta(gt=0)]
    height: Annotated[int, msgspec.Meta(gt=0)]


class _WireResponse(msgspec.Struct):
    predictions: list[_WirePrediction]
    image: _WireImage | None = None
    inference_id: str | None = None
    time: Finite | None = None


def parse_response(payload: object) -> ParsedResponse:
    """The predictions and metadata of a 200 response's JSON.

    Unknown fields are ignored and optional ones may be missing; a keypoint without `class_id` takes
    its position in the list. Raises PermanentError(inference_bad_response) for any other shape, naming
    the first field that breaks the contract.
    """
    try:
        wire = msgspec.convert(payload, _WireResponse, strict=False)
    except msgspec.ValidationError as error:
        raise PermanentError(
            errors.INFERENCE_BAD_RESPONSE, f"the response does not follow the contract: {_problem(error)}"
        ) from None
    predictions = tuple(
        Prediction(
            x=p.x,
            y=p.y,
            width=p.width,
            height=p.height,
            confidence=p.confidence,
            class_name=p.name,
            class_id=p.class_id,
            detection_id=p.detection_id,
            keypoints=tuple(_keypoint(kp, index) for index, kp in enumerate(p.keypoints)),
        )
        for p in wire.predictions
    )
    return ParsedResponse(
        predictions=predictions,
        image_width=wire.image.width if wire.image else None,
        image_height=wire.image.height if wire.image else None,
        inference_id=wire.inference_id,
        server_time_ms=wire.time * 1000 if wire.time is not None else None,
    )


def _problem(error: msgspec.ValidationError) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.predictions[0].x`" as "predictions.0.x: Expected
    `int`, got `str`" (the field path first, dotted; "body" for the document itself)."""
    message, _, at = str(error).partition(" - at `$")
    path = re.sub(r"\[(\d+)\]", r".\1", at.rstrip("`")).strip(".")
    missing = re.fullmatch(r"Object missing required field `(.+)`", message)
    if missing:
        path, message = ".".join(part for part in (path, missing.group(1)) if part), "Field required"
    message = _NOT_FINITE.sub("Expected a finite number", message)
    return f"{path or 'body'}: {message}"


def _keypoint(wire: _WireKeypoint, index: int) -> Keypoint:
    slot = wire.class_id if wire.class_id is not None else index
    name = wire.label or wire.class_name or str(slot)
    return Keypoint(x=wire.x, y=wire.y, confidence=wire.confidence, class_id=slot, name=name)
