"""Query parameters of `POST /{project}/{version}`: Roboflow's reading rules and what reaches the model."""

from __future__ import annotations

import base64

import pytest
from s3kp_models.params import (
    class_names_from_csv,
    keypoint_threshold_from_roboflow,
    threshold_from_roboflow,
)

from s3kp import samples
from tests.unit.model_server.fake_pipeline import client_for

BODY = base64.b64encode(samples.encode(samples.astronaut().resize((64, 64)))).decode()
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def infer(query: str, **options: object):  # type: ignore[no-untyped-def]
    client, pipeline = client_for(**options)
    response = client.post(f"/fake/1?api_key=any&{query}", content=BODY, headers=FORM)
    return response, pipeline


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, 0.4),  # the default
        (0.4, 0.4),  # a fraction
        (40, 0.4),  # a percentage
        (1, 0.01),  # the quirk: 1 means 1 %
        (0.5, 0.5),
        (0.001, 0.01),  # raised to the floor
        (0, 0.01),
        (150, 1.0),  # over 100 % is clipped
    ],
)
def test_threshold_reads_values_of_one_and_above_as_percentages(value: float | None, expected: float) -> None:
    assert threshold_from_roboflow(value, 0.4) == pytest.approx(expected)


def test_keypoint_threshold_uses_the_same_percent_rule_but_no_floor() -> None:
    assert keypoint_threshold_from_roboflow(None) == 0.0
    assert keypoint_threshold_from_roboflow(0) == 0.0
    assert keypoint_threshold_from_roboflow(50) == pytest.approx(0.5)
    assert keypoint_threshold_from_roboflow(0.25) == pytest.approx(0.25)


def test_classes_csv_ignores_blanks_and_spaces() -> None:
    assert class_names_from_csv(" cat, dog ,,") == frozenset({"cat", "dog"})
    assert class_names_from_csv("") is None
    assert class_names_from_csv(None) is None


def test_confidence_and_overlap_percentages_reach_the_model_as_fractions() -> None:
    """GIVEN roboflow-python's 0-100 scale WHEN it posts THEN the model gets 0-1 thresholds."""
    response, pipeline = infer("confidence=50&overlap=30")
    assert response.status_code == 200
    assert pipeline.last_call["confidence"] == pytest.approx(0.5)
    assert pipeline.last_call["iou_threshold"] == pytest.approx(0.3)


def test_defaults_reach_the_model_when_no_parameter_is_sent() -> None:
    response, pipeline = infer("")
    assert response.status_code == 200
    assert pipeline.last_call["confidence"] == pytest.approx(0.4)
    assert pipeline.last_call["iou_threshold"] == pytest.approx(0.3)
    assert pipeline.last_call["max_detections"] == 300


def test_classes_keeps_only_the_named_classes() -> None:
    response, _ = infer("classes=dog")
    assert [p["class"] for p in response.json()["predictions"]] == ["dog"]


def test_unknown_class_name_keeps_nothing() -> None:
    response, _ = infer("classes=horse")
    assert response.status_code == 200
    assert response.json()["predictions"] == []


def test_keypoint_confidence_drops_weak_keypoints_instead_of_zeroing_them() -> None:
    response, _ = infer("keypoint_confidence=0.65")
    keypoints = [[k["class"] for k in p["keypoints"]] for p in response.json()["predictions"]]
    # the fake's keypoint confidences: cat (0.95, 0.2), dog (0.7, 0.6), cat (0.5, 0.5)
    assert keypoints == [["head"], ["head"], []]


def test_max_detections_limits_the_model_and_the_response() -> None:
    response, pipeline = infer("max_detections=1&confidence=0.01")
    assert pipeline.last_call["max_detections"] == 1
    assert len(response.json()["predictions"]) == 1


@pytest.mark.parametrize(
    "query",
    [
        "confidence=high",
        "confidence=-1",
        "overlap=abc",
        "max_detections=0",
        "max_detections=many",
        "format=png",
        "stroke=0",
        "labels=maybe",
        "keypoint_confidence=-0.5",
    ],
)
def test_malformed_parameter_is_422_with_a_detail_list(query: str) -> None:
    response, pipeline = infer(query)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    assert detail[0]["loc"][0] == "query"
    assert pipeline.calls == []


@pytest.mark.parametrize("spelling", ["true", "True", "1"])
def test_labels_accepts_python_and_json_booleans(spelling: str) -> None:
    """inference-sdk in v0 mode spells booleans Python-style."""
    response, _ = infer(f"labels={spelling}&format=image")
    assert response.status_code == 200
