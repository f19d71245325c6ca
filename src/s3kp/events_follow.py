"""`s3kp events`: follow the result events on the stack's EventBridge bus and print each one.

It owns a temporary SQS queue and a rule on the bus (pattern: source `s3-keypoints`, detail-type
`Keypoint Result`) targeting it, and removes both on exit, whatever ends it (Ctrl-C, `--count`,
`--timeout`, an error). Works against the local stack (default) and in AWS (`--bus NAME`, the user's
credentials: needs `events:PutRule/PutTargets/RemoveTargets/DeleteRule` on the bus and
`sqs:CreateQueue/ReceiveMessage/DeleteMessage/DeleteQueue/SetQueueAttributes` on `s3kp-events-*`).
"""

from __future__ import annotations

import json
import math
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

from s3kp_core.result_events import DETAIL_TYPE, EVENT_SOURCE

EVENT_PATTERN = {"source": [EVENT_SOURCE], "detail-type": [DETAIL_TYPE]}
POLL_SECONDS = 5


@dataclass(frozen=True)
class Subscription:
    rule_name: str
    bus: str
    queue_url: str


@contextmanager
def subscription(events: Any, sqs: Any, bus: str) -> Iterator[Subscription]:
    """A rule on `bus` delivering result events to a fresh queue; both deleted on exit."""
    name = f"s3kp-events-{secrets.token_hex(4)}"
    queue_url = str(
        sqs.create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": "3600"})["QueueUrl"]
    )
    rule_created = False
    try:
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        rule_arn = events.put_rule(
            Name=name, EventBusName=bus, EventPattern=json.dumps(EVENT_PATTERN), State="ENABLED"
        )["RuleArn"]
        rule_created = True
        # In AWS the queue must let EventBridge send, from this rule only.
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
        events.put_targets(Rule=name, EventBusName=bus, Targets=[{"Id": "s3kp-events", "Arn": queue_arn}])
        yield Subscription(rule_name=name, bus=bus, queue_url=queue_url)
    finally:
        if rule_created:
            _quietly(lambda: events.remove_targets(Rule=name, EventBusName=bus, Ids=["s3kp-events"]))
            _quietly(lambda: events.delete_rule(Name=name, EventBusName=bus))
        _quietly(lambda: sqs.delete_queue(QueueUrl=queue_url))


def _quietly(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception as error:  # cleanup must try every step; say what was left behind
        print(f"s3kp events: cleanup step failed: {error}", file=sys.stderr)


def follow(
    sqs: Any,
    queue_url: str,
    on_event: Callable[[dict[str, Any]], None],
    *,
    count: int | None = None,
    timeout: float | None = None,
    poll_seconds: int = POLL_SECONDS,
) -> int:
    """Receive and hand over events until `count` were seen or `timeout` seconds passed; returns the count."""
    seen = 0
    deadline = time.monotonic() + timeout if timeout is not None else None
    while count is None or seen < count:
        wait = poll_seconds
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            wait = max(1, min(wait, math.ceil(left)))  # 0 would poll SQS in a tight loop
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get(
            "Messages", []
        )
        for message in messages:
            try:
                event = json.loads(message["Body"])
            except ValueError:
                event = {"unreadable": message["Body"]}
            on_event(event)
            seen += 1
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return seen


def format_event(event: dict[str, Any]) -> str:
    """One human line: time, status, model, source key, totals or the reason."""
    detail = event.get("detail") or {}
    source = detail.get("source") or {}
    status = str(detail.get("status", "?"))
    if status == "succeeded":
        what = f"{detail.get('detections', 0)} detections, {detail.get('keypoints', 0)} keypoints"
    else:
        reason = detail.get("reason") or {}
        what = f"{reason.get('code', '?')}: {reason.get('message', '')}"
    when = str(detail.get("updated_at") or event.get("time", ""))
    return (
        f"{when}  {status:<9}  {detail.get('model_id', '?')}  "
        f"s3://{source.get('bucket', '?')}/{source.get('key', '?')}  {what}"
    )


def printer(stream: TextIO, as_json: bool) -> Callable[[dict[str, Any]], None]:
    def show(event: dict[str, Any]) -> None:
        stream.write((json.dumps(event, ensure_ascii=False) if as_json else format_event(event)) + "\n")
        stream.flush()

    return show


def run_from_args(args: Any) -> int:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from s3kp.local_target import LocalTargetError, local_target

    if args.bus:
        session, endpoint_url, bus = boto3.session.Session(), None, args.bus
    else:
        try:
            target = local_target(args.name_prefix, args.endpoint_url)
        except LocalTargetError as error:
            print(f"s3kp events: {error}; pass --bus to follow a bus in AWS", file=sys.stderr)
            return 1
        session, endpoint_url, bus = target.session, target.endpoint_url, target.event_bus
    if session.region_name is None:
        print("s3kp events: no AWS region: set AWS_REGION (or a profile's region)", file=sys.stderr)
        return 1
    events = session.client("events", endpoint_url=endpoint_url)
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    as_json = bool(args.json)
    try:
        with subscription(events, sqs, bus) as sub:
            print(
                f"s3kp events: following {bus} (rule {sub.rule_name}); Ctrl-C stops",
                file=sys.stderr,
                flush=True,
            )
            seen = follow(
                sqs, sub.queue_url, printer(sys.stdout, as_json), count=args.count, timeout=args.timeout
            )
    except (ClientError, BotoCoreError) as error:
        print(f"s3kp events: {error}", file=sys.stderr)
        return 1
    print(f"s3kp events: {seen} event(s); rule and queue removed", file=sys.stderr)
    return 0
