"""`s3kp redrive` against SQS's API as botocore's Stubber plays it: the exact calls and their order, for
the move task (which the local stack's moto cannot answer) and for the receive/send/delete fallback, for
one pair and for the stack's two (images: the DLQ to the ingest queue; videos: the video DLQ to the video
queue)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from s3kp_core.video_tasks import is_task
from sqs_retries import FIRST_SENT_ATTRIBUTE, REQUEUE_ATTRIBUTE

from s3kp import redrive
from s3kp.cli import build_parser, main
from s3kp.redrive import (
    ALL,
    BY_HAND,
    IMAGES,
    MOVE_TASK,
    VIDEOS,
    QueuePair,
    RedriveError,
    endpoint_lacks_move_tasks,
    redrive_queues,
    run_redrive,
    stack_pairs,
)
from tests.conftest import ROOT

QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/s3kp-ingest-abc"
DLQ_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/s3kp-dlq-abc"
QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:s3kp-ingest-abc"
DLQ_ARN = "arn:aws:sqs:eu-west-1:123456789012:s3kp-dlq-abc"
VIDEO_QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/s3kp-video-abc"
VIDEO_DLQ_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/s3kp-video-dlq-abc"
VIDEO_QUEUE_ARN = "arn:aws:sqs:eu-west-1:123456789012:s3kp-video-abc"
VIDEO_DLQ_ARN = "arn:aws:sqs:eu-west-1:123456789012:s3kp-video-dlq-abc"
MOTO_500 = "<!doctype html>\n<title>500 Internal Server Error</title>"


@pytest.fixture
def sqs() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client(
        "sqs", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_count(stubber: Stubber, url: str, count: int) -> None:
    stubber.add_response(
        "get_queue_attributes",
        {"Attributes": {"ApproximateNumberOfMessages": str(count)}},
        {"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages"]},
    )


def expect_arns(stubber: Stubber, dlq: str = DLQ_URL, queue: str = QUEUE_URL) -> None:
    arns = {
        DLQ_URL: DLQ_ARN,
        QUEUE_URL: QUEUE_ARN,
        VIDEO_DLQ_URL: VIDEO_DLQ_ARN,
        VIDEO_QUEUE_URL: VIDEO_QUEUE_ARN,
    }
    for url, arn in ((dlq, arns[dlq]), (queue, arns[queue])):
        stubber.add_response(
            "get_queue_attributes",
            {"Attributes": {"QueueArn": arn}},
            {"QueueUrl": url, "AttributeNames": ["QueueArn"]},
        )


def task(
    status: str, moved: int, *, handle: str | None = "h-1", failure: str | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "Status": status,
        "SourceArn": DLQ_ARN,
        "DestinationArn": QUEUE_ARN,
        "ApproximateNumberOfMessagesMoved": moved,
        "ApproximateNumberOfMessagesToMove": 6,
        "StartedTimestamp": 1_700_000_000_000,
    }
    if handle:  # SQS lists the handle only while the task runs
        entry["TaskHandle"] = handle
    if failure:
        entry["FailureReason"] = failure
    return entry


def run(client: Any, **options: Any) -> redrive.Summary:
    return run_redrive(
        sqs=client,
        queue_url=QUEUE_URL,
        dlq_url=DLQ_URL,
        progress_stream=io.StringIO(),
        sleep=lambda seconds: None,
        **options,
    )


# --- SQS's move task --------------------------------------------------------------------------------


def test_the_move_task_goes_from_the_dlq_to_the_ingest_queue_and_wait_follows_it_to_the_end(
    sqs: tuple[Any, Stubber],
) -> None:
    client, stubber = sqs
    expect_count(stubber, DLQ_URL, 6)
    expect_arns(stubber)
    stubber.add_response(
        "start_message_move_task",
        {"TaskHandle": "h-1"},
        {"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN, "MaxNumberOfMessagesPerSecond": 20},
    )
    for entry in (task("RUNNING", 2), task("RUNNING", 5), task("COMPLETED", 6, handle=None)):
        stubber.add_response(
            "list_message_move_tasks", {"Results": [entry]}, {"SourceArn": DLQ_ARN, "MaxResults": 10}
        )
    seen = io.StringIO()

    summary = run_redrive(sqs=client, queue_url=QUEUE_URL, dlq_url=DLQ_URL, wait=True, max_rate=20,
                          progress_stream=seen, sleep=lambda seconds: None)  # fmt: skip

    assert (summary.method, summary.task_handle, summary.task_status) == (MOVE_TASK, "h-1", "COMPLETED")
    assert (summary.in_dlq, summary.moved, summary.ok) == (6, 6, True)
    assert [line.split("]")[1].strip() for line in seen.getvalue().splitlines()] == [
        "moved 2/6  RUNNING", "moved 5/6  RUNNING", "moved 6/6  COMPLETED"
    ]  # fmt: skip
    assert "  moved 6  " in "\n".join(summary.lines())


def test_without_wait_the_task_handle_is_reported_and_nothing_is_polled(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    expect_count(stubber, DLQ_URL, 6)
    expect_arns(stubber)
    stubber.add_response(
        "start_message_move_task", {"TaskHandle": "h-1"}, {"SourceArn": DLQ_ARN, "DestinationArn": QUEUE_ARN}
    )

    summary = run(client)

    assert summary.as_dict()["task_handle"] == "h-1"
    assert (summary.task_status, summary.ok) == ("RUNNING", True)
    assert any("--wait follows the task" in line for line in summary.lines())


def test_a_failed_task_is_reported_with_its_reason_and_fails_the_command(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    expect_count(stubber, DLQ_URL, 6)
    expect_arns(stubber)
    stubber.add_response("start_message_move_task", {"TaskHandle": "h-1"}, None)
    stubber.add_response(
        "list_message_move_tasks",
        {"Results": [task("FAILED", 1, handle=None, failure="AccessDenied")]},
        {"SourceArn": DLQ_ARN, "MaxResults": 10},
    )

    summary = run(client, wait=True)

    assert (summary.task_status, summary.failure_reason, summary.ok) == ("FAILED", "AccessDenied", False)


def test_sqs_refusing_a_second_task_follows_the_one_already_running(sqs: tuple[Any, Stubber]) -> None:
    """`UnsupportedOperation` comes from SQS itself (here: a task already runs on the DLQ): it is never
    taken for a missing feature, so nothing is moved by hand beside the running task."""
    client, stubber = sqs
    expect_count(stubber, DLQ_URL, 6)
    expect_arns(stubber)
    stubber.add_client_error(
        "start_message_move_task", "AWS.SimpleQueueService.UnsupportedOperation", "a task is running", 400
    )
    stubber.add_response("list_message_move_tasks", {"Results": [task("RUNNING", 3, handle="h-0")]}, None)
    stubber.add_response("list_message_move_tasks", {"Results": [task("COMPLETED", 6, handle=None)]}, None)

    summary = run(client, wait=True)

    assert (summary.method, summary.task_handle, summary.already_running) == (MOVE_TASK, "h-0", True)
    assert (summary.task_status, summary.moved) == ("COMPLETED", 6)


def test_an_sqs_refusal_with_no_task_running_is_an_error_not_a_fallback(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    expect_count(stubber, DLQ_URL, 6)
    expect_arns(stubber)
    stubber.add_client_error("start_message_move_task", "AccessDenied", "not allowed", 403)
    stubber.add_response("list_message_move_tasks", {"Results": [task("COMPLETED", 6, handle=None)]}, None)

    summary = run(client)

    assert (summary.method, summary.moved, summary.ok) == (None, 0, False)
    assert "AccessDenied" in str(summary.error)
    assert "AccessDenied" in summary.lines()[-1]


@pytest.mark.parametrize(
    ("code", "status", "lacking"),
    [
        ("500", 500, True),  # moto 5.2.5: an HTML page, botocore uses the status as the code
        ("501", 501, True),
        ("InvalidAction", 400, True),
        ("AWS.SimpleQueueService.UnknownOperation", 400, True),
        ("InternalError", 500, False),  # SQS's own 500 names itself: a real failure
        ("AWS.SimpleQueueService.UnsupportedOperation", 400, False),
        ("ResourceNotFoundException", 400, False),
        ("AccessDenied", 403, False),
    ],
)
def test_only_an_endpoint_that_does_not_know_the_action_counts_as_lacking_move_tasks(
    code: str, status: int, lacking: bool
) -> None:
    error = ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "StartMessageMoveTask",
    )
    assert endpoint_lacks_move_tasks(error) is lacking


# --- receive, send, delete ----------------------------------------------------------------------------


def dlq_message(n: int, deferrals: int | None = None) -> dict[str, Any]:
    attributes = {"origin": {"DataType": "String", "StringValue": "s3"}}
    if deferrals is not None:
        attributes[REQUEUE_ATTRIBUTE] = {"DataType": "Number", "StringValue": str(deferrals)}
    return {
        "MessageId": f"m{n}",
        "ReceiptHandle": f"rh{n}",
        "Body": json.dumps({"Records": [{"n": n}]}),
        "MessageAttributes": attributes,
    }


def expect_receive(
    stubber: Stubber, messages: list[dict[str, Any]], wanted: int = 10, dlq: str = DLQ_URL
) -> None:
    stubber.add_response(
        "receive_message",
        {"Messages": messages} if messages else {},
        {
            "QueueUrl": dlq,
            "MaxNumberOfMessages": wanted,
            "VisibilityTimeout": redrive.RECEIVE_VISIBILITY_SECONDS,
            "WaitTimeSeconds": redrive.RECEIVE_WAIT_SECONDS,
            "MessageAttributeNames": ["All"],
        },
    )


def expect_all_sent_and_deleted(stubber: Stubber, count: int) -> None:
    ids = [str(index) for index in range(count)]
    sent = [{"Id": i, "MessageId": f"new{i}", "MD5OfMessageBody": "x"} for i in ids]
    stubber.add_response("send_message_batch", {"Successful": sent, "Failed": []}, None)
    stubber.add_response("delete_message_batch", {"Successful": [{"Id": i} for i in ids], "Failed": []}, None)


def sent_entry(n: int, index: int) -> dict[str, Any]:
    return {
        "Id": str(index),
        "MessageBody": json.dumps({"Records": [{"n": n}]}),
        "MessageAttributes": {"origin": {"DataType": "String", "StringValue": "s3"}},
    }


def test_where_the_endpoint_has_no_move_task_messages_are_sent_fresh_and_deleted_only_once_sent(
    sqs: tuple[Any, Stubber],
) -> None:
    """GIVEN an endpoint answering StartMessageMoveTask as moto does, and a send that SQS refuses for one
    entry (a sender fault) THEN every other message goes to the ingest queue without its deferral count,
    only those are deleted from the DLQ, and the refused one is reported and stays."""
    client, stubber = sqs
    expect_count(stubber, DLQ_URL, 3)
    expect_arns(stubber)
    stubber.add_client_error("start_message_move_task", "500", MOTO_500, 500)
    expect_receive(stubber, [dlq_message(1, deferrals=4), dlq_message(2), dlq_message(3)])
    stubber.add_response(
        "send_message_batch",
        {
            "Successful": [{"Id": i, "MessageId": f"new{i}", "MD5OfMessageBody": "x"} for i in ("0", "2")],
            "Failed": [{"Id": "1", "SenderFault": True, "Code": "InvalidMessageContents"}],
        },
        {"QueueUrl": QUEUE_URL, "Entries": [sent_entry(1, 0), sent_entry(2, 1), sent_entry(3, 2)]},
    )
    stubber.add_response(
        "delete_message_batch",
        {"Successful": [{"Id": "0"}, {"Id": "1"}], "Failed": []},
        {"QueueUrl": DLQ_URL, "Entries": [{"Id": "0", "ReceiptHandle": "rh1"},
                                          {"Id": "1", "ReceiptHandle": "rh3"}]},
    )  # fmt: skip
    expect_receive(stubber, [])  # the DLQ answers empty: done

    summary = run(client)

    assert (summary.method, summary.moved, summary.not_moved, summary.ok) == (BY_HAND, 2, 1, False)
    assert "the endpoint has no SQS move tasks" in str(summary.fallback_reason)
    assert "  not moved 1" in "\n".join(summary.lines())


def test_the_fallback_stops_at_the_count_seen_at_the_start_plus_a_margin(sqs: tuple[Any, Stubber]) -> None:
    """Messages that fail again and return to the DLQ while it runs are not chased forever."""
    client, stubber = sqs
    expect_count(stubber, DLQ_URL, 2)
    expect_arns(stubber)
    stubber.add_client_error("start_message_move_task", "InvalidAction", "no such action", 400)
    for batch in range(6):  # 2 + a margin of one batch: 12 messages at most, here two at a time
        expect_receive(stubber, [dlq_message(1), dlq_message(2)], wanted=min(10, 12 - 2 * batch))
        expect_all_sent_and_deleted(stubber, 2)

    summary = run(client)

    assert summary.moved == 12


def test_limit_moves_at_most_that_many_by_hand_without_a_move_task(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    expect_count(stubber, DLQ_URL, 30)
    expect_receive(stubber, [dlq_message(n) for n in range(3)], wanted=3)
    expect_all_sent_and_deleted(stubber, 3)

    summary = run(client, limit=3)

    assert (summary.method, summary.moved) == (BY_HAND, 3)


def test_a_dry_run_only_reads_the_count_and_receives_nothing(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    expect_count(stubber, DLQ_URL, 6)

    summary = run(client, dry_run=True)

    assert summary.as_dict()["would_move"] == 6
    assert "moved" not in summary.as_dict()


def test_the_bookkeeping_attributes_named_here_are_the_ingest_functions() -> None:
    assert redrive.DEFERRALS_ATTRIBUTE == REQUEUE_ATTRIBUTE
    assert redrive.FIRST_SENT_ATTRIBUTE == FIRST_SENT_ATTRIBUTE


def test_a_redriven_message_may_wait_for_the_endpoint_again() -> None:
    """Its first-send time is dropped: the ingest function measures its age from the redrive."""
    message = dlq_message(1, deferrals=3)
    message["MessageAttributes"][FIRST_SENT_ATTRIBUTE] = {
        "DataType": "Number",
        "StringValue": "1700000000000",
    }

    assert redrive.fresh_attributes(message) == {"origin": {"DataType": "String", "StringValue": "s3"}}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--dlq-url", DLQ_URL], "--dlq-url needs --queue-url"),
        (["--max-rate", "501"], "--max-rate is at most 500"),
        (["--dry-run", "--wait"], "--dry-run starts nothing"),
        (["--queue", "videos", "--queue-url", VIDEO_QUEUE_URL], "--queue picks the local stack's queues"),
    ],
)
def test_usage_errors_exit_2_before_any_aws_call(
    options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["redrive", "--endpoint-url", "http://127.0.0.1:9", *options]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("queue", redrive.QUEUE_CHOICES)
def test_the_cli_takes_every_queue_redrive_knows(queue: str) -> None:
    assert build_parser().parse_args(["redrive", "--queue", queue]).queue == queue


# --- the stack's two dead-letter queues -----------------------------------------------------------------

SEGMENT_TASK = json.dumps(
    {"s3kp_video_segment": 1, "result_id": "r1", "run": "run-1", "segment": 1, "segments": 2}
)
VIDEO_NOTIFICATION = json.dumps(
    {"Records": [{"eventSource": "aws:s3", "s3": {"object": {"key": "incoming/a.mp4"}}}]}
)


def expect_dead_letter_queue(stubber: Stubber, queue: str, dlq_arn: str, dlq: str) -> None:
    """The queue's RedrivePolicy names its DLQ (as the template sets both pairs up)."""
    stubber.add_response(
        "get_queue_attributes",
        {"Attributes": {"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})}},
        {"QueueUrl": queue, "AttributeNames": ["RedrivePolicy"]},
    )
    stubber.add_response(
        "get_queue_url",
        {"QueueUrl": dlq},
        {"QueueName": dlq_arn.rsplit(":", 1)[1], "QueueOwnerAWSAccountId": "123456789012"},
    )


def stack(queue: str = ALL) -> list[QueuePair]:
    return stack_pairs(queue, images_url=QUEUE_URL, videos_url=VIDEO_QUEUE_URL)


def redrive_stack(client: Any, queue: str = ALL, **options: Any) -> redrive.Report:
    return redrive_queues(sqs=client, pairs=stack(queue), progress_stream=io.StringIO(),
                          sleep=lambda seconds: None, **options)  # fmt: skip


def video_dlq_message(n: int, body: str, *, deferrals: int) -> dict[str, Any]:
    """A video DLQ message as the video function's deferrals left it (sqs_retries, shared with ingest)."""
    return {
        "MessageId": f"v{n}",
        "ReceiptHandle": f"vrh{n}",
        "Body": body,
        "MessageAttributes": {
            REQUEUE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(deferrals)},
            FIRST_SENT_ATTRIBUTE: {"DataType": "Number", "StringValue": "1700000000000"},
        },
    }


def test_by_default_both_dlqs_are_redriven_to_their_own_queues_and_wait_starts_both_before_following(
    sqs: tuple[Any, Stubber],
) -> None:
    """GIVEN the stack's image and video pairs, each DLQ found from its queue's RedrivePolicy WHEN redriven
    with --wait THEN one move task goes from each DLQ to its own queue (never a video to the ingest
    queue), both start before either is followed (SQS moves them side by side), and the report has one
    entry per queue."""
    client, stubber = sqs
    pairs = ((QUEUE_URL, DLQ_URL, DLQ_ARN, QUEUE_ARN, 4, "h-img"),
             (VIDEO_QUEUE_URL, VIDEO_DLQ_URL, VIDEO_DLQ_ARN, VIDEO_QUEUE_ARN, 2, "h-vid"))  # fmt: skip
    for queue, dlq, dlq_arn, queue_arn, count, handle in pairs:
        expect_dead_letter_queue(stubber, queue, dlq_arn, dlq)
        expect_count(stubber, dlq, count)
        expect_arns(stubber, dlq, queue)
        stubber.add_response(
            "start_message_move_task",
            {"TaskHandle": handle},
            {"SourceArn": dlq_arn, "DestinationArn": queue_arn},
        )
    for _, _, dlq_arn, queue_arn, count, handle in pairs:  # followed only once both have started
        for entry in (task("RUNNING", 1, handle=handle), task("COMPLETED", count, handle=None)):
            entry |= {"SourceArn": dlq_arn, "DestinationArn": queue_arn}
            stubber.add_response(
                "list_message_move_tasks", {"Results": [entry]}, {"SourceArn": dlq_arn, "MaxResults": 10}
            )

    report = redrive_stack(client, wait=True)

    assert [s.queue for s in report.summaries] == [IMAGES, VIDEOS]
    assert [(s.method, s.task_handle, s.task_status, s.moved) for s in report.summaries] == [
        (MOVE_TASK, "h-img", "COMPLETED", 4), (MOVE_TASK, "h-vid", "COMPLETED", 2)
    ]  # fmt: skip
    document = report.as_dict()
    assert document["ok"] is True
    assert [(q["queue"], q["dlq_url"], q["queue_url"], q["moved"]) for q in document["queues"]] == [
        (IMAGES, DLQ_URL, QUEUE_URL, 4), (VIDEOS, VIDEO_DLQ_URL, VIDEO_QUEUE_URL, 2)
    ]  # fmt: skip
    lines = report.lines()
    assert f"s3kp redrive: images: {DLQ_URL} -> {QUEUE_URL}" in lines
    assert f"s3kp redrive: videos: {VIDEO_DLQ_URL} -> {VIDEO_QUEUE_URL}" in lines


def test_where_the_endpoint_has_no_move_task_the_video_dlq_goes_back_by_hand_both_kinds_unchanged_but_fresh(
    sqs: tuple[Any, Stubber],
) -> None:
    """GIVEN the video DLQ holding a segment task and a video's S3 notification, both deferred on the way
    WHEN `--queue videos` runs where the endpoint has no move task THEN both bodies go to the video queue
    byte for byte, without the video function's deferral count and first-send time, and leave the DLQ."""
    client, stubber = sqs
    expect_dead_letter_queue(stubber, VIDEO_QUEUE_URL, VIDEO_DLQ_ARN, VIDEO_DLQ_URL)
    expect_count(stubber, VIDEO_DLQ_URL, 2)
    expect_arns(stubber, VIDEO_DLQ_URL, VIDEO_QUEUE_URL)
    stubber.add_client_error("start_message_move_task", "500", MOTO_500, 500)
    dead = [
        video_dlq_message(1, SEGMENT_TASK, deferrals=5),
        video_dlq_message(2, VIDEO_NOTIFICATION, deferrals=1),
    ]
    expect_receive(stubber, dead, dlq=VIDEO_DLQ_URL)
    stubber.add_response(
        "send_message_batch",
        {"Successful": [{"Id": i, "MessageId": f"new{i}", "MD5OfMessageBody": "x"} for i in ("0", "1")],
         "Failed": []},
        {"QueueUrl": VIDEO_QUEUE_URL, "Entries": [{"Id": "0", "MessageBody": SEGMENT_TASK},
                                                  {"Id": "1", "MessageBody": VIDEO_NOTIFICATION}]},
    )  # fmt: skip
    stubber.add_response(
        "delete_message_batch",
        {"Successful": [{"Id": "0"}, {"Id": "1"}], "Failed": []},
        {"QueueUrl": VIDEO_DLQ_URL, "Entries": [{"Id": "0", "ReceiptHandle": "vrh1"},
                                                {"Id": "1", "ReceiptHandle": "vrh2"}]},
    )  # fmt: skip
    expect_receive(stubber, [], dlq=VIDEO_DLQ_URL)

    (summary,) = redrive_stack(client, VIDEOS).summaries

    assert (summary.queue, summary.method, summary.moved, summary.ok) == (VIDEOS, BY_HAND, 2, True)
    assert is_task(SEGMENT_TASK)  # the two kinds the video queue carries, as the video function tells them
    assert not is_task(VIDEO_NOTIFICATION)


def test_limit_holds_for_each_dlq(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    for queue, dlq, dlq_arn in (
        (QUEUE_URL, DLQ_URL, DLQ_ARN),
        (VIDEO_QUEUE_URL, VIDEO_DLQ_URL, VIDEO_DLQ_ARN),
    ):
        expect_dead_letter_queue(stubber, queue, dlq_arn, dlq)
        expect_count(stubber, dlq, 30)
        expect_receive(stubber, [dlq_message(n) for n in range(2)], wanted=2, dlq=dlq)
        expect_all_sent_and_deleted(stubber, 2)

    report = redrive_stack(client, limit=2)

    assert [(s.queue, s.method, s.moved) for s in report.summaries] == [
        (IMAGES, BY_HAND, 2),
        (VIDEOS, BY_HAND, 2),
    ]


def test_a_dry_run_counts_each_dlq(sqs: tuple[Any, Stubber]) -> None:
    client, stubber = sqs
    for queue, dlq, dlq_arn, count in (
        (QUEUE_URL, DLQ_URL, DLQ_ARN, 6),
        (VIDEO_QUEUE_URL, VIDEO_DLQ_URL, VIDEO_DLQ_ARN, 1),
    ):
        expect_dead_letter_queue(stubber, queue, dlq_arn, dlq)
        expect_count(stubber, dlq, count)

    report = redrive_stack(client, dry_run=True)

    assert [(q["queue"], q["would_move"]) for q in report.as_dict()["queues"]] == [(IMAGES, 6), (VIDEOS, 1)]
    assert [line for line in report.lines() if "would move" in line] == [
        "  would move  6  (dry run: nothing received, nothing moved)",
        "  would move  1  (dry run: nothing received, nothing moved)",
    ]


def test_an_error_on_one_dlq_is_reported_for_it_and_the_other_is_still_redriven(
    sqs: tuple[Any, Stubber],
) -> None:
    """GIVEN an image queue without a RedrivePolicy (no DLQ to find) THEN the images' entry says so, the
    videos' DLQ is still moved, and the report (so the command) is not ok."""
    client, stubber = sqs
    stubber.add_response(
        "get_queue_attributes",
        {"Attributes": {}},
        {"QueueUrl": QUEUE_URL, "AttributeNames": ["RedrivePolicy"]},
    )
    expect_dead_letter_queue(stubber, VIDEO_QUEUE_URL, VIDEO_DLQ_ARN, VIDEO_DLQ_URL)
    expect_count(stubber, VIDEO_DLQ_URL, 1)
    expect_arns(stubber, VIDEO_DLQ_URL, VIDEO_QUEUE_URL)
    stubber.add_response("start_message_move_task", {"TaskHandle": "h-vid"}, None)

    report = redrive_stack(client)

    images, videos = report.summaries
    assert (images.ok, images.method, images.dlq_url) == (False, None, None)
    assert "has no dead-letter queue" in str(images.error)
    assert (videos.ok, videos.method, videos.task_handle) == (True, MOVE_TASK, "h-vid")
    assert report.ok is False
    assert report.lines()[:2] == [
        f"s3kp redrive: images: (DLQ not found) -> {QUEUE_URL}",
        f"  error       {QUEUE_URL} has no dead-letter queue (no RedrivePolicy); pass --dlq-url",
    ]


def test_the_stacks_pairs_are_images_then_videos_and_only_those_the_stack_has() -> None:
    assert stack(ALL) == [QueuePair(IMAGES, QUEUE_URL), QueuePair(VIDEOS, VIDEO_QUEUE_URL)]
    assert stack(IMAGES) == [QueuePair(IMAGES, QUEUE_URL)]
    assert stack(VIDEOS) == [QueuePair(VIDEOS, VIDEO_QUEUE_URL)]
    # a local stack made before videos has no video queue: "all" is its image pair, "videos" an error
    assert stack_pairs(ALL, images_url=QUEUE_URL, videos_url=None) == [QueuePair(IMAGES, QUEUE_URL)]
    with pytest.raises(RedriveError, match="no video queue"):
        stack_pairs(VIDEOS, images_url=QUEUE_URL, videos_url=None)


def test_the_video_function_keeps_its_bookkeeping_in_the_same_attributes() -> None:
    """Its sqs_retries is the ingest function's file (a symlink), so one set of names covers both DLQs."""
    video, ingest = (ROOT / "functions" / name / "sqs_retries.py" for name in ("video", "ingest"))
    assert video.resolve() == ingest.resolve()
