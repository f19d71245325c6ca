"""Model time per image: our LiteRT pipelines against MediaPipe's own Python API on the same samples.

Ours: `predict()` in this process (pre-processing, inference, post-processing). Theirs, when the reference
venv from `make reference` exists: `solution.process()` of the legacy API, timed in that venv. Both on the
~512 px samples, median of RUNS runs per image after WARMUP, pooled over the images.
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
from s3kp_models.pipelines.registry import MODEL_IDS, load_pipelines

from s3kp.paths import model_dir
from s3kp.samples import SAMPLE_IMAGES

IMAGES = ("astronaut", "camera", "grace_hopper")  # 512x512, 512x512, 512x600
RUNS, WARMUP = 20, 3
CONFIDENCE, IOU_THRESHOLD, MAX_DETECTIONS = 0.5, 0.3, 20
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_mediapipe_reference.py"


def _reference_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_mediapipe_reference", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure_ours() -> dict[str, float]:
    pipelines = load_pipelines(model_dir())
    medians = {}
    for model_id in MODEL_IDS:
        pipeline = pipelines[model_id]
        times = []
        for name in IMAGES:
            image = np.asarray(SAMPLE_IMAGES[name]().convert("RGB"))
            for _ in range(WARMUP):
                pipeline.predict(
                    image, confidence=CONFIDENCE, iou_threshold=IOU_THRESHOLD, max_detections=MAX_DETECTIONS
                )
            for _ in range(RUNS):
                started = time.perf_counter()
                pipeline.predict(
                    image, confidence=CONFIDENCE, iou_threshold=IOU_THRESHOLD, max_detections=MAX_DETECTIONS
                )
                times.append((time.perf_counter() - started) * 1000)
        medians[model_id] = statistics.median(times)
    return medians


def measure_mediapipe() -> tuple[dict[str, float], str] | str:
    """MediaPipe's medians per model and its version line, or why the column is skipped.

    The reference venv is built when missing, as `make reference` builds it (mediapipe from PyPI into
    .cache/mediapipe-ref, once); where that cannot work (no Python 3.11/3.12, no package index) the
    column is skipped with the reason instead of printing `n/a`."""
    script = _reference_script()
    try:
        python = script.reference_python(create=True)
    except (SystemExit, subprocess.CalledProcessError, OSError) as error:
        reason = (
            str(error) if isinstance(error, SystemExit) else f"building the reference venv failed ({error})"
        )
        return f"MediaPipe column skipped: {reason}; `make reference` builds it."
    assert python is not None
    with tempfile.TemporaryDirectory(prefix="s3kp-bench-") as tmp:
        samples = script.write_samples(Path(tmp))
        job = {
            "mode": "benchmark",
            "images": {name: samples[name]["path"] for name in IMAGES},
            "models": list(MODEL_IDS),
            "runs": RUNS,
            "warmup": WARMUP,
        }
        result = script.run_worker(python, job)
    # Pool per-image medians the same way as ours: the median over the images' medians is close enough
    # only if the images agree, so report the median of all images' medians (3 values) honestly as such.
    medians = {m: statistics.median(per_image.values()) for m, per_image in result["median_ms"].items()}
    versions = result["versions"]
    return (
        medians,
        f"mediapipe {versions['mediapipe']}, numpy {versions['numpy']}, Python {versions['python']}",
    )


def run() -> str:
    ours = measure_ours()
    theirs = measure_mediapipe()
    lines = [
        "### Keypoint models (per image)",
        "",
        f"Median ms per image on {', '.join(IMAGES)} ({RUNS} runs each after {WARMUP} warm-up runs); "
        f"ours: `predict()` (LiteRT + numpy), theirs: MediaPipe's legacy `process()`.",
        "",
        "| model | ours (ms) | MediaPipe (ms) | MediaPipe / ours |",
        "|---|---:|---:|---:|",
    ]
    if isinstance(theirs, str):  # no MediaPipe: ours alone, and why
        lines[-2:] = ["| model | ours (ms) |", "|---|---:|"]
    for model_id in MODEL_IDS:
        if isinstance(theirs, str):
            lines.append(f"| `{model_id}` | {ours[model_id]:.1f} |")
        else:
            mediapipe = theirs[0][model_id]
            ratio = mediapipe / ours[model_id]
            lines.append(f"| `{model_id}` | {ours[model_id]:.1f} | {mediapipe:.1f} | {ratio:.2f}x |")
    lines.append("")
    if isinstance(theirs, str):
        lines.append(theirs)
    else:
        lines.append(
            f"MediaPipe: {theirs[1]}, in its own venv, one graph per model, median of the per-image medians. "
            "pose/1 and hands/1 run the landmark model once per person / hand found (none of these samples "
            "shows a hand, so hands/1 is the palm detector alone in both columns)."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(run() + "\n")
