"""Why processing an object stopped: a stable code, a human message, and what the handler does next.

Three outcomes, one exception class each:

- `PermanentError`: recorded as `failed` and never retried (the same input would fail the same way).
- `TransientError`: not recorded as a final state; the handler reports the message as a batch item
  failure, SQS redelivers it, and after the queue's `maxReceiveCount` it lands in the dead-letter queue.
- `Skipped`: recorded as `skipped` with the reason (nothing to do for this object); never retried.

Codes are stable snake_case strings (API clients and dashboards match on them); messages are for people
and are redacted on construction, so a secret can never reach a log line or a stored result through one.
"""

from __future__ import annotations

from typing import ClassVar, Final

from s3kp_core.redact import redact
from s3kp_core.results import Reason, Status

# --- the object -----------------------------------------------------------------------------------
OBJECT_MISSING: Final = "object_missing"
"""The object is gone when we fetch it (404): deleted or replaced since the event. Skipped, because
there is nothing left to process and a retry cannot bring it back; a newer upload has its own event."""
OBJECT_EMPTY: Final = "object_empty"
OBJECT_TOO_LARGE: Final = "object_too_large"
"""More bytes than `MAX_OBJECT_BYTES`: refused before downloading."""
OBJECT_UNREADABLE: Final = "object_unreadable"
"""S3 refused the read (e.g. access denied, an archived storage class): retrying will not help."""
OBJECT_READ_FAILED: Final = "object_read_failed"
"""Reading the object failed for a passing reason (throttling, 5xx, network): retried."""
OUTPUT_WRITE_FAILED: Final = "output_write_failed"
"""Writing the annotated copy or the predictions document failed for a passing reason: retried."""
OUTPUT_WRITE_REFUSED: Final = "output_write_refused"
"""S3 refused writing the annotated copy or the predictions document with a 4xx that another try would get
again (access denied, a missing bucket, metadata over 2 KB, a key over 1,024 bytes...): recorded as
`failed`, not retried. Throttling, timeouts and conflicts stay `output_write_failed`."""
EVENT_PUBLISH_FAILED: Final = "event_publish_failed"
"""The result is recorded but its EventBridge event could not be put after several attempts: the message is
retried (the recorded result stays as it is; the event goes out on a later delivery). Never a result state."""

# --- the image ------------------------------------------------------------------------------------
IMAGE_UNDECODABLE: Final = "image_undecodable"
"""Not an image in a supported format, or truncated/corrupt."""
IMAGE_TOO_LARGE: Final = "image_too_large"
"""More pixels than `MAX_IMAGE_PIXELS` according to the header: refused before decoding."""
IMAGE_TOO_SMALL: Final = "image_too_small"

# --- the inference endpoint -----------------------------------------------------------------------
INFERENCE_REJECTED: Final = "inference_rejected"
"""A 4xx other than 401/403/408/429: the request itself is wrong (bad model id, image refused...)."""
INFERENCE_UNAUTHORIZED: Final = "inference_unauthorized"
"""401/403: the API key is wrong, lacks the scope, or the quota is exhausted."""
INFERENCE_UNAVAILABLE: Final = "inference_unavailable"
"""Timeouts, connection errors, 429 or 5xx on every attempt (or no time left): retried via SQS."""
INFERENCE_BAD_RESPONSE: Final = "inference_bad_response"
"""A 200 whose body is not the contract's JSON: the endpoint's (or a gateway's) fault, so retried like a
5xx; recorded as `failed` only when the client's attempts and the queue's deliveries are exhausted."""

# --- why an object is skipped ---------------------------------------------------------------------
OUTPUT_PREFIX: Final = "output_prefix"
"""The object is one of our own outputs (annotated copy or predictions JSON): processing it would loop."""
OUTSIDE_INPUT_PREFIX: Final = "outside_input_prefix"

# --- anything else --------------------------------------------------------------------------------
INTERNAL_ERROR: Final = "internal_error"
"""An unforeseen exception (a bug): retried like a transient failure, recorded on the last delivery."""
RESULT_TOO_LARGE: Final = "result_too_large"
"""The result item is over 400 KB even with its predictions in S3: recorded without its counts."""

# Failures caused by the deployment rather than the object (a wrong or placeholder API key, a bucket policy
# or output bucket that refuses our writes): recorded like any failure, but not remembered by idempotency,
# so the same event sent again after the fix is processed.
CONFIGURATION_CODES: Final = frozenset({INFERENCE_UNAUTHORIZED, OUTPUT_WRITE_REFUSED})


class ProcessingError(Exception):
    """Processing one object stopped: `code` is stable, `message` is human and already redacted."""

    permanent: ClassVar[bool] = True
    status: ClassVar[Status] = Status.FAILED

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = redact(message)
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __reduce__(self) -> tuple[type[ProcessingError], tuple[str, str]]:
        # Exceptions pickle their args; ours are (code, message), not the single message we pass up.
        return type(self), (self.code, self.message)

    def reason(self) -> Reason:
        """The `Reason` stored on the result record."""
        return Reason(code=self.code, message=self.message)


class PermanentError(ProcessingError):
    """The object cannot be processed; recorded as `failed` and never retried."""


class TransientError(ProcessingError):
    """Worth another try later: reported as a batch item failure, so SQS retries it (then the DLQ)."""

    permanent = False


class Skipped(ProcessingError):
    """Nothing to do for this object: recorded as `skipped` with the reason; never retried."""

    status = Status.SKIPPED
