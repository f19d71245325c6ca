"""Specification of how pydantic sees the result types (msgspec Structs): as their equivalent dataclasses."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import pytest
from pydantic import TypeAdapter, ValidationError
from s3kp_core.results import Keypoint, Prediction, Reason, ResultRecord, SourceObject, Status

MOMENT = datetime(2026, 1, 1, tzinfo=UTC)


def prediction() -> Prediction:
    keypoint = Keypoint(x=1.5, y=2.0, confidence=0.9, class_id=0, name="nose")
    return Prediction(
        x=10,
        y=20,
        width=30,
        height=40,
        confidence=0.8,
        class_name="person",
        class_id=0,
        keypoints=(keypoint,),
    )


def test_an_instance_passes_validation_as_it_is() -> None:
    value = prediction()
    assert TypeAdapter(Prediction).validate_python(value) is value


def test_plain_data_is_validated_into_the_struct_with_its_nested_structs() -> None:
    plain = json.loads(TypeAdapter(Prediction).dump_json(prediction()))
    validated = TypeAdapter(Prediction).validate_python(plain)
    assert isinstance(validated, Prediction)
    assert isinstance(validated.keypoints[0], Keypoint)
    assert validated == Prediction(**{**plain, "keypoints": (prediction().keypoints[0],)})


def test_an_invalid_field_is_named_by_its_path() -> None:
    plain = {"x": 1, "y": 2, "width": 3, "height": 4, "confidence": 0.5, "class_name": "p", "class_id": 0}
    with pytest.raises(ValidationError) as raised:
        TypeAdapter(Prediction).validate_python({**plain, "keypoints": [{"x": "left"}]})
    assert ("keypoints", 0, "x") in [error["loc"] for error in raised.value.errors()]


def test_serializing_writes_every_field_of_every_nested_result_type() -> None:
    record = ResultRecord(
        result_id="0" * 32,
        status=Status.FAILED,
        reason=Reason(code="image_undecodable", message="not an image"),
        source=SourceObject(bucket="b", key="k.jpg"),
        model_id="faces/1",
        created_at=MOMENT,
        updated_at=MOMENT,
        predictions=(prediction(),),
    )
    dumped = json.loads(TypeAdapter(ResultRecord).dump_json(record))
    assert dumped == json.loads(msgspec.json.encode(record))  # field for field, as msgspec writes it
    assert dumped["predictions"][0]["keypoints"][0] == {
        "x": 1.5,
        "y": 2.0,
        "confidence": 0.9,
        "class_id": 0,
        "name": "nose",
    }
    assert dumped["created_at"] == "2026-01-01T00:00:00Z"


def test_the_json_schema_is_the_equivalent_dataclass_s_with_each_field_s_documentation() -> None:
    schema = TypeAdapter(Prediction).json_schema(mode="serialization")
    assert schema == TypeAdapter(Prediction).json_schema(mode="validation")
    assert schema["title"] == "Prediction"
    assert schema["description"] == Prediction.__doc__
    assert schema["properties"]["class_name"]["description"] == "the detected class, e.g. `person`"
    # A nested result type is a reference, without a title of its own (as a dataclass field's would be).
    assert schema["properties"]["keypoints"]["items"] == {"$ref": "#/$defs/Keypoint"}
    reason = TypeAdapter(Reason).json_schema()
    assert reason["properties"]["code"]["examples"] == ["image_undecodable"]
