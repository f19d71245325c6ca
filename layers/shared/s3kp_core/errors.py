"""Why processing an object stopped: a stable code, a human message, and what the handler does next.

Three outcomes, one exception class each:

- `PermanentError`: recorded as `failed` and never retried (the same input would fail the same way).
- `TransientError`: not recorded as a final state; the handler reports the message as a batch item
  failure, SQS redelivers it, and after the queue's `maxReceiveCount` it lands in the dead-letter queue.
  Its subclass `EndpointUnavailable` is the inference endpoint's fault (unreachable, 5xx, 429, a
  contract-breaking answer, a refused key): the handler defers such a message for as long as the queue
  would keep it instead of spending its receives (docs/ingest.md, "Endpoint outages").
- `Skipped`: recorded as `skipped` with the reason (nothing to do for this object); never retried.

Codes are stable snake_case strings (API clients and dashboards match on them); messages are one short
sentence for people (stored, shown by the API and the viewer: no URLs, no library internals) and are
redacted on construction, so a secret can never reach a log line or a stored result through one. The
technical detail, when there is one, travels in `detail` (redacted too) and goes to the log only.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

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

# --- the video (functions/video: docs/videos.md) ------------------------------------------------
VIDEO_UNDECODABLE: Final = "video_undecodable"
"""Not a video in a supported container and codec (an image renamed `.mp4`), or corrupt beyond reading
(an MP4 cut off before its index)."""
VIDEO_NO_STREAM: Final = "video_no_stream"
"""The container holds no video stream (an audio-only `.mp4`)."""
VIDEO_NO_FRAMES: Final = "video_no_frames"
"""The video stream holds no frame that decodes."""
VIDEO_TOO_LONG: Final = "video_too_long"
"""Longer than `MAX_VIDEO_SECONDS` by its header (or, without one, by its timestamps)."""
VIDEO_TOO_LARGE: Final = "video_too_large"
"""Frames with more pixels than `MAX_VIDEO_PIXELS`: refused before decoding."""
VIDEO_TRUNCATED: Final = "video_truncated"
"""The data ends well before the duration its header declares (an upload cut short)."""
VIDEO_SEGMENT_TIMEOUT: Final = "video_segment_timeout"
"""A segment could not be processed within the function's time: retried, recorded on the last delivery."""
VIDEO_SEGMENT_CRASHED: Final = "video_segment_crashed"
"""A segment's last delivery ended without any outcome: its invocation was killed (out of memory, a crash
in native code, the function's timeout). Recorded by the segment's watch (docs/videos.md)."""
VIDEO_FANOUT_FAILED: Final = "video_fanout_failed"
"""Sending a video's segment tasks to its queue failed for a passing reason: retried."""

# --- the inference endpoint -----------------------------------------------------------------------
INFERENCE_REJECTED: Final = "inference_rejected"
"""A 4xx other than 401/403/408/429: the request itself is wrong (bad model id, image refused...)."""
INFERENCE_UNAUTHORIZED: Final = "inference_unauthorized"
"""401/402/403: the API key is wrong, lacks the scope, or the quota or credits are exhausted. The
operator's to fix: the message waits (deferred) until the key works or the queue's retention runs out."""
INFERENCE_UNAVAILABLE: Final = "inference_unavailable"
"""Timeouts, connection errors, 429 or 5xx on every attempt (or no time left): the message waits."""
INFERENCE_BAD_RESPONSE: Final = "inference_bad_response"
"""A 200 whose body is not the contract's JSON: the endpoint's (or a gateway's) fault, so it waits like a
5xx; recorded as `failed` only when the queue's retention runs out."""

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

    def __init__(self, code: str, message: str, *, detail: str | None = None) -> None:
        self.code = code
        self.message = redact(message)
        self.detail = None if detail is None else redact(detail)
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle their args; ours are (code, message) plus keywords, not the single message.
        return _rebuild, (type(self), self.code, self.message, vars(self))

    def reason(self) -> Reason:
        """The `Reason` stored on the result record."""
        return Reason(code=self.code, message=self.message)


class PermanentError(ProcessingError):
    """The object cannot be processed; recorded as `failed` and never retried."""


class TransientError(ProcessingError):
    """Worth another try later: reported as a batch item failure, so SQS retries it (then the DLQ)."""

    permanent = False


class EndpointUnavailable(TransientError):
    """The inference endpoint's fault, not the object's: the message is deferred, not failed.

    `retry_in`: seconds until the endpoint should be tried again (the circuit breaker's next probe);
    `open_for`: how long the endpoint has been failing, when a shared circuit knows (for metrics and
    for spreading deferrals out); `calls_made`: whether this attempt reached for the endpoint at all
    (False when the open circuit answered without calling it); `rate_limited`: the last answer was a
    429, so the endpoint is up and asks for fewer requests (it does not open the circuit).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        detail: str | None = None,
        retry_in: float | None = None,
        open_for: float | None = None,
        calls_made: bool = True,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(code, message, detail=detail)
        self.retry_in = retry_in
        self.open_for = open_for
        self.calls_made = calls_made
        self.rate_limited = rate_limited


class Skipped(ProcessingError):
    """Nothing to do for this object: recorded as `skipped` with the reason; never retried."""

    status = Status.SKIPPED


def _rebuild(cls: type[ProcessingError], code: str, message: str, state: dict[str, Any]) -> ProcessingError:
    error = cls.__new__(cls)
    ProcessingError.__init__(error, code, message)
    error.__dict__.update(state)
    return error
