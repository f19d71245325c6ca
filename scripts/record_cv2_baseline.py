"""Record today's keypoints (pipelines on cv2.warpAffine) into tests/fixtures/cv2_warp_baseline.json.

Run once, before the warp moved to numpy (issue 20), with the OpenCV the fidelity suite passes on
(opencv-python-headless 4.12.0.88): the fixture is the yardstick the numpy warp is held to
(tests/integration/test_warp_baseline.py). Re-running it after the change would measure the new code
against itself, so the script refuses to run without cv2 4.12.

    PYTHONPATH=layers/shared:src .venv/bin/python scripts/record_cv2_baseline.py
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from s3kp.model_server.pipelines.base import Detection, KeypointPipeline
from s3kp.model_server.pipelines.detector import SsdDetector
from s3kp.model_server.pipelines.hands import HandPipeline
from s3kp.model_server.pipelines.registry import MODEL_IDS, load_pipelines
from s3kp.samples import SAMPLE_IMAGES

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "cv2_warp_baseline.json"
REFERENCE = json.loads((ROOT / "tests" / "fixtures" / "mediapipe_reference.json").read_text())
REQUEST = {"confidence": 0.1, "iou_threshold": 0.3, "max_detections": 20}


def rgb(name: str) -> np.ndarray:
    return np.asarray(SAMPLE_IMAGES[name]().convert("RGB"))


def detections(found: list[Detection]) -> list[dict[str, Any]]:
    return [
        {
            "box": [round(v, 3) for v in (d.x, d.y, d.width, d.height)],
            "confidence": round(d.confidence, 6),
            "keypoints": [[round(k.x, 3), round(k.y, 3)] for k in d.keypoints],
            "keypoint_confidences": [round(k.confidence, 6) for k in d.keypoints],
        }
        for d in found
    ]


def main() -> None:
    if cv2.__version__ != "4.12.0":
        raise SystemExit(f"cv2 {cv2.__version__}: the baseline is cv2 4.12's answers")
    pipelines: dict[str, KeypointPipeline] = load_pipelines()
    models: dict[str, dict[str, Any]] = {
        model_id: {
            name: detections(pipelines[model_id].predict(rgb(name), **REQUEST)) for name in SAMPLE_IMAGES
        }
        for model_id in MODEL_IDS
    }
    composite = rgb("people_side_by_side")
    halves, alone = [], []
    for left, top, right, bottom in REFERENCE["settings"]["person_crops"]["people_side_by_side"]:
        half = np.ascontiguousarray(composite[top:bottom, left:right])
        halves.append(detections(pipelines["pose/1"].predict(half, **REQUEST)))
        canvas = np.zeros_like(composite)
        canvas[top:bottom, left:right] = composite[top:bottom, left:right]
        alone.append(detections(pipelines["pose/1"].predict(canvas, **REQUEST)))
    hands = pipelines["hands/1"]
    assert isinstance(hands, HandPipeline)
    thresholds = REFERENCE["settings"]["low_threshold_hands"]
    lowered = dataclasses.replace(hands.detector.spec, min_score=thresholds["min_detection_confidence"])
    permissive = HandPipeline(
        hands.info,
        SsdDetector(lowered, hands.detector.pool),
        hands.landmarks,
        min_presence=thresholds["min_tracking_confidence"],
    )
    low_hands = {
        name: detections(
            permissive.predict(rgb(name), **{**REQUEST, "confidence": thresholds["min_detection_confidence"]})
        )
        for name in REFERENCE["low_threshold_hands"]
    }
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    document = {
        "about": (
            "Keypoints of our pipelines with cv2.warpAffine (opencv-python-headless 4.12.0.88) before the "
            "warp moved to numpy (issue 20): the yardstick of tests/integration/test_warp_baseline.py. "
            f"Recorded by scripts/record_cv2_baseline.py at commit {commit}; not to be regenerated."
        ),
        "versions": {"opencv": cv2.__version__, "numpy": np.__version__},
        "request": REQUEST,
        "models": models,
        "pose_composite_halves": halves,
        "pose_composite_alone": alone,
        "low_threshold_hands": low_hands,
    }
    FIXTURE.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    main()
