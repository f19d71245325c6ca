"""Regenerate tests/fixtures/mediapipe_reference.json with MediaPipe's own Python API (`make reference`).

Our pipelines re-implement MediaPipe's graphs with LiteRT + numpy; this records where MediaPipe itself puts
the keypoints on the sample images, so the integration tests can hold us to it. MediaPipe is not a
project dependency: the script keeps a throwaway venv in .cache/mediapipe-ref (created on first use, reused
after), writes the samples as PNG files, and runs this same file there with `--worker`, which prints JSON.

The legacy API (`mp.solutions`) is used as documented: FaceDetection with model_selection 0 and 1, Pose
with static_image_mode and model_complexity=1, Hands with static_image_mode, model_complexity=1 and a
large max_num_hands. Legacy Pose follows one person, so for the two-person composite it runs on each
person's half (shifted back into the composite's pixels), on the whole composite (the best-scoring
person) and on the whole composite with everyone but one person blacked out (each person where the
composite puts them). The contract tests through roboflow-python, which re-encodes images as JPEG
quality 90, get references on those JPEGs (`client_jpeg`).

Only the standard library is imported at module level: the worker side runs in the reference venv.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "tests" / "fixtures" / "mediapipe_reference.json"
REFERENCE_VENV = ROOT / ".cache" / "mediapipe-ref"
MEDIAPIPE_VERSION = "0.10.14"
PYTHON_CANDIDATES = ("3.12", "3.11")  # mediapipe 0.10.14 ships wheels for these
PYENV_VERSIONS = Path("/root/.pyenv/versions")

IMAGES = ("astronaut", "camera", "grace_hopper", "china", "faces_2x2", "people_side_by_side")
# Which images each model is checked on. Legacy Pose sees one person per image, so the 2x2 grid of four
# astronauts has no per-person reference for it; people_side_by_side gets one per half.
MODEL_IMAGES: dict[str, tuple[str, ...]] = {
    "faces/1": IMAGES,
    "faces/2": IMAGES,
    "pose/1": ("astronaut", "camera", "grace_hopper", "china", "people_side_by_side"),
    "hands/1": IMAGES,
}
MIN_DETECTION_CONFIDENCE = 0.5  # the legacy API's defaults, also what the tests pass as `confidence`
MIN_TRACKING_CONFIDENCE = 0.5
MAX_NUM_HANDS = 20
# No sample shows a hand, so hands/1 also gets a geometry check: with a low palm threshold and no presence
# threshold MediaPipe still crops and runs the landmark model on whatever palm-like patches it finds, and
# our pipeline must put those (meaningless) landmarks exactly where it does.
LOW_THRESHOLD_HANDS = {"min_detection_confidence": 0.1, "min_tracking_confidence": 0.0}
# roboflow-python re-encodes every image as JPEG quality 90 before sending it, which alone moves pose
# landmarks by several pixels; so the contract tests through it compare with MediaPipe run on the pixels
# the server decodes from that JPEG (Pillow, as the server does), not on the PNG samples.
CLIENT_JPEG_QUALITY = 90
CLIENT_JPEG_MODEL_IMAGES: dict[str, tuple[str, ...]] = {
    "faces/1": ("astronaut", "grace_hopper"),
    "faces/2": ("astronaut", "grace_hopper"),
    "pose/1": ("astronaut", "grace_hopper"),
}


# --------------------------------------------------------------------------------------------------
# Project side (the project venv): samples, the reference venv, the fixture.
# --------------------------------------------------------------------------------------------------


def _find_python() -> Path:
    for version in PYTHON_CANDIDATES:
        for candidate in sorted(PYENV_VERSIONS.glob(f"{version}.*"), reverse=True):
            if (candidate / "bin" / "python").is_file():
                return candidate / "bin" / "python"
    if sys.version_info[:2] in ((3, 11), (3, 12)):
        return Path(sys.executable)
    raise SystemExit(f"need Python {' or '.join(PYTHON_CANDIDATES)} for mediapipe=={MEDIAPIPE_VERSION}")


def reference_python(*, create: bool = True) -> Path | None:
    """The reference venv's interpreter with mediapipe installed; created when missing if `create`."""
    python = REFERENCE_VENV / "bin" / "python"
    check = [str(python), "-c", f"import mediapipe; assert mediapipe.__version__ == '{MEDIAPIPE_VERSION}'"]
    if python.is_file() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    if not create:
        return None
    print(f"[reference] creating {REFERENCE_VENV} with mediapipe=={MEDIAPIPE_VERSION}", file=sys.stderr)
    subprocess.run([str(_find_python()), "-m", "venv", "--clear", str(REFERENCE_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"mediapipe=={MEDIAPIPE_VERSION}"], check=True
    )
    return python


def write_samples(directory: Path) -> dict[str, dict[str, Any]]:
    """Each sample as an RGB PNG; returns name -> {path, width, height}."""
    from s3kp.samples import SAMPLE_IMAGES

    written = {}
    for name in IMAGES:
        image = SAMPLE_IMAGES[name]().convert("RGB")
        path = directory / f"{name}.png"
        image.save(path)
        written[name] = {"path": str(path), "width": image.width, "height": image.height}
    return written


def write_client_jpegs(directory: Path) -> dict[str, str]:
    """Each sample as roboflow-python sends it (JPEG quality 90), decoded back by Pillow, as an RGB PNG."""
    import io

    from PIL import Image

    from s3kp.samples import SAMPLE_IMAGES

    written = {}
    for name in sorted({n for names in CLIENT_JPEG_MODEL_IMAGES.values() for n in names}):
        buffer = io.BytesIO()
        SAMPLE_IMAGES[name]().convert("RGB").save(buffer, quality=CLIENT_JPEG_QUALITY, format="JPEG")
        path = directory / f"{name}-client-jpeg.png"
        Image.open(io.BytesIO(buffer.getvalue())).convert("RGB").save(path)
        written[name] = str(path)
    return written


def person_crops() -> dict[str, list[list[int]]]:
    """Per-person crops (left, top, right, bottom) of the composites legacy Pose cannot split."""
    from s3kp.samples import SAMPLE_IMAGES, astronaut

    composite = SAMPLE_IMAGES["people_side_by_side"]()
    left = astronaut()
    split = round(left.width * composite.height / left.height)  # as people_side_by_side() scales it
    return {
        "people_side_by_side": [
            [0, 0, split, composite.height],
            [split, 0, composite.width, composite.height],
        ]
    }


def run_worker(python: Path, job: dict[str, Any]) -> dict[str, Any]:
    completed = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--worker"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"reference worker failed:\n{completed.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def make_reference() -> dict[str, Any]:
    python = reference_python()
    assert python is not None
    with tempfile.TemporaryDirectory(prefix="s3kp-reference-") as tmp:
        samples = write_samples(Path(tmp))
        job = {
            "mode": "reference",
            "images": {name: info["path"] for name, info in samples.items()},
            "model_images": MODEL_IMAGES,
            "person_crops": person_crops(),
            "low_threshold_hands": list(IMAGES),
            "client_jpeg": {
                "images": write_client_jpegs(Path(tmp)),
                "model_images": CLIENT_JPEG_MODEL_IMAGES,
            },
        }
        result = run_worker(python, job)
    return {
        "about": (
            "Keypoints from MediaPipe's own legacy Python API on the sample images, in image pixels "
            "(normalised output x width, y height). Regenerate with `make reference`."
        ),
        "versions": result["versions"],
        "settings": {
            "min_detection_confidence": MIN_DETECTION_CONFIDENCE,
            "min_tracking_confidence": MIN_TRACKING_CONFIDENCE,
            "max_num_hands": MAX_NUM_HANDS,
            "pose_model_complexity": 1,
            "hands_model_complexity": 1,
            "person_crops": job["person_crops"],
            "low_threshold_hands": LOW_THRESHOLD_HANDS,
            "client_jpeg_quality": CLIENT_JPEG_QUALITY,
        },
        "images": {
            name: {"width": info["width"], "height": info["height"]} for name, info in samples.items()
        },
        "models": result["models"],
        "whole_composite_pose": result["whole_composite_pose"],
        "one_person_composite_pose": result["one_person_composite_pose"],
        "low_threshold_hands": result["low_threshold_hands"],
        "client_jpeg": result["client_jpeg"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help="internal: run inside the reference venv")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    if args.worker:
        json.dump(worker(json.load(sys.stdin)), sys.stdout)
        return 0
    reference = make_reference()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(reference, indent=1) + "\n")
    counts = {m: {i: len(d) for i, d in per.items()} for m, per in reference["models"].items()}
    print(f"[reference] wrote {args.output}: {json.dumps(counts)}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------------
# Worker side (the reference venv): mediapipe, numpy and OpenCV (a mediapipe dependency) only.
# --------------------------------------------------------------------------------------------------


def _solutions() -> dict[str, Any]:
    import mediapipe as mp

    return {
        "faces/1": lambda: mp.solutions.face_detection.FaceDetection(
            model_selection=0, min_detection_confidence=MIN_DETECTION_CONFIDENCE
        ),
        "faces/2": lambda: mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=MIN_DETECTION_CONFIDENCE
        ),
        "pose/1": lambda: mp.solutions.pose.Pose(
            static_image_mode=True,
            model_complexity=1,
            min_detection_confidence=MIN_DETECTION_CONFIDENCE,
            min_tracking_confidence=MIN_TRACKING_CONFIDENCE,
        ),
        "hands/1": lambda: mp.solutions.hands.Hands(
            static_image_mode=True,
            model_complexity=1,
            max_num_hands=MAX_NUM_HANDS,
            min_detection_confidence=MIN_DETECTION_CONFIDENCE,
            min_tracking_confidence=MIN_TRACKING_CONFIDENCE,
        ),
        "low_threshold_hands": lambda: mp.solutions.hands.Hands(
            static_image_mode=True, model_complexity=1, max_num_hands=MAX_NUM_HANDS, **LOW_THRESHOLD_HANDS
        ),
    }


def _read_rgb(path: str) -> Any:
    import cv2
    import numpy as np

    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(image)


def _people(model_id: str, results: Any, width: int, height: int) -> list[dict[str, Any]]:
    """Detections of one `process()` call as plain JSON, in pixels of the image that was processed."""
    people: list[dict[str, Any]] = []
    if model_id.startswith("faces/"):
        for detection in results.detections or []:
            box = detection.location_data.relative_bounding_box
            people.append(
                {
                    "score": detection.score[0],
                    "box": [box.xmin * width, box.ymin * height, (box.xmin + box.width) * width,
                            (box.ymin + box.height) * height],
                    "keypoints": [[k.x * width, k.y * height]
                                  for k in detection.location_data.relative_keypoints],
                }
            )  # fmt: skip
    elif model_id == "pose/1":
        if results.pose_landmarks is not None:
            landmarks = results.pose_landmarks.landmark
            people.append(
                {
                    "keypoints": [[lm.x * width, lm.y * height] for lm in landmarks],
                    "visibility": [lm.visibility for lm in landmarks],
                }
            )
    else:
        for hand, handedness in zip(
            results.multi_hand_landmarks or [], results.multi_handedness or [], strict=True
        ):
            people.append(
                {
                    "handedness": handedness.classification[0].label,
                    "keypoints": [[lm.x * width, lm.y * height] for lm in hand.landmark],
                }
            )
    return people


def worker(job: dict[str, Any]) -> dict[str, Any]:
    import platform

    import mediapipe as mp
    import numpy as np

    images = {name: _read_rgb(path) for name, path in job["images"].items()}
    solutions = _solutions()
    versions = {"mediapipe": mp.__version__, "numpy": np.__version__, "python": platform.python_version()}
    if job["mode"] == "benchmark":
        return {"versions": versions, "median_ms": _benchmark(solutions, images, job)}
    models = _run_models(solutions, images, job["model_images"], job["person_crops"])
    # Legacy Pose on each whole composite too: it follows the best-scoring person, whom we must match.
    whole_composite_pose = {}
    for name in job["person_crops"]:
        image = images[name]
        with solutions["pose/1"]() as solution:
            whole_composite_pose[name] = _people(
                "pose/1", solution.process(image), image.shape[1], image.shape[0]
            )
    # And on each whole composite with everyone but one person blacked out: that person where the whole
    # composite puts them (same letterbox, same scale), with no other person for the graph to follow.
    one_person_composites: dict[str, list[list[dict[str, Any]]]] = {}
    for name, crops in job["person_crops"].items():
        image = images[name]
        one_person_composites[name] = []
        for left, top, right, bottom in crops:
            alone = np.zeros_like(image)
            alone[top:bottom, left:right] = image[top:bottom, left:right]
            with solutions["pose/1"]() as solution:
                one_person_composites[name].append(
                    _people("pose/1", solution.process(alone), image.shape[1], image.shape[0])
                )
    low_threshold_hands = {}
    for name in job["low_threshold_hands"]:
        image = images[name]
        with solutions["low_threshold_hands"]() as solution:
            low_threshold_hands[name] = _people(
                "hands/1", solution.process(image), image.shape[1], image.shape[0]
            )
    client_images = {name: _read_rgb(path) for name, path in job["client_jpeg"]["images"].items()}
    client_jpeg = _run_models(solutions, client_images, job["client_jpeg"]["model_images"], {})
    return {
        "versions": versions,
        "models": models,
        "whole_composite_pose": whole_composite_pose,
        "one_person_composite_pose": one_person_composites,
        "low_threshold_hands": low_threshold_hands,
        "client_jpeg": client_jpeg,
    }


def _run_models(
    solutions: dict[str, Any],
    images: dict[str, Any],
    model_images: dict[str, list[str]],
    person_crops: dict[str, list[list[int]]],
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each model on its images, a fresh graph per image; pose on each person's crop where one is given."""
    import numpy as np

    models: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for model_id, names in model_images.items():
        models[model_id] = {}
        for name in names:
            crops = person_crops.get(name) if model_id == "pose/1" else None
            image = images[name]
            found = []
            for left, top, right, bottom in crops or [[0, 0, image.shape[1], image.shape[0]]]:
                part = np.ascontiguousarray(image[top:bottom, left:right])
                with solutions[model_id]() as solution:  # a fresh graph: no state from the last image
                    people = _people(model_id, solution.process(part), right - left, bottom - top)
                for person in people:
                    person["keypoints"] = [[x + left, y + top] for x, y in person["keypoints"]]
                    if "box" in person:
                        xmin, ymin, xmax, ymax = person["box"]
                        person["box"] = [xmin + left, ymin + top, xmax + left, ymax + top]
                found.extend(people)
            models[model_id][name] = found
    return models


def _benchmark(
    solutions: dict[str, Any], images: dict[str, Any], job: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """Median milliseconds of `process()` per model per image (after warm-up), one graph per model."""
    import statistics

    medians: dict[str, dict[str, float]] = {}
    for model_id in job["models"]:
        medians[model_id] = {}  # one graph per model, reused across runs like a server would
        with solutions[model_id]() as solution:
            for name, image in images.items():
                for _ in range(job["warmup"]):
                    solution.process(image)
                times = []
                for _ in range(job["runs"]):
                    started = time.perf_counter()
                    solution.process(image)
                    times.append((time.perf_counter() - started) * 1000)
                medians[model_id][name] = statistics.median(times)
    return medians


if __name__ == "__main__":
    sys.exit(main())
