"""The hot route, `POST /{project}/{version}`, answered before FastAPI's routing.

At 640 px the faces model takes ~1.5-2 ms and the whole image ~4-5 ms, while FastAPI's routing,
dependency solving and query validation cost ~0.5-0.7 ms a request (profiled): about as much as the
model, spent on reading a handful of query parameters. This pure ASGI middleware answers the requests
whose reading is certain: a served model's path, a body that is not multipart, and query parameters in
a plain form that FastAPI reads to the same values (`s3kp_models.v0_query.read_plain_query`: digits
for numbers, `true`/`false`/`1`/`0`, a format's exact name). It runs the very code of the FastAPI route
(`answers.answer_v0`: key, model, image, worker thread, response) and answers errors with the same
handler. Everything else (GET,
multipart, a parameter in another spelling, an invalid one, which gets FastAPI's 422 with its detail,
every other path) goes on to FastAPI unchanged, which also still describes the route in OpenAPI.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from s3kp_models.request_decoding import MISSING_CONTENT_TYPE, image_in_body
from s3kp_models.request_errors import ApiError, BadRequest
from s3kp_models.v0_query import read_plain_query
from starlette.types import ASGIApp, Receive, Scope, Send

from s3kp.model_server import answers
from s3kp.model_server.auth import first_key
from s3kp.model_server.body_limit import receive_body
from s3kp.model_server.context import ServerContext
from s3kp.model_server.http_errors import api_error_response


class V0FastPath:
    """Pure ASGI middleware in front of the FastAPI app (see the module's docstring).

    `model_paths` maps `/{project}/{version}` to the model id for every served model whose path no other
    route claims, so a fixed route (`/model/add`) is never taken for a model."""

    def __init__(self, app: ASGIApp, *, context: ServerContext, model_paths: dict[str, str]) -> None:
        self.app = app
        self.context = context
        self.model_paths = model_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        model_id = self._model_id(scope)
        if model_id is None:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope, (b"content-type", b"authorization"))
        content_type = headers.get(b"content-type")
        if content_type is not None and content_type.lower().startswith("multipart/form-data"):
            await self.app(scope, receive, send)
            return
        read = read_plain_query(scope["query_string"])
        if read is None:
            await self.app(scope, receive, send)
            return
        params, url = read.params, read.image_url
        key = first_key(read.api_key, headers.get(b"authorization", ""))

        async def image() -> Callable[[], bytes]:
            if url:
                data = await self.context.fetch(url)
                return lambda: data
            if not content_type:
                raise BadRequest(MISSING_CONTENT_TYPE)
            body = await receive_body(receive, self.context.image_limits.max_body_bytes)
            return image_in_body(content_type, body)

        try:
            response = await answers.answer_v0(self.context, model_id, key, params, image)
        except ApiError as error:
            response = api_error_response(error)
        await response(scope, receive, send)

    def _model_id(self, scope: Scope) -> str | None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            return None
        return self.model_paths.get(scope["path"])


def _headers(scope: Scope, names: Collection[bytes]) -> dict[bytes, str]:
    """The first value of each of `names` (as Starlette's `Headers.get`), decoded as latin-1."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in names and name not in found:
            found[name] = value.decode("latin-1")
    return found
