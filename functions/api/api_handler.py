"""The results API: API Gateway HTTP API (payload 2.0) -> Powertools resolver -> the results reader.

Settings are validated here, at cold start. Tracing: Powertools' Tracer imports the X-Ray SDK (~0.25 s
here), which alone would exceed the cold-start budget of this latency-facing function; the function
relies on Lambda's own X-Ray segment (Tracing: Active) and API Gateway access logs instead.
"""

from __future__ import annotations

from s3kp_core import cold_start  # first: it makes the imports below cheaper

# isort: split
from http import HTTPStatus
from typing import Any

import api_docs
import api_errors
from api_dependencies import settings
from api_routes import router
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, CORSConfig
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

API_TITLE = "s3-keypoints results API"
API_VERSION = "1.0.0"

logger = Logger()
config = settings()  # validated once per container: a bad variable fails the cold start, naming it

app = APIGatewayHttpResolver(
    enable_validation=True,
    # A response that does not match its model is our bug: a 500, not a 422 blaming the client.
    response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR,
    cors=CORSConfig(allow_origin=config.cors_allow_origin, max_age=600),
)
app.configure_openapi(
    title=API_TITLE,
    version=API_VERSION,
    description="Keypoint detection results of the images uploaded to S3, and their annotated copies.",
)
app.include_router(router)
api_docs.register(app)
api_errors.register(app, logger)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


cold_start.imports_done()
