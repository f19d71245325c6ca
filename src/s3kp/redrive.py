"""`s3kp redrive`: move the dead-letter queues' messages back to their queues.

The stack has two pairs: `images`, DeadLetterQueue -> IngestQueue, and `videos`, VideoDeadLetterQueue ->
VideoQueue. By default both are redriven, one after the other, each reported on its own (`--queue`
picks one; `--queue-url [--dlq-url]` names a single pair). A message reaches a DLQ after
`MaxReceiveCount` failed deliveries (before issue 19's fix, every image uploaded during an
inference-endpoint outage did). An image DLQ message is S3's original notification; a video DLQ message
is either S3's notification of a video or a segment task the planner sent (a JSON body with
`s3kp_video_segment`). Moved back unchanged, each is processed as it would have been (same event order;
a version processed since is a duplicate for idempotency; a segment already recorded changes nothing).

Two ways, per pair, the first where the endpoint has it:
- SQS's message move task (`StartMessageMoveTask`, source the DLQ, destination its queue, `--max-rate` as
  `MaxNumberOfMessagesPerSecond`): SQS moves the messages itself, asynchronously. The command prints the
  task handle; with `--wait` it follows `ListMessageMoveTasks` until the task ends (every pair's task is
  started before the first is followed, so SQS moves both DLQs at once).
- Receive -> send -> delete, where the endpoint does not implement the move task (moto 5.2.5 answers it
  with an HTML 500; other emulators say `InvalidAction`, see `endpoint_lacks_move_tasks`), or with
  `--limit` (a move task takes no limit): ten messages at a time, received with a short visibility
  timeout, sent to the queue with SendMessageBatch (body and message attributes, minus the functions'
  bookkeeping, their deferral count and first-send time: a redriven message starts fresh and may wait out
  an endpoint outage again; a move task keeps them) and deleted from the DLQ only once their send
  succeeded. A stop between the two leaves a copy in each queue; idempotency answers the duplicate. It
  stops when the DLQ answers empty, at `--limit` (for each pair), or after the number of messages counted
  at the start plus a margin, so messages that fail again and return meanwhile are not chased forever.

`--dry-run` reads each DLQ's ApproximateNumberOfMessages and nothing else: receiving, even to count,
would hide the messages for a visibility timeout. An AWS error ends its pair, not the others: it is
reported in that pair's summary and the command exits 1.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from s3kp.backfill import progress_bar

# functions/ingest/sqs_retries.REQUEUE_ATTRIBUTE and FIRST_SENT_ATTRIBUTE (tests/unit/test_redrive.py checks
# they agree; functions/video/sqs_retries.py is the same file): how often the ingest or video function
# deferred a message (a bound on its loops), and when the original message was sent (how long it may still
# wait for the endpoint). A redriven message starts fresh.
DEFERRALS_ATTRIBUTE = "s3kp-deferrals"
FIRST_SENT_ATTRIBUTE = "s3kp-first-sent"
BOOKKEEPING_ATTRIBUTES = frozenset({DEFERRALS_ATTRIBUTE, FIRST_SENT_ATTRIBUTE})
BATCH = 10  # ReceiveMessage, SendMessageBatch and DeleteMessageBatch take at most 10
RECEIVE_VISIBILITY_SECONDS = 30  # a stopped run's messages are back in the DLQ after this
RECEIVE_WAIT_SECONDS = 1  # a long poll asks every SQS server; a short one may answer empty too early
SEND_ATTEMPTS = 3
POLL_SECONDS = 2.0
MAX_TASK_RATE = 500  # StartMessageMoveTask's MaxNumberOfMessagesPerSecond limit
MOVE_TASK = "move_task"
BY_HAND = "receive_send_delete"
ENDED = frozenset({"COMPLETED", "CANCELLED", "FAILED"})
IMAGES = "images"  # DeadLetterQueue -> IngestQueue
VIDEOS = "videos"  # VideoDeadLetterQueue -> VideoQueue
ALL = "all"
QUEUE_CHOICES = (IMAGES, VIDEOS, ALL)
# What an endpoint answers for an action it does not know (query and JSON protocols, and HTTP's 501).
_UNKNOWN_ACTION_CODES = frozenset(
    {"InvalidAction", "UnknownOperation", "UnknownOperationException", "NotImplemented", "501"}
)
_SENDABLE_ATTRIBUTE_FIELDS = ("DataType", "StringValue", "BinaryValue")


class RedriveError(RuntimeError):
    """A problem the user can fix (no DLQ configured, a task that failed): one line, exit code 1."""


def endpoint_lacks_move_tasks(error: Exception) -> bool:
    """Whether a failed StartMessageMoveTask/ListMessageMoveTasks means "this endpoint does not have the
    action" rather than "SQS refused this request".

    SQS's own refusals carry an error code from the action's model (`UnsupportedOperation`, e.g. when a
    task already runs; `ResourceNotFoundException`; `AccessDenied`): those are reported, never worked
    around. An endpoint without the action answers with an unknown-action code, or a 5xx whose body holds
    no AWS error at all (botocore then uses the HTTP status as the code: moto's `500`).
    """
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError):
        return False
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code.rsplit(".", 1)[-1] in _UNKNOWN_ACTION_CODES:
        return True
    return isinstance(status, int) and status >= 500 and code == str(status)


# ------------------------------------------------------------------------------------------ queues


def queue_attribute(sqs: Any, url: str, name: str) -> str | None:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[name]).get("Attributes", {})
    value = attributes.get(name)
    return None if value is None else str(value)


def queue_arn(sqs: Any, url: str) -> str:
    arn = queue_attribute(sqs, url, "QueueArn")
    if not arn:
        raise RedriveError(f"{url} has no QueueArn")
    return arn


def messages_in(sqs: Any, url: str) -> int:
    """ApproximateNumberOfMessages: visible messages, without receiving (hiding) any."""
    return int(queue_attribute(sqs, url, "ApproximateNumberOfMessages") or 0)


def dead_letter_queue_of(sqs: Any, queue_url: str) -> str:
    """The URL of the queue `queue_url`'s RedrivePolicy sends messages to (the stack's DLQ)."""
    policy = queue_attribute(sqs, queue_url, "RedrivePolicy")
    target = json.loads(policy).get("deadLetterTargetArn") if policy else None
    if not target:
        raise RedriveError(f"{queue_url} has no dead-letter queue (no RedrivePolicy); pass --dlq-url")
    _, _, _, _, account, name = str(target).split(":", 5)
    return str(sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])


# ------------------------------------------------------------------------------------------ move task


@dataclass(frozen=True)
class TaskState:
    """One entry of ListMessageMoveTasks (the handle is listed only while the task runs)."""

    status: str
    moved: int
    to_move: int | None
    handle: str | None = None
    started_ms: int | None = None
    failure_reason: str | None = None

    @classmethod
    def of(cls, entry: dict[str, Any]) -> TaskState:
        to_move = entry.get("ApproximateNumberOfMessagesToMove")
        started = entry.get("StartedTimestamp")
        return cls(
            status=str(entry.get("Status", "")),
            moved=int(entry.get("ApproximateNumberOfMessagesMoved") or 0),
            to_move=None if to_move is None else int(to_move),
            handle=entry.get("TaskHandle"),
            started_ms=None if started is None else int(started),
            failure_reason=entry.get("FailureReason"),
        )


def start_move_task(sqs: Any, source_arn: str, destination_arn: str, max_rate: int | None) -> str:
    request: dict[str, Any] = {"SourceArn": source_arn, "DestinationArn": destination_arn}
    if max_rate:
        request["MaxNumberOfMessagesPerSecond"] = max_rate
    return str(sqs.start_message_move_task(**request)["TaskHandle"])


def latest_task(sqs: Any, source_arn: str, handle: str | None = None) -> TaskState | None:
    """The task with `handle` while it runs, else the latest on the queue: one active task per queue at a
    time, so once ours has ended (and its handle is no longer listed) the latest one is ours."""
    entries = [TaskState.of(e) for e in sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=10)
               .get("Results", [])]  # fmt: skip
    for entry in entries:
        if handle is not None and entry.handle == handle:
            return entry
    return max(entries, key=lambda e: e.started_ms or 0, default=None)


def follow_move_task(
    sqs: Any,
    source_arn: str,
    handle: str,
    *,
    on_progress: Callable[[TaskState], None],
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> TaskState:
    """Poll ListMessageMoveTasks until the task has ended; each state is passed to `on_progress`."""
    while True:
        state = latest_task(sqs, source_arn, handle)
        if state is None:
            raise RedriveError(f"ListMessageMoveTasks does not list the move task {handle}")
        on_progress(state)
        if state.status in ENDED:
            return state
        sleep(poll_seconds)


# ------------------------------------------------------------------------------------------ by hand


@dataclass
class HandMove:
    moved: int = 0
    not_moved: int = 0  # sends refused: back in the DLQ after the visibility timeout
    not_deleted: int = 0  # sent, but still in the DLQ: a duplicate for idempotency when it comes back


class Pacer:
    """At most `rate` messages per second (none: no limit), like backfill's sender."""

    def __init__(
        self, rate: float | None, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._started: float | None = None
        self._handed = 0

    def before(self, count: int) -> None:
        if self._started is None:
            self._started = self._clock()
        if self._rate:
            wait = self._started + self._handed / self._rate - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._handed += count


def move_by_hand(
    sqs: Any,
    dlq_url: str,
    queue_url: str,
    *,
    budget: int,
    max_rate: float | None = None,
    on_progress: Callable[[HandMove], None] = lambda _: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> HandMove:
    """Receive -> send -> delete, ten at a time, until the DLQ answers empty or `budget` messages were
    handled; the result is updated in place, so a caller interrupted by Ctrl-C still has the counts."""
    result = HandMove()
    pacer = Pacer(max_rate, clock, sleep)
    while result.moved + result.not_moved < budget:
        wanted = min(BATCH, budget - result.moved - result.not_moved)
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=wanted,
            VisibilityTimeout=RECEIVE_VISIBILITY_SECONDS,
            WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        pacer.before(len(messages))
        sent = _send(sqs, queue_url, messages)
        result.not_moved += len(messages) - len(sent)
        if sent:
            result.not_deleted += _delete(sqs, dlq_url, sent)
            result.moved += len(sent)
        on_progress(result)
    return result


def fresh_attributes(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The message's attributes as SendMessage takes them, without the functions' bookkeeping."""
    return {
        name: {field: value[field] for field in _SENDABLE_ATTRIBUTE_FIELDS if field in value}
        for name, value in (message.get("MessageAttributes") or {}).items()
        if name not in BOOKKEEPING_ATTRIBUTES
    }


def _send(sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages SendMessageBatch accepted (refused entries are tried again, then given up)."""
    pending = {str(index): message for index, message in enumerate(messages)}
    accepted: list[dict[str, Any]] = []
    for attempt in range(SEND_ATTEMPTS):
        entries = []
        for entry_id, message in pending.items():
            entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message["Body"]}
            attributes = fresh_attributes(message)
            if attributes:
                entry["MessageAttributes"] = attributes
            entries.append(entry)
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        for success in response.get("Successful", []):
            accepted.append(pending.pop(str(success["Id"])))
        if not pending or all(f.get("SenderFault") for f in response.get("Failed", [])):
            break  # a sender fault (e.g. a message too large) would fail the same way again
        time.sleep(0.1 * 2**attempt)
    return accepted


def _delete(sqs: Any, dlq_url: str, messages: list[dict[str, Any]]) -> int:
    """Delete from the DLQ; returns how many deletes were refused."""
    response = sqs.delete_message_batch(
        QueueUrl=dlq_url,
        Entries=[{"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]} for index, m in enumerate(messages)],
    )
    return len(response.get("Failed", []))


# ------------------------------------------------------------------------------------------ the command


@dataclass(frozen=True)
class QueuePair:
    """A queue and the dead-letter queue whose messages go back to it."""

    name: str | None  # the stack's pair (IMAGES, VIDEOS); None for one given with --queue-url
    queue_url: str
    dlq_url: str | None = None  # None: the DLQ the queue's RedrivePolicy names


def stack_pairs(queue: str, *, images_url: str, videos_url: str | None) -> list[QueuePair]:
    """The stack's pairs `queue` selects (IMAGES, VIDEOS or ALL), images first. ALL takes only the queues
    the stack has (a stack made before videos has no video queue); asking for VIDEOS there is an error."""
    if queue not in QUEUE_CHOICES:
        raise RedriveError(f"no queue {queue!r} (one of {', '.join(QUEUE_CHOICES)})")
    pairs = []
    if queue in (IMAGES, ALL):
        pairs.append(QueuePair(IMAGES, images_url))
    if queue in (VIDEOS, ALL):
        if videos_url:
            pairs.append(QueuePair(VIDEOS, videos_url))
        elif queue == VIDEOS:
            raise RedriveError("the local stack has no video queue")
    return pairs


@dataclass
class Summary:
    """One pair's redrive. An AWS error ends that pair only: it is kept here, and the others go on."""

    dlq_url: str | None  # None until found from the queue's RedrivePolicy
    queue_url: str
    dry_run: bool
    queue: str | None = None  # QueuePair.name
    in_dlq: int = 0  # ApproximateNumberOfMessages at the start
    method: str | None = None
    moved: int = 0
    not_moved: int = 0
    not_deleted: int = 0
    task_handle: str | None = None
    task_status: str | None = None
    failure_reason: str | None = None
    fallback_reason: str | None = None  # why the move task was not used
    already_running: bool = False  # SQS refused a second task; the running one is followed
    error: str | None = None  # the AWS error (or RedriveError) that ended this pair
    seconds: float = 0.0
    dlq_arn: str | None = field(default=None, repr=False)  # the move task's source, to follow it

    @property
    def ok(self) -> bool:
        return (
            self.error is None and self.not_moved == 0 and self.task_status in (None, "RUNNING", "COMPLETED")
        )

    def as_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "queue": self.queue,
            "dlq_url": self.dlq_url,
            "queue_url": self.queue_url,
            "dry_run": self.dry_run,
            "in_dlq": self.in_dlq,
            "method": self.method,
        }
        if self.dry_run:
            document["would_move"] = self.in_dlq
        else:
            document |= {
                "moved": self.moved,
                "not_moved": self.not_moved,
                "not_deleted": self.not_deleted,
                "task_handle": self.task_handle,
                "task_status": self.task_status,
                "failure_reason": self.failure_reason,
                "fallback_reason": self.fallback_reason,
                "already_running": self.already_running,
            }
        document["error"] = self.error
        document["seconds"] = round(self.seconds, 3)
        return document

    def lines(self) -> list[str]:
        named = f"{self.queue}: " if self.queue else ""
        header = f"s3kp redrive: {named}{self.dlq_url or '(DLQ not found)'} -> {self.queue_url}"
        if self.error is not None and self.method is None:
            return [header, f"  error       {self.error}"]  # nothing was moved
        lines = [header, f"  in the DLQ  {self.in_dlq}"]
        if self.dry_run:
            return [*lines, f"  would move  {self.in_dlq}  (dry run: nothing received, nothing moved)"]
        if self.fallback_reason:
            lines.append(f"  {self.fallback_reason}: received, sent and deleted ten at a time")
        if self.method == MOVE_TASK:
            running = "  (was already running)" if self.already_running else ""
            lines.append(f"  move task   {self.task_handle}  {self.task_status}{running}")
            if self.failure_reason:
                lines.append(f"  failure     {self.failure_reason}")
            if self.task_status == "RUNNING" and self.error is None:
                lines.append("  SQS moves the messages; --wait follows the task until it ends")
                return lines
        lines.append(f"  moved {self.moved}  ({self.seconds:.1f} s)")
        if self.not_moved:
            lines.append(f"  not moved {self.not_moved}  (SQS refused the send; they stay in the DLQ)")
        if self.not_deleted:
            lines.append(f"  not deleted {self.not_deleted}  (sent, but a copy stays in the DLQ)")
        if self.error is not None:
            lines.append(f"  error       {self.error}")
        return lines


@dataclass
class Report:
    """Every pair's summary, in the order redriven."""

    summaries: list[Summary]

    @property
    def ok(self) -> bool:
        return all(summary.ok for summary in self.summaries)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "queues": [summary.as_dict() for summary in self.summaries]}

    def lines(self) -> list[str]:
        return [line for summary in self.summaries for line in summary.lines()]


class Progress:
    """One self-rewriting line on a terminal (as backfill's); piped, only the move task's changes, one
    line each (`--wait` may run for minutes: a log should show it moving)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._live = stream.isatty()
        self._last_text: str | None = None
        self._last_time = 0.0
        self._shown = False

    def hand(self, move: HandMove, total: int, started: float) -> None:
        if not self._live or time.monotonic() - self._last_time < 0.2:
            return
        rate = move.moved / max(time.monotonic() - started, 1e-6)
        self._show(f"{progress_bar(move.moved, total)} moved {move.moved}/{total}  {rate:.0f}/s")

    def task(self, state: TaskState) -> None:
        total = state.to_move if state.to_move is not None else state.moved
        text = f"{progress_bar(state.moved, total)} moved {state.moved}/{total}  {state.status}"
        if text != self._last_text:
            self._show(text)

    def _show(self, text: str) -> None:
        self._last_text = text
        self._last_time = time.monotonic()
        self._shown = True
        self._stream.write(f"\r  {text} " if self._live else f"  {text}\n")
        self._stream.flush()

    def close(self) -> None:
        if self._live and self._shown:
            self._stream.write("\n")
            self._stream.flush()
        self._shown = False


def redrive_queues(
    *,
    sqs: Any,
    pairs: Sequence[QueuePair],
    dry_run: bool = False,
    wait: bool = False,
    max_rate: int | None = None,
    limit: int | None = None,
    progress_stream: TextIO | None = None,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Each pair in turn: count its DLQ, then (unless a dry run) start its move task or move it by hand;
    `limit` and `max_rate` hold for each pair. With `wait`, the move tasks are followed only once every
    pair's has started, so SQS moves the DLQs side by side rather than one after the other."""
    stream = progress_stream or sys.stderr
    summaries = [
        _redrive_pair(sqs, pair, dry_run=dry_run, max_rate=max_rate, limit=limit, stream=stream, sleep=sleep)
        for pair in pairs
    ]
    if wait:
        _follow_tasks(sqs, summaries, stream=stream, poll_seconds=poll_seconds, sleep=sleep)
    return Report(summaries)


def run_redrive(
    *,
    sqs: Any,
    queue_url: str,
    dlq_url: str | None,
    dry_run: bool = False,
    wait: bool = False,
    max_rate: int | None = None,
    limit: int | None = None,
    progress_stream: TextIO | None = None,
    poll_seconds: float = POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Summary:
    """One pair given by URL (no `dlq_url`: the queue's RedrivePolicy names it)."""
    (summary,) = redrive_queues(
        sqs=sqs,
        pairs=[QueuePair(None, queue_url, dlq_url)],
        dry_run=dry_run,
        wait=wait,
        max_rate=max_rate,
        limit=limit,
        progress_stream=progress_stream,
        poll_seconds=poll_seconds,
        sleep=sleep,
    ).summaries
    return summary


def _redrive_pair(
    sqs: Any,
    pair: QueuePair,
    *,
    dry_run: bool,
    max_rate: int | None,
    limit: int | None,
    stream: TextIO,
    sleep: Callable[[float], None],
) -> Summary:
    from botocore.exceptions import BotoCoreError, ClientError

    summary = Summary(dlq_url=pair.dlq_url, queue_url=pair.queue_url, dry_run=dry_run, queue=pair.name)
    started = time.monotonic()
    progress = Progress(stream)
    try:
        dlq_url = summary.dlq_url = pair.dlq_url or dead_letter_queue_of(sqs, pair.queue_url)
        summary.in_dlq = messages_in(sqs, dlq_url)
        if dry_run:
            return summary
        if limit is None:
            _start_move_task(sqs, summary, dlq_url, max_rate)
        if summary.method is None:
            _move_by_hand(sqs, summary, dlq_url, limit, max_rate, progress, started, sleep)
    except (RedriveError, ClientError, BotoCoreError) as error:
        summary.error = str(error)
    finally:
        progress.close()
        summary.seconds = time.monotonic() - started
    return summary


def _move_by_hand(
    sqs: Any,
    summary: Summary,
    dlq_url: str,
    limit: int | None,
    max_rate: int | None,
    progress: Progress,
    started: float,
    sleep: Callable[[float], None],
) -> None:
    budget = limit if limit is not None else summary.in_dlq + max(BATCH, summary.in_dlq // 10)
    summary.method = BY_HAND
    move = HandMove()

    def moving(current: HandMove) -> None:
        nonlocal move
        move = current
        handled = current.moved + current.not_moved
        progress.hand(current, min(budget, max(summary.in_dlq, handled)), started)

    try:
        move = move_by_hand(
            sqs, dlq_url, summary.queue_url, budget=budget, max_rate=max_rate, on_progress=moving, sleep=sleep
        )
    except KeyboardInterrupt:
        progress.close()
        named = f"{summary.queue}: " if summary.queue else ""
        print(f"s3kp redrive: {named}stopped after moving {move.moved}", file=sys.stderr)
        raise
    finally:
        summary.moved, summary.not_moved, summary.not_deleted = move.moved, move.not_moved, move.not_deleted


def _start_move_task(sqs: Any, summary: Summary, dlq_url: str, max_rate: int | None) -> None:
    """Start (or find) SQS's move task; leaves `summary.method` unset when the endpoint has no move tasks,
    for the caller to move the messages by hand."""
    from botocore.exceptions import ClientError

    source_arn = summary.dlq_arn = queue_arn(sqs, dlq_url)
    destination_arn = queue_arn(sqs, summary.queue_url)
    try:
        handle = start_move_task(sqs, source_arn, destination_arn, max_rate)
    except ClientError as error:
        if endpoint_lacks_move_tasks(error):
            summary.fallback_reason = "the endpoint has no SQS move tasks (StartMessageMoveTask)"
            return
        running = _running_task(sqs, source_arn)
        if running is None or running.handle is None:
            raise
        handle = running.handle  # one task per queue at a time: follow the one already running
        summary.already_running = True
    summary.method = MOVE_TASK
    summary.task_handle = handle
    summary.task_status = "RUNNING"


def _follow_tasks(
    sqs: Any,
    summaries: Sequence[Summary],
    *,
    stream: TextIO,
    poll_seconds: float,
    sleep: Callable[[float], None],
) -> None:
    """Follow each started move task until it ends (one after the other: SQS runs them all meanwhile)."""
    from botocore.exceptions import BotoCoreError, ClientError

    running = [s for s in summaries if s.method == MOVE_TASK and s.task_status == "RUNNING"]
    for summary in running:
        if summary.dlq_arn is None or summary.task_handle is None:
            continue  # never: both are set when a task starts
        progress = Progress(stream)
        started = time.monotonic()

        def seen(current: TaskState, summary: Summary = summary, progress: Progress = progress) -> None:
            summary.task_status, summary.moved = current.status, current.moved
            summary.failure_reason = current.failure_reason
            progress.task(current)

        try:
            follow_move_task(
                sqs, summary.dlq_arn, summary.task_handle, on_progress=seen, poll_seconds=poll_seconds,
                sleep=sleep,
            )  # fmt: skip
        except KeyboardInterrupt:
            progress.close()
            for left in running:
                if left.task_status == "RUNNING":
                    named = f" ({left.queue})" if left.queue else ""
                    print(f"s3kp redrive: stopped following; the move task {left.task_handle}{named} "
                          "keeps running", file=sys.stderr)  # fmt: skip
            raise
        except (RedriveError, ClientError, BotoCoreError) as error:
            summary.error = str(error)
        finally:
            progress.close()
            summary.seconds += time.monotonic() - started


def _running_task(sqs: Any, source_arn: str) -> TaskState | None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        latest = latest_task(sqs, source_arn)
    except (ClientError, BotoCoreError):
        return None
    return latest if latest is not None and latest.status == "RUNNING" else None


# ------------------------------------------------------------------------------------------ CLI glue


def run_from_args(args: Any) -> int:
    import boto3

    from s3kp.local_target import LocalTargetError, local_target

    if args.dlq_url and not args.queue_url:
        print("s3kp redrive: --dlq-url needs --queue-url (where the messages go)", file=sys.stderr)
        return 2
    if args.queue is not None and args.queue_url:
        print("s3kp redrive: --queue picks the local stack's queues, --queue-url names one: pass one of "
              "them", file=sys.stderr)  # fmt: skip
        return 2
    if args.max_rate is not None and args.max_rate > MAX_TASK_RATE:
        print(f"s3kp redrive: --max-rate is at most {MAX_TASK_RATE} (SQS's limit)", file=sys.stderr)
        return 2
    if args.dry_run and args.wait:
        print("s3kp redrive: --dry-run starts nothing to --wait for", file=sys.stderr)
        return 2
    if args.queue_url:
        session = boto3.session.Session()  # the user's own credentials and region (or AWS_ENDPOINT_URL)
        endpoint_url = None
        pairs = [QueuePair(None, args.queue_url, args.dlq_url)]
    else:
        try:
            target = local_target(args.name_prefix, args.endpoint_url)
            pairs = stack_pairs(
                args.queue or ALL, images_url=target.queue_url, videos_url=target.video_queue_url
            )
        except LocalTargetError as error:
            print(f"s3kp redrive: {error}; pass --queue-url to redrive a stack in AWS", file=sys.stderr)
            return 1
        except RedriveError as error:
            print(f"s3kp redrive: {error} at {target.endpoint_url}", file=sys.stderr)
            return 1
        session, endpoint_url = target.session, target.endpoint_url
    if session.region_name is None:
        print("s3kp redrive: no AWS region: set AWS_REGION (or a profile's region)", file=sys.stderr)
        return 1
    report = redrive_queues(
        sqs=session.client("sqs", endpoint_url=endpoint_url),
        pairs=pairs,
        dry_run=args.dry_run,
        wait=args.wait,
        max_rate=args.max_rate,
        limit=args.limit,
    )
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1
