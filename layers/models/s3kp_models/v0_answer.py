"""Roboflow's v0 route (`POST /{project}/{version}`) answered without a web framework: the request's
method, path, query string, content type and body in; a status, a content type and a body out.

The InferenceFunction serves it behind its Function URL. It runs the local server's own code paths
(`v0_query.read_query`, `request_decoding`, `model_runner`, `request_errors`), in the order the server
checks them: the route, the query's values (422), the model (404), the body (400, 413), the image
(400, 413). What the local server adds for a developer (the v1 routes, multipart bodies, `image=<url>`,
the catalogue) is not served here: an endpoint only the ingest function calls needs none of it, and a
URL fetcher would be a server-side request forgery risk inside the account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from s3kp_models import params as rf
from s3kp_models.model_runner import InferenceOutcome, run_inference
from s3kp_models.pipelines.base import KeypointPipeline
from s3kp_models.request_decoding import MISSING_CONTENT_TYPE, ImageLimits, image_in_body
from s3kp_models.request_errors import ApiError, BadRequest, ModelNotFound, PayloadTooLarge, too_large_message
from s3kp_models.v0_query import QueryInvalid, read_query

JSON = "application/json"
NO_URL_FETCH = "image=<url> is not served by this endpoint: send the image in the request body"
NO_MULTIPART = "multipart bodies are not served by this endpoint: send the base64 of the image as the body"


@dataclass(frozen=True)
class V0Request:
    method: str
    path: str  # e.g. "/faces/2"
    query_string: bytes  # as received, without the "?"
    content_type: str | None
    body: bytes


@dataclass(frozen=True)
class V0Answer:
    status: int
    content_type: str
    body: bytes
    outcome: InferenceOutcome | None = None  # the timings and predictions behind a 200
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def detections(self) -> int:
        return len(self.outcome.response["predictions"]) if self.outcome else 0


def _json(status: int, payload: Any, **headers: str) -> V0Answer:
    return V0Answer(status, JSON, msgspec.json.encode(payload), headers=headers)


class V0Service:
    """The loaded models and the limits; `answer` is safe to call from several threads at once."""

    def __init__(
        self, pipelines: Mapping[str, KeypointPipeline], limits: ImageLimits, *, served: str | None = None
    ) -> None:
        """`served` completes a 404's message (default: the ids of `pipelines`)."""
        self.pipelines = dict(pipelines)
        self.limits = limits
        self.served = served or f"this endpoint serves {', '.join(sorted(self.pipelines))}"

    def answer(self, request: V0Request) -> V0Answer:
        model_id = _model_id(request.path)
        if model_id is None:
            return _json(404, {"message": "Not Found"})
        if request.method not in ("POST", "GET"):
            return _json(405, {"message": "Method Not Allowed"}, allow="GET, POST")
        try:
            query = read_query(request.query_string)
        except QueryInvalid as invalid:
            return _json(invalid.status_code, {"detail": invalid.detail})
        try:
            return self._infer(model_id, query.params, query.image_url, request)
        except ApiError as error:
            return _json(error.status_code, {"message": error.message})

    def _infer(
        self, model_id: str, params: rf.InferenceParams, image_url: str | None, request: V0Request
    ) -> V0Answer:
        pipeline = self.pipelines.get(model_id)
        if pipeline is None:
            raise ModelNotFound(model_id, served=self.served)
        if image_url:
            raise BadRequest(NO_URL_FETCH)
        if not request.content_type:
            raise BadRequest(MISSING_CONTENT_TYPE)
        if request.content_type.strip().lower().startswith("multipart/form-data"):
            raise BadRequest(NO_MULTIPART)
        if len(request.body) > self.limits.max_body_bytes:
            raise PayloadTooLarge(too_large_message(self.limits.max_body_bytes))
        outcome = run_inference(
            pipeline, image_in_body(request.content_type, request.body), params, self.limits
        )
        timing = {"server-timing": outcome.timings.header()}
        if params.output is rf.OutputFormat.IMAGE:
            return V0Answer(200, "image/jpeg", outcome.annotated_jpeg or b"", outcome, timing)
        return V0Answer(200, JSON, msgspec.json.encode(outcome.response), outcome, timing)


def _model_id(path: str) -> str | None:
    """`/{project}/{version}` -> "project/version"; None for any other path."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
        return None
    return f"{parts[1]}/{parts[2]}"
