"""The pixel path (`s3kp_core.imaging`): speed against its floor and its rivals, and peak memory.

Three side-by-side measures, ratios first (absolute times drift with a shared machine's load):
1. prepare vs the decode floor: `prepare_for_inference` as the ingest function calls it (sent side
   1024, decoded image kept >= 1024 px for the annotated copy) against Pillow's bare draft decode at
   the DCT scale that keeps >= 1024 px, interleaved in one process. Goal: <= 1.3x.
2. the whole request, on loopback against `s3kp model-server` (faces/1): ours (prepare, POST the small
   JPEG, rescale) vs the naive path (base64 the original object as it is) vs roboflow-python's
   `KeypointDetectionModel.predict()` (re-encodes and sends the full image). The naive path is compared
   doing the same image work as ours: with the annotated copy's pixels (decoded as the ingest decodes
   them) against ours, and without them against ours without them. Goals: ours faster than naive in
   both, >= 3x faster than predict(); keypoints within 1 % of the long side of the full-resolution
   answer (also a unit test: tests/unit/s3kp_core/test_imaging_accuracy.py).
3. peak RSS of preparing one image, each in a fresh interpreter that first imports what the ingest
   function imports (so the figure is the function's, runtime included). Goal: <= 768 MiB, 25 %
   headroom in a 1024 MB function, for everything the limits admit.
"""

from __future__ import annotations

import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.servers import model_server
from s3kp import samples

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"
MODEL_ID = "faces/1"
MAX_SIDE = 1024  # MAX_SIDE_FOR_INFERENCE's default
DECODE_SIDE = 1024  # ANNOTATED_MAX_SIDE // 2, as the ingest function passes it
MAX_PIXELS = 100_000_000  # MAX_IMAGE_PIXELS's default
PREPARE_RUNS = 15
REQUEST_RUNS = 7
MEMORY_GOAL_MIB = 768
MEMORY_SIZE_MB = 1024


def run() -> str:
    photos = {
        "12 MP photo (grain)": grainy_photo(4000, 3000, grain=6.0),
        "12 MP smooth": grainy_photo(4000, 3000, grain=0.0),
    }
    sections = [
        _prepare_markdown({label: prepare_vs_floor(data) for label, data in photos.items()}),
        _requests_markdown(requests_side_by_side(photos)),
        _memory_markdown(peak_memory()),
    ]
    return "\n\n".join(sections)


def grainy_photo(width: int, height: int, *, grain: float) -> bytes:
    """The astronaut at a phone's 4:3 size; with grain, sensor-like noise makes it a 3 MB JPEG, as a real
    12 MP photo is (a smooth upscale compresses to a third of that and decodes faster)."""
    base = samples.astronaut().resize((width, height), Image.Resampling.BICUBIC)
    if not grain:
        return samples.encode(base)
    pixels = np.asarray(base, dtype=np.float32)
    noise = np.random.default_rng(7).normal(0.0, grain, pixels.shape).astype(np.float32)
    return samples.encode(Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8)))


# --- 1. prepare vs the decode floor ---------------------------------------------------------------


@dataclass(frozen=True)
class PrepareFigures:
    floor_ms: float
    prepare_ms: float
    ratio: float
    draft_size: tuple[int, int]
    sent_size: tuple[int, int]
    stages_ms: dict[str, float]


def decode_floor(data: bytes) -> Image.Image:
    """Pillow's draft decode at the DCT scale that keeps >= DECODE_SIDE px: nothing can be cheaper."""
    image = Image.open(io.BytesIO(data))
    factor = DECODE_SIDE / max(image.size)
    image.draft("RGB", (math.ceil(image.width * factor), math.ceil(image.height * factor)))
    image.load()
    return image


def prepare_vs_floor(data: bytes) -> PrepareFigures:
    from s3kp_core.imaging import prepare_for_inference

    def prepare() -> Any:
        return prepare_for_inference(data, max_side=MAX_SIDE, max_pixels=MAX_PIXELS, decode_side=DECODE_SIDE)

    decode_floor(data), prepare()  # warm up
    floors, prepares, ratios, stages = [], [], [], []
    for _ in range(PREPARE_RUNS):
        floor_ms = _timed_ms(lambda: decode_floor(data))
        started = time.perf_counter()
        prepared, _ = prepare()
        prepare_ms = (time.perf_counter() - started) * 1000
        floors.append(floor_ms)
        prepares.append(prepare_ms)
        ratios.append(prepare_ms / floor_ms)
        stages.append(prepared.timings_ms)
    return PrepareFigures(
        floor_ms=statistics.median(floors),
        prepare_ms=statistics.median(prepares),
        ratio=statistics.median(ratios),
        draft_size=decode_floor(data).size,
        sent_size=(prepared.sent_width, prepared.sent_height),
        stages_ms={key: statistics.median(s[key] for s in stages) for key in stages[0]},
    )


def _prepare_markdown(figures: dict[str, PrepareFigures]) -> str:
    lines = [
        "### Pixel path: prepare vs the decode floor",
        "",
        f"`prepare_for_inference` as the ingest function calls it (sent side ≤ {MAX_SIDE}, decoded image "
        f"≥ {DECODE_SIDE} px for the annotated copy) vs Pillow's bare draft decode at the DCT scale that "
        f"keeps ≥ {DECODE_SIDE} px; interleaved, {PREPARE_RUNS} runs, median of the per-run ratios. "
        "Goal: ≤ 1.3×.",
        "",
        "| image | prepare / floor | floor (ms) | prepare (ms) | decode / reduce / encode (ms) "
        "| draft | sent |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for label, f in figures.items():
        stages = " / ".join(f"{f.stages_ms[k]:.1f}" for k in ("decode", "resize", "encode"))
        lines.append(
            f"| {label} | **{f.ratio:.2f}×** | {f.floor_ms:.1f} | {f.prepare_ms:.1f} | {stages} "
            f"| {f.draft_size[0]}×{f.draft_size[1]} | {f.sent_size[0]}×{f.sent_size[1]} |"
        )
    return "\n".join(lines)


# --- 2. the whole request: ours vs naive vs roboflow-python ----------------------------------------


def requests_side_by_side(photos: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    from roboflow.models.keypoint_detection import KeypointDetectionModel
    from s3kp_core.inference import InferenceClient

    if str(ROOT / "functions" / "ingest") not in sys.path:
        sys.path.insert(0, str(ROOT / "functions" / "ingest"))
    from ingest_settings import IngestSettings

    with model_server(API_KEY) as server, tempfile.TemporaryDirectory() as scratch:
        # The ingest function's defaults (confidence, overlap, timeouts) for this endpoint.
        ingest = IngestSettings.from_environment(
            {
                "INFERENCE_URL": server.url,
                "MODEL_ID": MODEL_ID,
                "ROBOFLOW_API_KEY": API_KEY,
                "RESULTS_TABLE": "unused",
                "IDEMPOTENCY_TABLE": "unused",
            }
        )
        client = InferenceClient(ingest.inference_settings(API_KEY))
        model = KeypointDetectionModel(API_KEY, f"bench/{MODEL_ID}", local=server.url + "/")
        try:
            return {
                label: _one_photo(client, model, data, Path(scratch) / "photo.jpg")
                for label, data in photos.items()
            }
        finally:
            client.close()


def _one_photo(client: Any, model: Any, data: bytes, path: Path) -> dict[str, Any]:
    from s3kp_core.imaging import decode, prepare_for_inference
    from s3kp_core.rescale import rescale

    path.write_bytes(data)
    answers: dict[str, Any] = {}

    def ours() -> None:
        prepared, copy_pixels = prepare_for_inference(
            data, max_side=MAX_SIDE, max_pixels=MAX_PIXELS, decode_side=DECODE_SIDE
        )
        result = client.predict(prepared.jpeg)
        answers["ours"] = rescale(result.predictions, prepared.scale_x, prepared.scale_y)
        answers["ours_bytes"] = result.bytes_sent
        answers["ours_copy_size"] = copy_pixels.size

    def send_scale_only() -> None:
        # No decoded image kept for an annotated copy: libjpeg's 1/4 scale (1000 px) is decoded and sent.
        prepared, _ = prepare_for_inference(data, max_side=MAX_SIDE, max_pixels=MAX_PIXELS)
        result = client.predict(prepared.jpeg)
        answers["send_scale"] = rescale(result.predictions, prepared.scale_x, prepared.scale_y)

    def naive() -> None:
        result = client.predict(data)  # the object as it is, base64 in the body
        answers["naive"] = result.predictions
        answers["naive_bytes"] = result.bytes_sent

    def naive_with_copy() -> None:
        # A naive ingest function writes the annotated copy too: after the request, it decodes the original
        # for the drawing the way ours does (`prepare_for_inference` calls `decode` with this draft side).
        result = client.predict(data)
        answers["naive_with_copy"] = result.predictions
        answers["naive_copy_size"] = decode(data, max_pixels=MAX_PIXELS, draft_to=DECODE_SIDE).image.size

    def roboflow() -> None:
        answers["roboflow"] = model.predict(str(path)).json()["predictions"]

    ways: dict[str, Callable[[], None]] = {
        "ours": ours,
        "send_scale": send_scale_only,
        "naive": naive,
        "naive_with_copy": naive_with_copy,
        "roboflow": roboflow,
    }
    for way in ways.values():
        way()  # warm up: connections, the server's first request
    naive_copy, ours_copy = answers["naive_copy_size"], answers["ours_copy_size"]
    if naive_copy != ours_copy:  # else the two ways would not do the same image work
        raise RuntimeError(f"annotated-copy pixels differ: naive {naive_copy}, ours {ours_copy}")
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(REQUEST_RUNS):
        for name, way in ways.items():
            times[name].append(_timed_ms(way))
    return {
        "ms": {name: statistics.median(samples_ms) for name, samples_ms in times.items()},
        "bytes": {"ours": answers["ours_bytes"], "naive": answers["naive_bytes"]},
        "distance": _worst_distance(answers["ours"], answers["naive"]),
        "send_scale_distance": _worst_distance(answers["send_scale"], answers["naive"]),
        "detections": (len(answers["ours"]), len(answers["naive"]), len(answers["roboflow"])),
        "long_side": max(Image.open(io.BytesIO(data)).size),
        "copy_size": answers["ours_copy_size"],
    }


def _worst_distance(ours: Any, reference: Any) -> float:
    worst = 0.0
    for prediction in ours:
        nearest = min(reference, key=lambda r: math.dist((r.x, r.y), (prediction.x, prediction.y)))
        expected = {k.class_id: (k.x, k.y) for k in nearest.keypoints}
        for keypoint in prediction.keypoints:
            if keypoint.class_id in expected:
                worst = max(worst, math.dist((keypoint.x, keypoint.y), expected[keypoint.class_id]))
    return worst


def _requests_markdown(rows: dict[str, dict[str, Any]]) -> str:
    copy_sizes = sorted({f"{row['copy_size'][0]}×{row['copy_size'][1]}" for row in rows.values()})
    lines = [
        "### Pixel path: ours vs naive full-base64 vs roboflow-python, per image on loopback",
        "",
        f"`s3kp model-server` ({MODEL_ID}) on loopback; medians of {REQUEST_RUNS} interleaved rounds after "
        "a warm-up; every ratio is theirs / ours (> 1: ours is faster). *Ours*: what the ingest function "
        "does: `prepare_for_inference` (one draft decode at the scale that keeps "
        f"{DECODE_SIDE} px, the annotated copy's pixels, {', '.join(copy_sizes)} here; box-reduce; JPEG) + "
        "POST + rescale. *Ours, send scale only*: the same without pixels for an annotated copy (decoded at "
        "the DCT scale that is sent). *Naive*: the same client POSTs the original object base64-encoded, "
        "as it is (no decode on the client; the server draft-decodes it). *Naive with copy*: the naive "
        "POST, then the annotated copy's pixels decoded from the original exactly as ours gets them "
        f"(`imaging.decode`, draft side {DECODE_SIDE}, same size), one after the other. "
        "*roboflow-python*: `KeypointDetectionModel.predict(path)` (decodes, re-encodes the full image, "
        "POSTs it). The two naive / ours columns in bold compare equal work: (a) the ingest's whole image "
        "work, the request plus the annotated copy's pixels, which a naive ingest function needs as well; "
        "(b) the request alone, each side decoding only what its request needs. The plain naive / ours "
        "column is the earlier headline, ours with the copy's pixels against naive without them. Keypoint "
        "distance: rescaled to the original, against the naive (full-resolution) answer.",
        "",
        "| image | (a) request + annotated-copy pixels: naive / ours | (b) request only: naive / ours "
        "| predict() / ours | ours with copy pixels vs naive without: naive / ours | ours (ms) "
        "| ours, send scale (ms) | naive (ms) | naive with copy (ms) | predict() (ms) "
        "| bytes sent ours / naive | detections ours/naive/predict "
        "| worst keypoint distance: ours; send scale |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for label, row in rows.items():
        ms = row["ms"]
        long_side = row["long_side"]
        lines.append(
            f"| {label} | **{ms['naive_with_copy'] / ms['ours']:.2f}×** "
            f"| **{ms['naive'] / ms['send_scale']:.2f}×** | **{ms['roboflow'] / ms['ours']:.2f}×** "
            f"| {ms['naive'] / ms['ours']:.2f}× "
            f"| {ms['ours']:.1f} | {ms['send_scale']:.1f} | {ms['naive']:.1f} | {ms['naive_with_copy']:.1f} "
            f"| {ms['roboflow']:.1f} "
            f"| {row['bytes']['ours']:,} / {row['bytes']['naive']:,} "
            f"| {'/'.join(str(n) for n in row['detections'])} "
            f"| {row['distance']:.1f} px ({100 * row['distance'] / long_side:.2f} %); "
            f"{row['send_scale_distance']:.1f} px ({100 * row['send_scale_distance'] / long_side:.2f} %) |"
        )
    return "\n".join(lines)


# --- 3. peak memory per image class ----------------------------------------------------------------

# Imports what the ingest function holds when it prepares an image, then prepares one image file with
# the function's defaults; prints the process's peak RSS before and after. VmHWM, not ru_maxrss: Linux
# carries ru_maxrss over from the parent through fork and exec, VmHWM belongs to the new program.
MEMORY_PROBE = """
import json, re, sys
def peak_mib():
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1)) / 1024
import boto3, requests
from aws_lambda_powertools import Logger, Metrics, Tracer
from s3kp_core import processing
from s3kp_core.errors import PermanentError
from s3kp_core.imaging import prepare_for_inference
data = open(sys.argv[1], "rb").read()
before = peak_mib()
try:
    prepared, _ = prepare_for_inference(data, max_side=1024, max_pixels=100_000_000, decode_side=1024)
    outcome = f"sent {prepared.sent_width}x{prepared.sent_height}"
except PermanentError as error:
    outcome = error.code
print(json.dumps({"before": before, "peak": peak_mib(), "outcome": outcome}))
"""


def _image_classes() -> dict[str, Callable[[Path], object]]:
    def sixteen_bit(path: Path) -> None:
        gradient = Image.linear_gradient("L").resize((10_000, 10_000)).convert("I")
        gradient.point(lambda v: v * 257).convert("I;16").save(path, format="PNG", compress_level=9)

    def rgba(path: Path) -> None:
        image = Image.new("RGBA", (8000, 8000), (200, 40, 40, 128))
        image.save(path, format="PNG", compress_level=1)

    def cmyk(path: Path) -> None:
        picture = samples.astronaut().resize((8000, 5000), Image.Resampling.BILINEAR).convert("CMYK")
        picture.save(path, format="JPEG", quality=90)

    def progressive(path: Path) -> None:
        picture = samples.astronaut().resize((10_000, 10_000), Image.Resampling.BILINEAR)
        picture.save(path, format="JPEG", quality=90, progressive=True)

    def fifty_mb(path: Path) -> None:
        # Incompressible: a 4096x4096 RGB noise PNG is 48 MiB, just under MAX_OBJECT_BYTES (50 MiB).
        noise = np.random.default_rng(7).integers(0, 256, (4096, 4096, 3), dtype=np.uint8)
        Image.fromarray(noise).save(path, format="PNG", compress_level=1)

    return {
        "100 MP 16-bit grey PNG": sixteen_bit,
        "64 MP RGBA PNG": rgba,
        "12 MP JPEG (grain)": lambda path: path.write_bytes(grainy_photo(4000, 3000, grain=6.0)),
        "40 MP CMYK JPEG": cmyk,
        "50 MB object (48 MiB noise PNG)": fifty_mb,
        "100 MP progressive JPEG": progressive,
    }


def peak_memory() -> dict[str, dict[str, Any]]:
    environment = os.environ | {"PYTHONPATH": str(ROOT / "layers" / "shared")}
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for label, make in _image_classes().items():
            path = Path(scratch) / "image"
            make(path)
            completed = subprocess.run(
                [sys.executable, "-c", MEMORY_PROBE, str(path)],
                env=environment,
                capture_output=True,
                text=True,
                check=True,
                timeout=300,
            )
            figures = json.loads(completed.stdout.strip().splitlines()[-1])
            rows[label] = figures | {"bytes": path.stat().st_size}
            path.unlink()
    return rows


def _memory_markdown(rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        "### Pixel path: peak memory per image class",
        "",
        "Each image prepared in a fresh interpreter that first imports what the ingest function imports "
        "(boto3, requests, Powertools, s3kp_core); peak RSS (`VmHWM`) of the whole process, as the "
        f"function's memory would count it. Goal: ≤ {MEMORY_GOAL_MIB} MiB (25 % headroom in "
        f"{MEMORY_SIZE_MB} MB) for everything the limits admit.",
        "",
        "| image | peak (MiB) | of the goal | after imports (MiB) | file (MB) | outcome |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, row in rows.items():
        lines.append(
            f"| {label} | **{row['peak']:.0f}** | {row['peak'] / MEMORY_GOAL_MIB:.2f}× | {row['before']:.0f} "
            f"| {row['bytes'] / 1e6:.1f} | {row['outcome']} |"
        )
    return "\n".join(lines)


def _timed_ms(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000
