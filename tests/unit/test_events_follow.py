"""`s3kp events`: what it prints, and that it leaves nothing behind even when setting up fails half-way."""

from __future__ import annotations

from typing import Any

import pytest

from s3kp.events_follow import EVENT_PATTERN, format_event, subscription


class Recorder:
    """Stands in for the events and SQS clients; records calls, fails the one named in `fail`."""

    def __init__(self, fail: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def __getattr__(self, name: str) -> Any:
        def call(**kwargs: Any) -> dict[str, Any]:
            self.calls.append(name)
            if name == self.fail:
                raise RuntimeError(f"{name} refused")
            return {
                "QueueUrl": "http://q/s3kp-events-x",
                "Attributes": {"QueueArn": "arn:aws:sqs:us-east-1:1:s3kp-events-x"},
                "RuleArn": "arn:aws:events:us-east-1:1:rule/b/s3kp-events-x",
            }

        return call


def test_a_failing_step_still_removes_the_rule_and_the_queue() -> None:
    events, sqs = Recorder(fail="put_targets"), Recorder()

    with pytest.raises(RuntimeError, match="put_targets"), subscription(events, sqs, "bus"):
        pass

    assert events.calls == ["put_rule", "put_targets", "remove_targets", "delete_rule"]
    assert sqs.calls[-1] == "delete_queue"


def test_the_rule_matches_result_events_only() -> None:
    assert EVENT_PATTERN == {"source": ["s3-keypoints"], "detail-type": ["Keypoint Result"]}


def test_one_line_per_event_with_totals_or_the_reason() -> None:
    source = {"bucket": "b", "key": "incoming/a b.jpg"}
    succeeded = {"detail": {"status": "succeeded", "model_id": "faces/2", "source": source, "detections": 4,
                            "keypoints": 24, "updated_at": "2026-11-30T00:00:00Z"}}  # fmt: skip
    failed = {"detail": {"status": "failed", "model_id": "faces/2", "source": source,
                         "reason": {"code": "object_empty", "message": "empty"}}}  # fmt: skip

    assert format_event(succeeded) == (
        "2026-11-30T00:00:00Z  succeeded  faces/2  s3://b/incoming/a b.jpg  4 detections, 24 keypoints"
    )
    assert format_event(failed).endswith("failed     faces/2  s3://b/incoming/a b.jpg  object_empty: empty")
