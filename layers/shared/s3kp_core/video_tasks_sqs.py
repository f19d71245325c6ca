"""The SQS implementation of `video_tasks.SegmentQueue`: SendMessageBatch, ten tasks a request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from s3kp_core import errors
from s3kp_core.video_tasks import SegmentTask, encode_task

_BATCH_LIMIT = 10
_ATTEMPTS = 3
SQS_MAX_DELAY_SECONDS = 900  # SendMessage's DelaySeconds limit


class SqsSegmentQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._sqs = client
        self._queue_url = queue_url

    def send(self, tasks: Sequence[SegmentTask], *, delay_seconds: int = 0) -> None:
        delay = max(0, min(SQS_MAX_DELAY_SECONDS, delay_seconds))
        for start in range(0, len(tasks), _BATCH_LIMIT):
            pending = {
                str(n): encode_task(task) for n, task in enumerate(tasks[start : start + _BATCH_LIMIT])
            }
            for _ in range(_ATTEMPTS):  # entries SQS refused on its side (e.g. throttled) are sent again
                pending = self._send(pending, delay)
                if not pending:
                    break
            if pending:
                raise errors.TransientError(
                    errors.VIDEO_FANOUT_FAILED, f"SQS did not accept {len(pending)} segment tasks"
                )

    def _send(self, entries: dict[str, str], delay: int) -> dict[str, str]:
        try:
            response = self._sqs.send_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": entry_id, "MessageBody": body, "DelaySeconds": delay}
                    for entry_id, body in entries.items()
                ],
            )
        except Exception as error:
            raise errors.TransientError(
                errors.VIDEO_FANOUT_FAILED, f"sending segment tasks failed: {type(error).__name__}"
            ) from None
        return {failure["Id"]: entries[failure["Id"]] for failure in response.get("Failed", [])}
