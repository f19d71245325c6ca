"""Answering an inference request, shared by the FastAPI routes and the v0 fast path (`v0_fast_path`).

The answer is a plain `Response` of pydantic-core's JSON encoder (no response-model validation on the
hot path) with a `Server-Timing` header; the schemas still document it in OpenAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pydantic_core
from starlette.responses import Response

from s3kp.model_server import params as rf
from s3kp.model_server.context import ServerContext
from s3kp.model_server.model_runner import InferenceOutcome, Timings
from s3kp.model_server.request_decoding import decode_base64_body, is_raw_image_content_type

MISSING_CONTENT_TYPE = "Content-Type header is required (or pass image=<url>)"


def v0_params(
    *,
    confidence: float | None,
    overlap: float | None,
    classes: str | None,
    keypoint_confidence: float | None,
    max_detections: int,
    output: rf.OutputFormat,
    labels: bool,
    stroke: int | None,
) -> rf.InferenceParams:
    """The v0 query parameters (already validated) read with Roboflow's rules."""
    return rf.InferenceParams(
        confidence=rf.threshold_from_roboflow(confidence, rf.DEFAULT_CONFIDENCE),
        iou_threshold=rf.threshold_from_roboflow(overlap, rf.DEFAULT_OVERLAP),
        classes=rf.class_names_from_csv(classes),
        keypoint_confidence=rf.keypoint_threshold_from_roboflow(keypoint_confidence),
        max_detections=max_detections,
        output=output,
        labels=labels,
        stroke=stroke,
    )


async def answer_v0(
    context: ServerContext,
    model_id: str,
    key: str | None,
    params: rf.InferenceParams,
    image: Callable[[], Awaitable[Callable[[], bytes]]],
) -> Response:
    """One v0 request, whichever path it came by: the key, the model, the image (only read once both
    passed), the inference in a worker thread, the answer."""
    context.keys.verify(key)
    pipeline = context.pipeline(model_id)
    outcome = await context.infer(pipeline, await image(), params)
    if params.output is rf.OutputFormat.IMAGE:
        return Response(outcome.annotated_jpeg, media_type="image/jpeg", headers=timing_header([outcome]))
    return json_response(outcome.response, [outcome])


def json_response(payload: object, outcomes: list[InferenceOutcome]) -> Response:
    return Response(
        pydantic_core.to_json(payload), media_type="application/json", headers=timing_header(outcomes)
    )


def timing_header(outcomes: list[InferenceOutcome]) -> dict[str, str]:
    total = sum((o.timings for o in outcomes), Timings(0.0, 0.0, 0.0))
    return {"Server-Timing": total.header()}


def image_in_body(content_type: str, body: bytes) -> Callable[[], bytes]:
    """A raw image body as it is; anything else is base64, decoded later in the worker."""
    if is_raw_image_content_type(content_type):
        return lambda: body
    return lambda: decode_base64_body(body)
