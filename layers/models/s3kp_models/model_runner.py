"""One inference request, transport-free: image bytes + parameters -> the Roboflow response (+ JPEG).

Everything here is CPU-bound (decode, predict, draw, encode): the local server runs it in a worker thread
of its bounded pool, so its event loop only ever does I/O; the InferenceFunction runs it in the handler.
The response is built as plain JSON-ready dicts (`wire`).
"""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from msgspec.structs import replace
from PIL import Image
from s3kp_core import results
from s3kp_core.annotate import draw_annotations

from s3kp_models.params import InferenceParams, OutputFormat
from s3kp_models.pipelines.base import Detection, KeypointPipeline, ModelInfo
from s3kp_models.request_decoding import ImageLimits, decode_image
from s3kp_models.wire import WireJSON, wire_prediction

JPEG_QUALITY = 90


@dataclass(frozen=True)
class Timings:
    """Seconds spent on one image, reported in the `Server-Timing` header."""

    decode: float  # base64 and image decoding to RGB pixels
    model: float  # the pipeline's `predict`: its pre-processing, the TFLite models, its post-processing
    total: float  # decode + model + building the predictions: the response's `time`, as Roboflow's servers

    def __add__(self, other: Timings) -> Timings:
        return Timings(self.decode + other.decode, self.model + other.model, self.total + other.total)

    def header(self) -> str:
        """A `Server-Timing` value (W3C): durations in milliseconds, shown by browsers' developer tools."""
        return (
            f"decode;dur={self.decode * 1000:.3f}, model;dur={self.model * 1000:.3f}, "
            f"total;dur={self.total * 1000:.3f}"
        )


@dataclass(frozen=True)
class InferenceOutcome:
    response: WireJSON  # the Roboflow response, ready for a JSON encoder
    annotated_jpeg: bytes | None  # only when the parameters ask for an image
    timings: Timings


def run_inference(
    pipeline: KeypointPipeline, load: Callable[[], bytes], params: InferenceParams, limits: ImageLimits
) -> InferenceOutcome:
    """`load` gives the image file's bytes (a base64 decode runs here, in the worker, and is timed)."""
    started = time.perf_counter()
    # A drawing needs every pixel; a JSON answer can come from a reduced decode of a big JPEG.
    decoded = decode_image(
        load(), limits, reduce_to_side=None if params.wants_image else limits.reduce_to_side
    )
    pixels = np.asarray(decoded.image)
    decoded_at = time.perf_counter()
    detections = pipeline.predict(
        pixels,
        confidence=params.confidence,
        iou_threshold=params.iou_threshold,
        max_detections=params.max_detections,
    )
    predicted_at = time.perf_counter()
    scale_x, scale_y = decoded.scale
    predictions = [
        _to_core(d, params.keypoint_confidence, scale_x, scale_y) for d in select(detections, params)
    ]
    response: WireJSON = {
        "time": 0.0,
        "inference_id": str(uuid.uuid4()),
        "image": {"width": decoded.original_width, "height": decoded.original_height},
        "predictions": [wire_prediction(p) for p in predictions],
    }
    finished = time.perf_counter()
    # Like Roboflow's `time`: from the request's image to the predictions; drawing comes after it.
    response["time"] = round(finished - started, 5)
    jpeg = render(decoded.image, predictions, pipeline.info, params) if params.wants_image else None
    if jpeg and params.output is OutputFormat.IMAGE_AND_JSON:
        response["visualization"] = base64.b64encode(jpeg).decode("ascii")
    timings = Timings(decode=decoded_at - started, model=predicted_at - decoded_at, total=finished - started)
    return InferenceOutcome(response, jpeg, timings)


def select(detections: Sequence[Detection], params: InferenceParams) -> list[Detection]:
    """Apply the filters the model does not: `classes` and `max_detections` (again, after filtering)."""
    kept = [d for d in detections if params.classes is None or d.class_name in params.classes]
    return kept[: params.max_detections]


def _to_core(detection: Detection, keypoint_confidence: float, sx: float, sy: float) -> results.Prediction:
    """The shared prediction model, in original-image pixels (`sx`, `sy` undo a reduced decode)."""
    return results.Prediction(
        x=detection.x * sx,
        y=detection.y * sy,
        width=detection.width * sx,
        height=detection.height * sy,
        confidence=detection.confidence,
        class_name=detection.class_name,
        class_id=detection.class_id,
        detection_id=str(uuid.uuid4()),
        keypoints=tuple(
            replace(k, x=k.x * sx, y=k.y * sy)
            for k in detection.keypoints
            if k.confidence >= keypoint_confidence
        ),
    )


def render(
    image: Image.Image, predictions: Sequence[results.Prediction], info: ModelInfo, params: InferenceParams
) -> bytes:
    """The annotated JPEG: boxes, keypoints and the model's skeleton."""
    drawn = draw_annotations(
        image,
        predictions,
        skeleton=info.skeleton,
        keypoint_threshold=params.keypoint_confidence,
        labels=params.labels,
        stroke=params.stroke,
    )
    buffer = io.BytesIO()
    drawn.convert("RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
