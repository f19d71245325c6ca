"""The MediaPipe model files the pipelines load: names, where they come from, SHA-256, where they are.

They are taken out of the `mediapipe==0.10.14` wheel by the dev tooling (`s3kp models fetch`, run by
`make setup`, into `.cache/models`) and verified; `make build` copies the verified files into this
package's `model_files/` directory, which the models layer ships to Lambda (`PACKAGED_MODEL_DIR`).
Nothing downloads models at run time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

MEDIAPIPE_WHEEL_VERSION = "0.10.14"
# The built-in models, by Roboflow-style id (`pipelines.registry` builds them from the files below).
MODEL_IDS = ("faces/1", "faces/2", "pose/1", "hands/1")
# Where the models layer carries the files (`/opt/python/s3kp_models/model_files` in Lambda).
PACKAGED_MODEL_DIR = Path(__file__).resolve().parent / "model_files"


@dataclass(frozen=True)
class ModelFile:
    name: str  # file name in the cache
    wheel_member: str  # path inside the wheel
    sha256: str


MODEL_FILES: dict[str, ModelFile] = {
    f.name: f
    for f in (
        ModelFile(
            "face_detection_short_range.tflite",
            "mediapipe/modules/face_detection/face_detection_short_range.tflite",
            "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        ),
        ModelFile(
            "face_detection_full_range_sparse.tflite",
            "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
            "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        ),
        ModelFile(
            "pose_detection.tflite",
            "mediapipe/modules/pose_detection/pose_detection.tflite",
            "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        ),
        ModelFile(
            "pose_landmark_full.tflite",
            "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
            "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
        ),
        ModelFile(
            "palm_detection_full.tflite",
            "mediapipe/modules/palm_detection/palm_detection_full.tflite",
            "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
        ),
        ModelFile(
            "hand_landmark_full.tflite",
            "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
            "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
        ),
    )
}


class ModelFilesMissing(RuntimeError):
    """The model cache is empty or damaged; the message says how to fix it."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_path(name: str, directory: Path) -> Path:
    """The path of one model file in `directory`; raises ModelFilesMissing with a remedy if absent."""
    spec = MODEL_FILES[name]
    path = directory / spec.name
    if not path.is_file():
        remedy = (
            "build with `make build`, which copies the verified files into the models layer"
            if directory == PACKAGED_MODEL_DIR
            else "run `make setup` (or `s3kp models fetch`) to extract it from the "
            f"mediapipe=={MEDIAPIPE_WHEEL_VERSION} wheel"
        )
        raise ModelFilesMissing(f"model file {path} is missing: {remedy}")
    return path


def missing_or_corrupt(directory: Path) -> list[str]:
    """The names of the files absent from `directory` or whose SHA-256 is not the expected one."""
    bad = []
    for spec in MODEL_FILES.values():
        path = directory / spec.name
        if not path.is_file() or sha256_of(path) != spec.sha256:
            bad.append(spec.name)
    return bad


if __name__ == "__main__":  # the models layer's build checks what it ships (layers/models/Makefile)
    import sys

    damaged = missing_or_corrupt(Path(sys.argv[1]))
    if damaged:
        sys.exit(f"{', '.join(damaged)} missing or damaged in {sys.argv[1]}: build with `make build`")
