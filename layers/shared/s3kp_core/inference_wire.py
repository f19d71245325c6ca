"""The wire shape of a Roboflow-compatible keypoint endpoint's 200 response, and its parser.

Field by field in docs/ingest-domain.md (from the hosted API's documentation and its official clients):
the self-hosted server names a label `class`, the hosted docs `class_name`; unknown fields are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from s3kp_core import errors
from s3kp_core.errors import PermanentError
from s3kp_core.results import Keypoint, Prediction


@dataclass(frozen=True)
class ParsedResponse:
    predictions: tuple[Prediction, ...]
    image_width: int | None
    image_height: int | None
    inference_id: str | None
    server_time_ms: float | None


class _WireModel(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class _WireKeypoint(_WireModel):
    x: float
    y: float
    confidence: float
    class_id: int | None = None
    # The self-hosted server names the label `class`, the hosted docs `class_name`: accept either.
    name: str | None = Field(default=None, validation_alias=AliasChoices("class", "class_name"))


class _WirePrediction(_WireModel):
    x: float
    y: float
    width: float = Field(ge=0)
    height: float = Field(ge=0)
    confidence: float
    class_name: str = Field(validation_alias=AliasChoices("class", "class_name"))
    class_id: int = -1
    detection_id: str | None = None
    keypoints: list[_WireKeypoint] = Field(default_factory=list)


class _WireImage(_WireModel):
    width: int = Field(gt=0)
    height: int = Field(gt=0)


class _WireResponse(_WireModel):
    predictions: list[_WirePrediction]
    image: _WireImage | None = None
    inference_id: str | None = None
    time: float | None = None


def parse_response(payload: object) -> ParsedResponse:
    """The predictions and metadata of a 200 response's JSON.

    Unknown fields are ignored and optional ones may be missing; a keypoint without `class_id` takes
    its position in the list. Raises PermanentError(inference_bad_response) for any other shape.
    """
    try:
        wire = _WireResponse.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors()[:3]
        )
        more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise PermanentError(
            errors.INFERENCE_BAD_RESPONSE, f"the response does not follow the contract: {problems}{more}"
        ) from None
    predictions = tuple(
        Prediction(
            x=p.x,
            y=p.y,
            width=p.width,
            height=p.height,
            confidence=p.confidence,
            class_name=p.class_name,
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


def _keypoint(wire: _WireKeypoint, index: int) -> Keypoint:
    slot = wire.class_id if wire.class_id is not None else index
    name = wire.name or str(slot)
    return Keypoint(x=wire.x, y=wire.y, confidence=wire.confidence, class_id=slot, name=name)
