"""The 200 response's wire shape (`s3kp_core.inference_wire`): what is accepted, what is refused."""

from __future__ import annotations

import pytest
from s3kp_core import errors
from s3kp_core.errors import PermanentError
from s3kp_core.inference_wire import parse_response

from tests.unit.s3kp_core.inference.builders import (
    OK_BODY,
)

# --- parse_response ----------------------------------------------------------------------------------


def test_parse_accepts_both_keypoint_label_spellings() -> None:
    parsed = parse_response(OK_BODY)

    assert [kp.name for kp in parsed.predictions[0].keypoints] == ["nose", "left_eye"]


def test_parse_tolerates_missing_optional_fields() -> None:
    """GIVEN a minimal prediction: no class_id, detection_id, keypoint class_id or label."""
    payload = {
        "predictions": [
            {"x": 1, "y": 2, "width": 3, "height": 4, "confidence": 0.5, "class_name": "hand",
             "keypoints": [{"x": 1, "y": 1, "confidence": 0.9}, {"x": 2, "y": 2, "confidence": 0.8}]},
        ]
    }  # fmt: skip

    parsed = parse_response(payload)

    (prediction,) = parsed.predictions
    assert (prediction.class_name, prediction.class_id, prediction.detection_id) == ("hand", -1, None)
    assert [(kp.class_id, kp.name) for kp in prediction.keypoints] == [(0, "0"), (1, "1")]
    assert (parsed.image_width, parsed.image_height, parsed.inference_id, parsed.server_time_ms) == (
        None,
    ) * 4


def test_parse_accepts_the_hosted_label_spelling_and_integral_floats_for_integers() -> None:
    payload = {
        "predictions": [{"x": 1, "y": 2, "width": 3, "height": 4, "confidence": 0.5, "class_name": "hand",
                         "class_id": 2.0}],
        "image": {"width": 640.0, "height": 480},
    }  # fmt: skip

    parsed = parse_response(payload)

    assert (parsed.predictions[0].class_name, parsed.predictions[0].class_id) == ("hand", 2)
    assert (parsed.image_width, parsed.image_height) == (640, 480)


def wire_prediction(**overrides: object) -> dict[str, object]:
    return {"x": 1, "y": 1, "width": 1, "height": 1, "confidence": 1, "class": "a"} | overrides


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ([], "body"),
        ({"message": "ok"}, "predictions: Field required"),
        ({"predictions": {"x": 1}}, "predictions"),
        ({"predictions": [wire_prediction(x="left")]}, "predictions.0.x"),
        ({"predictions": [wire_prediction(x=float("nan"))]}, "predictions.0.x: Expected a finite number"),
        ({"predictions": [wire_prediction(height=float("inf"))]}, "predictions.0.height"),
        (
            {"predictions": [wire_prediction(keypoints=[{"x": 1, "y": 1, "confidence": float("-inf")}])]},
            "predictions.0.keypoints.0.confidence",
        ),
        (
            {"predictions": [{"x": 1, "y": 1, "width": 1, "height": 1, "confidence": 1}]},
            "predictions.0.class",
        ),
        ({"predictions": [wire_prediction(width=-5)]}, "predictions.0.width"),
        ({"predictions": [wire_prediction(**{"class": None})]}, "predictions.0.class"),
        ({"predictions": [wire_prediction(keypoints=[{"x": 1}])]}, "predictions.0.keypoints.0.y"),
        ({"predictions": [], "image": {"width": 0, "height": 10}}, "image.width"),
    ],
)
def test_parse_rejects_malformed_answers_with_a_message_naming_the_field(
    payload: object, problem: str
) -> None:
    with pytest.raises(PermanentError) as raised:
        parse_response(payload)

    assert raised.value.code == errors.INFERENCE_BAD_RESPONSE
    assert problem in raised.value.message
