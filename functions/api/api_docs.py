"""`/openapi.json` and the Swagger UI at `/swagger`, both generated from the routes on first request.

Powertools' `app.enable_swagger()` does the same but imports its OpenAPI document models (~50 ms) when
called, i.e. at cold start for every request; here they load only when the docs are asked for. The
page is Powertools' own Swagger UI (bundled JS/CSS, no CDN), fed the same generated document.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types


def register(app: APIGatewayHttpResolver) -> None:
    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document() -> Response[Any]:
        return Response(200, content_types.APPLICATION_JSON, app.get_openapi_json_schema())

    @app.get("/swagger", include_in_schema=False)
    def swagger_ui() -> Response[Any]:
        from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

        spec = app.get_openapi_json_schema()
        if app.current_event.get_query_string_value("format") == "json":  # as enable_swagger serves it
            return Response(200, content_types.APPLICATION_JSON, spec)
        script, style = _swagger_assets()
        # `</` inside the embedded JSON would end the <script> element early.
        page = generate_swagger_html(spec.replace("</", "<\\/"), script, style, "", None)
        return Response(200, "text/html", page)


@cache
def _swagger_assets() -> tuple[str, str]:
    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    folder = Path(swagger_ui.__file__).parent
    return (
        (folder / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (folder / "swagger-ui.min.css").read_text(encoding="utf-8"),
    )
