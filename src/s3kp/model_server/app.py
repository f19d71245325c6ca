"""The HTTP API: Roboflow's v0 route, inference-sdk's v1 routes, a model catalogue and a health check.

`create_app` takes already-loaded pipelines, so tests inject fakes and the server loads models once.
Inference runs on `threads` worker threads (a ThreadPoolExecutor, see `context`): the event
loop keeps accepting requests while the CPU works, and no more than `threads` images are decoded at once.
The inference routes answer through `answers` (plain JSON, no response-model validation on the hot path);
the schemas still document them in OpenAPI. The hot route, `POST /{project}/{version}`, is mostly
answered by `V0FastPath` before FastAPI's routing (see `v0_fast_path`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from s3kp_models import params as rf
from s3kp_models.params import v0_params
from s3kp_models.pipelines.base import KeypointPipeline
from s3kp_models.request_decoding import MISSING_CONTENT_TYPE, ImageLimits, decode_base64_body, image_in_body
from s3kp_models.request_errors import BadRequest
from s3kp_models.v0_query import MAX_DETECTIONS, MAX_STROKE
from starlette.datastructures import UploadFile
from starlette.routing import Match

from s3kp.local.host_guard import HostGuard
from s3kp.model_server.answers import answer_v0, json_response
from s3kp.model_server.auth import KeyCheck, supplied_key
from s3kp.model_server.body_limit import BodySizeLimit, read_body
from s3kp.model_server.context import ServerContext
from s3kp.model_server.host_check import HostCheck
from s3kp.model_server.http_errors import install_error_handlers
from s3kp.model_server.schemas import (
    ErrorMessage,
    Health,
    ImageRef,
    InferenceResponse,
    KeypointsDetectionRequest,
    ModelAddRequest,
    ModelCatalogue,
    ModelDescription,
    ModelRegistry,
    RegisteredModel,
)
from s3kp.model_server.url_fetch import FetchLimits
from s3kp.model_server.v0_fast_path import V0FastPath

V1_BATCH_SIZE = 8  # images per v1 request the registry advertises


async def _context(request: Request) -> ServerContext:  # async: a plain def would cost a thread hop
    context: ServerContext = request.app.state.context
    return context


Context = Annotated[ServerContext, Depends(_context)]


# Routes in registration order: the fixed paths first, `/{project}/{version}` would swallow them.
router = APIRouter(responses={status: {"model": ErrorMessage} for status in (400, 401, 404, 413, 500)})


def create_app(
    pipelines: Mapping[str, KeypointPipeline],
    *,
    api_key: str | None = None,
    threads: int | None = None,
    image_limits: ImageLimits | None = None,
    fetch_limits: FetchLimits | None = None,
    allow_private_image_urls: bool = False,
    guard: HostGuard | None = None,
) -> FastAPI:
    """`allow_private_image_urls` lets `image=<url>` reach loopback and private hosts (tests, a LAN).
    `guard` decides which `Host` and `Origin` are served (default: loopback names only, see host_check)."""
    image_limits = image_limits or ImageLimits()
    fetch_limits = fetch_limits or FetchLimits(max_bytes=image_limits.max_body_bytes)
    if allow_private_image_urls:
        fetch_limits = replace(fetch_limits, allow_private_addresses=True)
    app = FastAPI(
        title="s3-keypoints inference server",
        summary="Roboflow-compatible keypoint detection with MediaPipe models on the CPU",
        version="1",
    )
    app.state.context = ServerContext(
        pipelines=dict(pipelines),
        keys=KeyCheck(api_key),
        threads=max(1, threads or os.cpu_count() or 1),
        image_limits=image_limits,
        fetch_limits=fetch_limits,
    )
    install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(V0FastPath, context=app.state.context, model_paths=_v0_model_paths(app))
    app.add_middleware(BodySizeLimit, max_bytes=image_limits.max_body_bytes)  # before both paths
    app.add_middleware(HostCheck, guard=guard or HostGuard())  # outermost: a refused request reads nothing
    return app


def _v0_model_paths(app: FastAPI) -> dict[str, str]:
    """`/{project}/{version}` -> model id for each served model whose POST our router sends to `infer_v0`
    (the router's own matching, in its order: a fixed route such as `/model/add` is never taken for a
    model; FastAPI's own routes are GET only)."""
    context: ServerContext = app.state.context
    paths = {}
    for model_id in context.pipelines:
        scope = {"type": "http", "method": "POST", "path": f"/{model_id}", "root_path": ""}
        route = next((r for r in router.routes if r.matches(scope)[0] is Match.FULL), None)
        if getattr(route, "endpoint", None) is infer_v0:
            paths[f"/{model_id}"] = model_id
    return paths


# --- catalogue --------------------------------------------------------------------------------------------


@router.get("/health", response_model=Health)
async def health(context: Context) -> Health:
    return Health(models=sorted(context.pipelines), inference_threads=context.threads)


@router.get("/models", response_model=ModelCatalogue)
async def list_models(context: Context) -> ModelCatalogue:
    """Everything a client needs to draw: class and keypoint names, skeleton edges, input size."""
    return ModelCatalogue(
        models=[
            ModelDescription(
                model_id=model_id,
                description=p.info.description,
                class_names=list(p.info.class_names),
                keypoint_names=list(p.info.keypoint_names),
                skeleton=list(p.info.skeleton),
                input_width=p.info.input_width,
                input_height=p.info.input_height,
            )
            for model_id, p in sorted(context.pipelines.items())
        ]
    )


def _registry(context: ServerContext) -> ModelRegistry:
    return ModelRegistry(
        models=[
            RegisteredModel(
                model_id=model_id,
                batch_size=V1_BATCH_SIZE,
                input_height=p.info.input_height,
                input_width=p.info.input_width,
            )
            for model_id, p in sorted(context.pipelines.items())
        ]
    )


# --- inference-sdk v1 -------------------------------------------------------------------------------------


@router.get("/model/registry", response_model=ModelRegistry)
async def model_registry(request: Request, context: Context) -> ModelRegistry:
    context.keys.verify(supplied_key(request))
    return _registry(context)


@router.post("/model/add", response_model=ModelRegistry)
async def model_add(request: Request, body: ModelAddRequest, context: Context) -> ModelRegistry:
    """Every model is loaded at start-up: adding one that exists is a no-op, any other is 404."""
    context.keys.verify(supplied_key(request, body.api_key))
    context.pipeline(body.model_id)
    return _registry(context)


@router.post(
    "/infer/keypoints_detection",
    response_model=None,
    responses={200: {"model": InferenceResponse | list[InferenceResponse], "description": "predictions"}},
)
async def infer_v1(request: Request, body: KeypointsDetectionRequest, context: Context) -> Response:
    context.keys.verify(supplied_key(request, body.api_key))
    pipeline = context.pipeline(body.model_id)
    params = rf.InferenceParams(
        confidence=max(rf.MIN_THRESHOLD, body.confidence),
        iou_threshold=max(rf.MIN_THRESHOLD, body.iou_threshold),
        classes=frozenset(body.class_filter) if body.class_filter else None,
        keypoint_confidence=body.keypoint_confidence,
        max_detections=body.max_detections,
        output=rf.OutputFormat.IMAGE_AND_JSON if body.visualize_predictions else rf.OutputFormat.JSON,
        labels=body.visualization_labels,
        stroke=body.visualization_stroke_width,
    )
    refs = body.image if isinstance(body.image, list) else [body.image]
    if len(refs) > V1_BATCH_SIZE:
        raise BadRequest(f"at most {V1_BATCH_SIZE} images per request (got {len(refs)})")
    outcomes = [await context.infer(pipeline, await _v1_image(context, ref), params) for ref in refs]
    responses = [outcome.response for outcome in outcomes]
    return json_response(responses if isinstance(body.image, list) else responses[0], outcomes)


async def _v1_image(context: ServerContext, ref: ImageRef) -> Callable[[], bytes]:
    if ref.type == "url":
        data = await context.fetch(ref.value)
        return lambda: data
    return lambda: decode_base64_body(ref.value.encode("ascii", errors="replace"))


# --- Roboflow v0 ------------------------------------------------------------------------------------------


_V0_PATH = "/{project}/{version}"
_V0_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": InferenceResponse, "content": {"image/jpeg": {}}, "description": "predictions"}
}


@router.post(_V0_PATH, response_model=None, responses=_V0_RESPONSES)
@router.get(_V0_PATH, response_model=None, responses=_V0_RESPONSES)  # as the self-hosted server does
async def infer_v0(
    request: Request,
    project: str,
    version: str,
    context: Context,
    confidence: Annotated[float | None, Query(ge=0, description="0-1, or a percentage when >= 1")] = None,
    overlap: Annotated[
        float | None, Query(ge=0, description="NMS IoU; 0-1, or a percentage when >= 1")
    ] = None,
    classes: Annotated[str | None, Query(description="comma-separated class names to keep")] = None,
    keypoint_confidence: Annotated[float | None, Query(ge=0)] = None,
    max_detections: Annotated[int, Query(ge=1, le=MAX_DETECTIONS)] = rf.DEFAULT_MAX_DETECTIONS,
    output: Annotated[rf.OutputFormat, Query(alias="format")] = rf.OutputFormat.JSON,
    labels: bool = False,
    stroke: Annotated[int | None, Query(ge=1, le=MAX_STROKE, description="line width, px")] = None,
    image: Annotated[str | None, Query(description="URL of an image to fetch instead of a body")] = None,
) -> Response:
    """Roboflow's hosted route: `api_key` in the query (or a Bearer header), the image as the body."""
    # Most POSTs never get here: `V0FastPath` answers them before FastAPI's routing with the same
    # `answer_v0`. This route serves GET, multipart bodies and the parameters it leaves to FastAPI.
    params = v0_params(
        confidence=confidence,
        overlap=overlap,
        classes=classes,
        keypoint_confidence=keypoint_confidence,
        max_detections=max_detections,
        output=output,
        labels=labels,
        stroke=stroke,
    )
    return await answer_v0(
        context,
        f"{project}/{version}",
        supplied_key(request),
        params,
        lambda: _v0_image(request, context, image),
    )


async def _v0_image(request: Request, context: ServerContext, url: str | None) -> Callable[[], bytes]:
    """Bytes or a deferred base64 decode (run in the worker thread: 20 MB of base64 is CPU work)."""
    if url:
        data = await context.fetch(url)  # roboflow-python also POSTs an empty body here
        return lambda: data
    content_type = request.headers.get("content-type")
    if not content_type:
        raise BadRequest(MISSING_CONTENT_TYPE)
    body = await read_body(request, context.image_limits.max_body_bytes)
    if content_type.lower().startswith("multipart/form-data"):
        return await _multipart_file(request, body, context.image_limits.max_body_bytes)
    return image_in_body(content_type, body)


async def _multipart_file(request: Request, body: bytes, max_bytes: int) -> Callable[[], bytes]:
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=4, max_fields=32, max_part_size=max_bytes)
    except Exception as error:  # malformed multipart of any kind
        raise BadRequest(f"Could not parse the multipart body ({type(error).__name__})") from None
    part = form.get("file")
    if isinstance(part, UploadFile):
        data = await part.read()
        return lambda: data
    if isinstance(part, str):  # a text part: the base64 string
        text = part
        return lambda: decode_base64_body(text.encode("ascii", errors="replace"))
    raise BadRequest("the multipart body has no part named 'file'")
