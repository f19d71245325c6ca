"""The wire shapes: what the server emits for a prediction is exactly what its OpenAPI schema says."""

from __future__ import annotations

from s3kp_core.results import Keypoint, Prediction
from s3kp_models.wire import wire_keypoint, wire_prediction

from s3kp.model_server.schemas import KeypointOut, PredictionOut

PREDICTION = Prediction(
    x=10.123456,
    y=20.5,
    width=30.0,
    height=40.004,
    confidence=0.876543,
    class_name="person",
    class_id=0,
    detection_id="d-1",
    keypoints=(Keypoint(x=1.005001, y=2.0, confidence=0.123456, class_id=3, name="left_eye"),),
)


def schema_fields(model: type[KeypointOut] | type[PredictionOut]) -> set[str]:
    return set(model.model_json_schema(by_alias=True)["properties"])


def test_a_keypoint_is_emitted_with_exactly_the_fields_of_its_schema() -> None:
    emitted = wire_keypoint(PREDICTION.keypoints[0])

    assert set(emitted) == schema_fields(KeypointOut)
    assert KeypointOut.model_validate(emitted).model_dump(by_alias=True) == emitted


def test_a_keypoints_name_travels_as_both_class_and_class_name_rounded_like_roboflow() -> None:
    assert wire_keypoint(PREDICTION.keypoints[0]) == {
        "x": 1.01,
        "y": 2.0,
        "confidence": 0.1235,
        "class_id": 3,
        "class": "left_eye",
        "class_name": "left_eye",
    }


def test_a_prediction_is_emitted_with_exactly_the_fields_of_its_schema() -> None:
    emitted = wire_prediction(PREDICTION)

    assert set(emitted) == schema_fields(PredictionOut)
    assert PredictionOut.model_validate(emitted).model_dump(by_alias=True) == emitted
    assert (emitted["x"], emitted["height"], emitted["confidence"]) == (10.12, 40.0, 0.8765)
    assert emitted["class"] == "person"
