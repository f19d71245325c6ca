"""Answering an inference request, shared by the FastAPI routes and the v0 fast path (`v0_fast_path`).

The answer is a plain `Response` of pydantic-core's JSON encoder (no response-model validation on the
hot path) with a `Server-Timing` header; the schemas still document it in OpenAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pydantic_core
from s3kp_models import params as rf
from s3kp_models.model_runner import InferenceOutcome, Timings
from starlette.responses import Response

from s3kp.model_server.context import ServerContext


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
