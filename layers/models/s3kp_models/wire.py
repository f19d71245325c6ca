"""The Roboflow response's predictions on the wire, built from the domain's `s3kp_core.results` types.

A prediction and its keypoints are the domain's `Prediction` / `Keypoint` (what the ingest function
stores) dressed for the Roboflow wire. The wire contract keeps both `class` and `class_name` for a
keypoint's name (the self-hosted server's field and the hosted docs' one), which the stored shape does
not: so the two stay two shapes, one derived from the other here. Plain dicts: cheaper on the hot path
than models (the local server's pydantic schemas describe them for OpenAPI, `s3kp.model_server.schemas`).
"""

from __future__ import annotations

from typing import Any

from s3kp_core import results

WireJSON = dict[str, Any]


def wire_prediction(prediction: results.Prediction) -> WireJSON:
    """One prediction as `PredictionOut` JSON: pixels to 0.01, confidences to 4 digits."""
    return {
        "x": round(prediction.x, 2),
        "y": round(prediction.y, 2),
        "width": round(prediction.width, 2),
        "height": round(prediction.height, 2),
        "class": prediction.class_name,
        "class_id": prediction.class_id,
        "confidence": round(prediction.confidence, 4),
        "detection_id": prediction.detection_id,
        "keypoints": [wire_keypoint(k) for k in prediction.keypoints],
    }


def wire_keypoint(keypoint: results.Keypoint) -> WireJSON:
    """One keypoint as `KeypointOut` JSON: its name under both `class` and `class_name`."""
    return {
        "x": round(keypoint.x, 2),
        "y": round(keypoint.y, 2),
        "confidence": round(keypoint.confidence, 4),
        "class_id": keypoint.class_id,
        "class": keypoint.name,
        "class_name": keypoint.name,
    }
