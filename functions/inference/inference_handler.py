"""The InferenceFunction (`InferenceBackend=builtin`): Roboflow's v0 route on the built-in models,
behind a Lambda Function URL with AWS_IAM auth. The ingest function calls it with SigV4-signed requests.

Cold start: settings, then the configured model is loaded (init phase). Each invocation answers one
request (`s3kp_models.v0_answer`). The log line per request has the model, status, sizes and timings:
never the body (an image) nor the query string (where a caller might put an API key).
"""

from __future__ import annotations

from s3kp_core import cold_start  # first: it makes the imports below cheaper

# isort: split
import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from function_url_events import MalformedEvent, request_from_event, response_for
from inference_dependencies import service, settings
from s3kp_models.v0_answer import V0Answer

logger = Logger()
config = settings()  # validated once per container: a bad variable fails the cold start, naming it
models = service(config)  # the model loads here, in the init phase


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = request_from_event(event)
    except MalformedEvent as error:
        logger.warning("malformed event", extra={"reason": str(error)})
        return response_for(_message(400, "Malformed request"))
    try:
        answer = models.answer(request)
    except Exception:  # our bug: the caller learns nothing, the log has the traceback (no image in it)
        logger.exception("unhandled error while answering", extra={"path": request.path})
        answer = _message(500, "Internal error.")
    timings = answer.outcome.timings if answer.outcome else None
    logger.info(
        "answered",
        extra={
            "model_id": config.model_id,
            "method": request.method,
            "path": request.path,
            "status": answer.status,
            "bytes_received": len(request.body),
            "detections": answer.detections,
            **(
                {"decode_ms": round(timings.decode * 1000, 1), "model_ms": round(timings.model * 1000, 1)}
                if timings
                else {}
            ),
        },
    )
    return response_for(answer)


def _message(status: int, message: str) -> V0Answer:
    return V0Answer(status, "application/json", json.dumps({"message": message}).encode())


cold_start.imports_done()
