"""What the fast pixel path costs in accuracy: keypoints from the prepared (draft-decoded, box-reduced)
JPEG, rescaled to the original, against the same model's answer on the full-resolution image.

The model is the real faces/1 pipeline (BlazeFace short range) on the sample photos upscaled to 12 MP
class sizes with sensor-like grain; the bound is 1 % of the picture's long side (issue 9).
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image
from s3kp_core.imaging import prepare_for_inference
from s3kp_core.rescale import rescale
from s3kp_core.results import Keypoint, Prediction
from s3kp_models.pipelines.base import KeypointPipeline
from s3kp_models.pipelines.registry import load_pipelines

from s3kp import samples
from s3kp.paths import model_dir

TOLERANCE = 0.01  # of the long side
PHOTOS = [
    ("astronaut", 4000),  # 4000x4000: 1/4 draft (1000 px) sent as decoded
    ("grace_hopper", 4000),  # 3000x4000 portrait
    ("astronaut", 3464),  # 12 MP: 1/2 draft (1732 px, kept for the annotated copy), box-reduced to 866
    ("people_side_by_side", 4000),
]


@pytest.fixture(scope="module")
def faces() -> KeypointPipeline:
    return load_pipelines(model_dir())["faces/1"]


def grainy_photo(name: str, long_side: int) -> bytes:
    upscaled = np.asarray(Image.open(io.BytesIO(samples.upscaled_jpeg(name, long_side))), dtype=np.float32)
    grain = np.random.default_rng(7).normal(0.0, 6.0, upscaled.shape).astype(np.float32)
    return samples.encode(Image.fromarray(np.clip(upscaled + grain, 0, 255).astype(np.uint8)))


def detect(pipeline: KeypointPipeline, image: Image.Image) -> list[Prediction]:
    found = pipeline.predict(np.asarray(image), confidence=0.5, iou_threshold=0.3, max_detections=20)
    return [
        Prediction(
            x=d.x,
            y=d.y,
            width=d.width,
            height=d.height,
            confidence=d.confidence,
            class_name=d.class_name,
            class_id=d.class_id,
            detection_id=str(index),
            keypoints=tuple(
                Keypoint(x=k.x, y=k.y, confidence=k.confidence, class_id=k.class_id, name=k.name)
                for k in d.keypoints
            ),
        )
        for index, d in enumerate(found)
    ]


def worst_keypoint_distance(ours: list[Prediction], reference: list[Prediction]) -> float:
    worst = 0.0
    for prediction in ours:
        nearest = min(reference, key=lambda r: math.dist((r.x, r.y), (prediction.x, prediction.y)))
        expected: dict[int, Keypoint] = {k.class_id: k for k in nearest.keypoints}
        for keypoint in prediction.keypoints:
            target = expected[keypoint.class_id]
            worst = max(worst, math.dist((keypoint.x, keypoint.y), (target.x, target.y)))
    return worst


@pytest.mark.parametrize(("name", "long_side"), PHOTOS)
def test_keypoints_from_the_prepared_jpeg_stay_within_1_percent_of_the_full_resolution_answer(
    faces: KeypointPipeline, name: str, long_side: int
) -> None:
    data = grainy_photo(name, long_side)
    full = Image.open(io.BytesIO(data)).convert("RGB")

    prepared, _ = prepare_for_inference(data, max_side=1024, max_pixels=100_000_000, decode_side=1024)
    sent = Image.open(io.BytesIO(prepared.jpeg)).convert("RGB")
    ours = list(rescale(detect(faces, sent), prepared.scale_x, prepared.scale_y))
    reference = detect(faces, full)

    assert max(prepared.sent_width, prepared.sent_height) <= 1024
    assert len(ours) == len(reference) >= 1
    distance = worst_keypoint_distance(ours, reference)
    assert distance <= TOLERANCE * max(full.size), f"{distance:.1f} px off on {full.size}"
