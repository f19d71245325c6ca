"""`s3kp backfill`: send what is already in the bucket through the pipeline, as S3 notifications would.

Objects are listed page by page (the current version of each key; `ListObjectVersions` on a versioned
bucket so the version id is known), filtered with the bucket notification's own prefix/suffix rules read
from template.yaml, planned (`--since`, `--only-missing`, `--reprocess`, `--limit`) and sent to the
queue the notification sends them to (images to the ingest queue, videos to the video queue:
docs/videos.md) as S3 `ObjectCreated:Put` notifications, ten messages per `SendMessageBatch`, one record
each, at most `--max-rate` objects per second.

Reprocessing: the two functions record different fingerprints. A video's covers the sampling rate
(`VideoFps`) too, so `--reprocess` compares an object the notification routes to the video queue with the
video fingerprint (`--video-fps`, or `--video-fingerprint`) and any other with the image one.

Ordering: S3's `sequencer` belongs to S3 and cannot be minted, so a backfill record has none; it is marked
with `s3.configurationId = "s3kp-backfill"` (where S3 puts the id of the notification configuration) and
`eventTime` is the object's LastModified. The ingest function treats such a record as a *replay* of the
object's current version: it takes the ordering token of the result already stored (replacing it, as a
redelivery may), so a newer upload whose result lands meanwhile (a larger token) still wins, and a replay
whose object was replaced or deleted since the listing records nothing. Everything else (idempotency on
bucket/key/version/ETag/fingerprint, retries, the DLQ) is the same as for S3's own messages.

Recovering failures: `--only-failed [--reason CODE]` sends only objects whose stored result is `failed`
(with one of those reason codes). Those records also carry a *rerun token* (`s3kp.rerun`, one per run):
the ingest function makes it part of the idempotency key, because idempotency remembers a failure the
function returned (a permanent one, e.g. `object_too_large` before a limit was raised) and would answer
a plain replay with it. A failure recorded on the last delivery (`inference_unavailable`) is not
remembered (the function raised), so for those the token changes nothing.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote_plus

from s3kp_core.results import result_id_for

# `s3.configurationId` of backfill records; the ingest function (functions/ingest/s3_events.py) reads it.
REPLAY_CONFIGURATION_ID = "s3kp-backfill"
# Where a record carries a rerun token (s3_events.RERUN_FIELD): `{"s3kp": {"rerun": TOKEN}}`.
RERUN_FIELD = "s3kp"
FAILED = "failed"  # s3kp_core.results.Status.FAILED's value, as stored
SEND_BATCH = 10  # SQS SendMessageBatch's maximum
LOOKUP_BATCH = 100  # DynamoDB BatchGetItem's maximum
SEND_ATTEMPTS = 5
SEND_CONCURRENCY = 8  # SendMessageBatch calls in flight

# Why an object is not sent (the summary counts them by these).
NOT_MATCHED = "not matched by the bucket notification (prefix/suffix)"
TOO_OLD = "modified before --since"
HAS_RESULT = "has a result for its current version (--only-missing)"
UP_TO_DATE = "has a result with the current fingerprint (--reprocess)"
NO_IMAGE_FINGERPRINT = "an image, and no current image fingerprint (--model-id or --fingerprint)"
NO_VIDEO_FINGERPRINT = "a video, and no current video fingerprint (--model-id or --video-fingerprint)"
OVER_LIMIT = "beyond --limit"
NOT_FAILED = "has no failed result (--only-failed)"
OTHER_REASON = "failed for another reason (--reason)"
NO_VIDEO_QUEUE = "a video, and no video queue to send it to (--video-queue-url)"
INGEST_QUEUE = "IngestQueue"  # the template's logical ids of the queues the notification sends to
VIDEO_QUEUE = "VideoQueue"


class BackfillError(RuntimeError):
    """A problem the user can fix (no queue, no table): one line, exit code 1."""


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    etag: str
    last_modified: datetime
    version_id: str | None = None


@dataclass(frozen=True)
class StoredResult:
    """What the results table says about a key: which version it describes and what produced it."""

    etag: str | None
    version_id: str | None
    fingerprint: str | None
    status: str | None = None
    reason: str | None = None  # the reason's code


@dataclass(frozen=True)
class KeyFilter:
    """The bucket notification's rules: a key matches one (prefix, suffix) pair. S3 compares suffixes
    case-sensitively, which is why the template lists `.jpg` and `.JPG` separately. `queues` names, per
    rule, the queue (logical id) that rule's notifications go to (none given: the ingest queue)."""

    rules: tuple[tuple[str, str], ...]
    queues: tuple[str, ...] = ()

    def matches(self, key: str) -> bool:
        return self.queue_for(key) is not None

    def queue_for(self, key: str) -> str | None:
        """The logical id of the queue S3 notifies about `key`, None when no rule matches."""
        for index, (prefix, suffix) in enumerate(self.rules):
            if key.startswith(prefix) and key.endswith(suffix):
                return self.queues[index] if index < len(self.queues) else INGEST_QUEUE
        return None

    @classmethod
    def from_template(cls, template: Path | None = None) -> KeyFilter:
        from s3kp.local.cfn_template import load_template

        document = load_template(template)
        configurations = document["Resources"]["UploadBucket"]["Properties"]["NotificationConfiguration"][
            "QueueConfigurations"
        ]
        rules, queues = [], []
        for configuration in configurations:
            named = {
                rule["Name"].lower(): rule["Value"] for rule in configuration["Filter"]["S3Key"]["Rules"]
            }
            rules.append((str(named.get("prefix", "")), str(named.get("suffix", ""))))
            queues.append(str(configuration["Queue"]["Fn::GetAtt"][0]))
        return cls(tuple(rules), tuple(queues))


@dataclass(frozen=True)
class Plan:
    """What to decide per object. `fingerprint` and `video_fingerprint` are the current ones, the ingest
    function's and the video function's (`reprocess` needs one at least: objects of the other kind are
    skipped); `reasons` narrows `only_failed` to those reason codes (empty: any failure)."""

    key_filter: KeyFilter
    since: datetime | None = None
    only_missing: bool = False
    reprocess: bool = False
    fingerprint: str | None = None
    limit: int | None = None
    only_failed: bool = False
    reasons: frozenset[str] = frozenset()
    video_fingerprint: str | None = None

    @property
    def needs_results(self) -> bool:
        return self.only_missing or self.reprocess or self.only_failed

    def is_video(self, key: str) -> bool:
        """The notification routes `key` to the video function, which records the video fingerprint."""
        return self.key_filter.queue_for(key) == VIDEO_QUEUE


@dataclass
class Decision:
    obj: ListedObject
    skip_reason: str | None = None


def decide(
    objects: Iterable[ListedObject],
    plan: Plan,
    lookup: Callable[[list[ListedObject]], dict[str, StoredResult]] | None = None,
    *,
    chunk: int = LOOKUP_BATCH,
) -> Iterator[Decision]:
    """Each listed object with whether (and why not) it is sent, in listing order.

    Results are looked up `chunk` objects at a time (one BatchGetItem) and only for objects that pass the
    cheap filters. Once `limit` objects are to be sent, the rest is reported as beyond the limit.
    """
    if plan.reprocess and not (plan.fingerprint or plan.video_fingerprint):
        raise ValueError("reprocessing needs the current fingerprint")
    to_send = 0
    pending: list[Decision] = []

    def settle(batch: list[Decision]) -> Iterator[Decision]:
        nonlocal to_send
        candidates = [d.obj for d in batch if d.skip_reason is None]
        stored = lookup(candidates) if (plan.needs_results and lookup and candidates) else {}
        for decision in batch:
            if decision.skip_reason is None:
                decision.skip_reason = _result_reason(decision.obj, stored.get(decision.obj.key), plan)
            if decision.skip_reason is None:
                if plan.limit is not None and to_send >= plan.limit:
                    decision.skip_reason = OVER_LIMIT
                else:
                    to_send += 1
            yield decision

    for obj in objects:
        reason = None
        if not plan.key_filter.matches(obj.key):
            reason = NOT_MATCHED
        elif plan.since is not None and obj.last_modified < plan.since:
            reason = TOO_OLD
        pending.append(Decision(obj, reason))
        if len(pending) >= chunk:
            yield from settle(pending)
            pending = []
    yield from settle(pending)


def _result_reason(obj: ListedObject, stored: StoredResult | None, plan: Plan) -> str | None:
    if plan.only_failed:
        # Whatever version the failed result describes: the key shows a failure, and a replay processes
        # the object as it is now (a newer upload's own result, if it lands, still wins).
        if stored is None or stored.status != FAILED:
            return NOT_FAILED
        if plan.reasons and stored.reason not in plan.reasons:
            return OTHER_REASON
        return None
    if plan.reprocess:
        return _reprocess_reason(obj, stored, plan)
    if stored is None or not _same_version(obj, stored):
        return None  # no result for the current version: always worth sending
    if plan.only_missing:
        return HAS_RESULT
    return None


def _reprocess_reason(obj: ListedObject, stored: StoredResult | None, plan: Plan) -> str | None:
    """A video is compared with the video function's fingerprint (it covers VideoFps), an image with the
    ingest function's. Without the one of its kind an object cannot be judged, and is not sent: sending
    it anyway would reprocess every video of a run given the image fingerprint alone."""
    video = plan.is_video(obj.key)
    current = plan.video_fingerprint if video else plan.fingerprint
    if current is None:
        return NO_VIDEO_FINGERPRINT if video else NO_IMAGE_FINGERPRINT
    if stored is None or not _same_version(obj, stored):
        return None  # no result for the current version: always worth sending
    return UP_TO_DATE if stored.fingerprint == current else None


def _same_version(obj: ListedObject, stored: StoredResult) -> bool:
    if obj.version_id and stored.version_id:
        return obj.version_id == stored.version_id
    return (stored.etag or "").strip('"') == obj.etag.strip('"')


# ----------------------------------------------------------------------------------------- messages


def notification_body(bucket: str, obj: ListedObject, region: str, *, rerun: str | None = None) -> str:
    """The SQS message body S3 would send for this object's creation (one record), marked as backfill;
    with `rerun`, a token that makes the ingest function run it even if idempotency remembers it."""
    s3_object: dict[str, Any] = {
        # S3 URL-encodes keys in notifications (`+` for a space); it leaves `/` alone.
        "key": quote_plus(obj.key, safe="/"),
        "size": obj.size,
        "eTag": obj.etag.strip('"'),
    }
    if obj.version_id:
        s3_object["versionId"] = obj.version_id
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": _iso(obj.last_modified),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "s3kp-backfill"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        # S3 puts its request ids here; there was no S3 request, so these name the sender instead.
        "responseElements": {"x-amz-request-id": "S3KPBACKFILL0000", "x-amz-id-2": "s3kp-backfill"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": REPLAY_CONFIGURATION_ID,
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": ""}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": s3_object,
        },
    }
    if rerun:
        record[RERUN_FIELD] = {"rerun": rerun}
    return json.dumps({"Records": [record]}, ensure_ascii=False, separators=(",", ":"))


def _iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------ AWS side


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[ListedObject]:
    """Current versions under the prefix, page by page (version ids on a versioned bucket)."""
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if versioning in ("Enabled", "Suspended"):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                if not version.get("IsLatest"):
                    continue
                version_id = version.get("VersionId")
                yield ListedObject(
                    key=version["Key"],
                    size=int(version.get("Size", 0)),
                    etag=str(version.get("ETag", "")).strip('"'),
                    last_modified=version["LastModified"],
                    version_id=None if version_id in (None, "null") else str(version_id),
                )
        return
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield ListedObject(
                key=item["Key"],
                size=int(item.get("Size", 0)),
                etag=str(item.get("ETag", "")).strip('"'),
                last_modified=item["LastModified"],
            )


def results_lookup(
    dynamodb: Any, table: str, bucket: str
) -> Callable[[list[ListedObject]], dict[str, StoredResult]]:
    """BatchGetItem on the results table (result id = hash of bucket/key); unprocessed keys retried."""

    def lookup(objects: list[ListedObject]) -> dict[str, StoredResult]:
        ids = {result_id_for(bucket, obj.key): obj.key for obj in objects}
        found: dict[str, StoredResult] = {}
        request: dict[str, Any] = {
            table: {
                "Keys": [{"result_id": {"S": result_id}} for result_id in ids],
                "ProjectionExpression": "result_id, #source, fingerprint, #status, #reason.#code",
                "ExpressionAttributeNames": {
                    "#source": "source",
                    "#status": "status",
                    "#reason": "reason",
                    "#code": "code",
                },
            }
        }
        for attempt in range(SEND_ATTEMPTS):
            response = dynamodb.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table, []):
                source = item.get("source", {}).get("M", {})
                key = ids.get(item["result_id"]["S"])
                if key is None:
                    continue
                found[key] = StoredResult(
                    etag=source.get("etag", {}).get("S"),
                    version_id=source.get("version_id", {}).get("S"),
                    fingerprint=item.get("fingerprint", {}).get("S"),
                    status=item.get("status", {}).get("S"),
                    reason=item.get("reason", {}).get("M", {}).get("code", {}).get("S"),
                )
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return found
            time.sleep(0.05 * 2**attempt)
        raise BackfillError(f"the results table {table} kept throttling the lookups")

    return lookup


class Sender:
    """SendMessageBatch in tens, failed entries retried, paced to `max_rate` messages per second.

    Up to `concurrency` batches are in flight at once (boto3 clients are thread-safe): one SendMessageBatch
    is a round trip, and a single thread would spend its time waiting on it. `send` returns once the batch
    is handed over; `wait` blocks until every batch is acknowledged and raises the first failure.
    """

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        *,
        max_rate: float | None = None,
        concurrency: int = SEND_CONCURRENCY,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._max_rate = max_rate
        self._clock = clock
        self._sleep = sleep
        self._started: float | None = None
        self._handed_over = 0
        self._concurrency = max(1, concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: deque[Future[None]] = deque()
        self._lock = threading.Lock()
        self.sent = 0  # acknowledged by SQS

    def send(self, bodies: Sequence[str]) -> None:
        if self._started is None:
            self._started = self._clock()
        if self._max_rate:
            # Never ahead of the rate: the batch may start once the previous messages' time has passed.
            due = self._started + self._handed_over / self._max_rate
            wait = due - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._handed_over += len(bodies)
        if self._concurrency == 1:
            self._send_now(list(bodies))
            return
        while len(self._in_flight) >= self._concurrency:
            self._in_flight.popleft().result()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="backfill-send")
        self._in_flight.append(self._pool.submit(self._send_now, list(bodies)))

    def wait(self) -> None:
        """Every batch handed over is acknowledged (or the first failure is raised)."""
        try:
            while self._in_flight:
                self._in_flight.popleft().result()
        finally:
            if self._pool is not None and not self._in_flight:
                self._pool.shutdown(wait=True)
                self._pool = None

    def close(self) -> None:
        """Stop without waiting for what is not yet sent (Ctrl-C)."""
        for future in self._in_flight:
            future.cancel()
        self._in_flight.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _send_now(self, bodies: list[str]) -> None:
        entries = [{"Id": str(index), "MessageBody": body} for index, body in enumerate(bodies)]
        for attempt in range(SEND_ATTEMPTS):
            response = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            failed = {entry["Id"] for entry in response.get("Failed", [])}
            if not failed:
                break
            entries = [entry for entry in entries if entry["Id"] in failed]
            self._sleep(0.1 * 2**attempt)
        else:
            reasons = {entry.get("Code") for entry in response.get("Failed", [])}
            raise BackfillError(
                f"SQS refused {len(entries)} messages after {SEND_ATTEMPTS} attempts: {reasons}"
            )
        with self._lock:
            self.sent += len(bodies)


# ------------------------------------------------------------------------------------------ the command


@dataclass
class Summary:
    bucket: str
    prefix: str
    queue_url: str
    dry_run: bool
    video_queue_url: str | None = None
    listed: int = 0
    sent: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    fingerprint: str | None = None
    video_fingerprint: str | None = None
    videos: int = 0  # listed objects the notification routes to the video queue
    rerun: str | None = None

    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "queue_url": self.queue_url,
            "video_queue_url": self.video_queue_url,
            "dry_run": self.dry_run,
            "listed": self.listed,
            "videos": self.videos,
            "sent" if not self.dry_run else "would_send": self.sent,
            "skipped": dict(self.skipped),
            "seconds": round(self.seconds, 3),
            "objects_per_second": round(self.rate(), 1),
            "fingerprint": self.fingerprint,
            "video_fingerprint": self.video_fingerprint,
            "rerun": self.rerun,
        }

    def lines(self) -> list[str]:
        verb = "would send" if self.dry_run else "sent"
        lines = [
            f"s3kp backfill: s3://{self.bucket}/{self.prefix} -> {self.queue_url}"
            + (f" (videos: {self.video_queue_url})" if self.video_queue_url else ""),
            f"  listed   {self.listed}",
            f"  {verb:<8} {self.sent}  ({self.rate():.0f} objects/s over {self.seconds:.1f} s)",
        ]
        for reason, count in self.skipped.most_common():
            lines.append(f"  skipped  {count}  {reason}")
        if self.videos and (self.fingerprint or self.video_fingerprint):
            image, video = self.fingerprint or "unknown", self.video_fingerprint or "unknown"
            lines.append(f"  current fingerprint {image} (images), {video} (videos)")
        elif self.fingerprint:
            lines.append(f"  current fingerprint {self.fingerprint}")
        if self.rerun:
            lines.append(f"  rerun token {self.rerun} (in the ingest function's idempotency key)")
        return lines


class Progress:
    """One self-rewriting line on a terminal; nothing otherwise (the summary says it all)."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self._stream = stream
        self._enabled = enabled
        self._last = 0.0

    def update(self, summary: Summary, started: float, force: bool = False) -> None:
        now = time.monotonic()
        if not self._enabled or (not force and now - self._last < 0.2):
            return
        self._last = now
        elapsed = max(now - started, 1e-6)
        verb = "would send" if summary.dry_run else "sent"
        bar = progress_bar(summary.sent, summary.listed)
        skipped = sum(summary.skipped.values())
        self._stream.write(
            f"\r  {bar} listed {summary.listed}  {verb} {summary.sent}  skipped {skipped}"
            f"  {summary.sent / elapsed:.0f}/s "
        )
        self._stream.flush()

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\n")
            self._stream.flush()


def progress_bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total) if total else 0
    return "[" + "#" * filled + "." * (width - filled) + "]"


def run_backfill(
    *,
    s3: Any,
    sqs: Any,
    dynamodb: Any | None,
    bucket: str,
    prefix: str,
    queue_url: str,
    results_table: str | None,
    region: str,
    plan: Plan,
    dry_run: bool = False,
    max_rate: float | None = None,
    progress_stream: TextIO | None = None,
    concurrency: int = SEND_CONCURRENCY,
    rerun: str | None = None,
    video_queue_url: str | None = None,
) -> Summary:
    """List, decide and send; returns the summary (also on Ctrl-C, via the exception's `summary`).

    Images go to `queue_url`, videos to `video_queue_url` (without one they are counted, not sent).
    `rerun` (default: a fresh token when `plan.only_failed`) goes into every record sent."""
    summary = Summary(
        bucket=bucket, prefix=prefix, queue_url=queue_url, dry_run=dry_run, video_queue_url=video_queue_url
    )
    summary.fingerprint, summary.video_fingerprint = plan.fingerprint, plan.video_fingerprint
    if rerun is None and plan.only_failed:
        rerun = new_rerun_token()
    summary.rerun = rerun
    lookup = None
    if plan.needs_results:
        if dynamodb is None or not results_table:
            raise BackfillError(
                "--only-missing, --reprocess and --only-failed need the results table (--results-table)"
            )
        lookup = results_lookup(dynamodb, results_table, bucket)
    stream = progress_stream or sys.stderr
    progress = Progress(stream, enabled=stream.isatty())
    # One sender per queue; they share the rate (an upload is an upload, image or video).
    senders = {INGEST_QUEUE: Sender(sqs, queue_url, max_rate=max_rate, concurrency=concurrency)}
    if video_queue_url:
        senders[VIDEO_QUEUE] = Sender(sqs, video_queue_url, max_rate=max_rate, concurrency=concurrency)
    batches: dict[str, list[str]] = {name: [] for name in senders}
    started = time.monotonic()

    def sent() -> int:
        return sum(sender.sent for sender in senders.values())

    def flush(target: str | None = None) -> None:
        for name, batch in batches.items():
            if target is not None and name != target:
                continue
            if batch and not dry_run:
                senders[name].send(batch)
            if dry_run:
                summary.sent += len(batch)
            batch.clear()
        if not dry_run:
            summary.sent = sent()

    def counted(objects: Iterable[ListedObject]) -> Iterator[ListedObject]:
        for obj in objects:
            summary.listed += 1
            summary.videos += plan.is_video(obj.key)
            yield obj

    try:
        for decision in decide(counted(list_objects(s3, bucket, prefix)), plan, lookup):
            if decision.skip_reason is not None:
                summary.skipped[decision.skip_reason] += 1
                if decision.skip_reason == OVER_LIMIT:
                    break  # the rest would only be counted, at the cost of listing it
            else:
                target = plan.key_filter.queue_for(decision.obj.key) or INGEST_QUEUE
                if target not in batches:
                    summary.skipped[NO_VIDEO_QUEUE] += 1
                    continue
                batches[target].append(notification_body(bucket, decision.obj, region, rerun=rerun))
                if len(batches[target]) == SEND_BATCH:
                    flush(target)
            progress.update(summary, started)
        flush()
        for sender in senders.values():
            sender.wait()
        if not dry_run:
            summary.sent = sent()
    finally:
        for sender in senders.values():
            sender.close()
        summary.seconds = time.monotonic() - started
        progress.update(summary, started, force=True)
        progress.close()
    return summary


def new_rerun_token() -> str:
    """One per `--only-failed` run: this run's records run again once; a later run may run them again."""
    return f"rerun-{uuid.uuid4().hex[:16]}"


# ------------------------------------------------------------------------------------------ CLI glue


def parse_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or len(url) <= len("s3://"):
        raise ValueError(f"expected s3://BUCKET[/PREFIX], got {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"expected s3://BUCKET[/PREFIX], got {url!r}")
    return bucket, prefix


def parse_since(text: str) -> datetime:
    """ISO-8601 date or date-time; UTC when it has no offset."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since: expected an ISO-8601 date or date-time, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_reasons(values: Sequence[str] | None) -> frozenset[str]:
    """`--reason` given several times and/or comma-separated; each must be a code the pipeline records
    (s3kp_core.errors), so a typo is an error rather than a run that matches nothing."""
    codes = frozenset(code.strip() for value in values or () for code in value.split(",") if code.strip())
    unknown = sorted(codes - known_reason_codes())
    if unknown:
        known = ", ".join(sorted(known_reason_codes()))
        raise ValueError(f"--reason: unknown reason code {', '.join(unknown)} (known: {known})")
    return codes


def known_reason_codes() -> frozenset[str]:
    from s3kp_core import errors

    return frozenset(
        value
        for name, value in vars(errors).items()
        if name.isupper() and isinstance(value, str) and value.islower()
    )


def current_fingerprints(args: Any) -> tuple[str | None, str | None]:
    """The fingerprints the stack records now, images' and videos': each its explicit option
    (--fingerprint, --video-fingerprint), else the one the ingest / video function computes from --model-id
    and the inference settings, plus --video-fps for videos (defaults: the template's parameter defaults,
    as the local stack runs them); None without either."""
    image, video = args.fingerprint or None, args.video_fingerprint or None
    if args.model_id and not (image and video):
        from s3kp_core.fingerprint import inference_fingerprint

        from s3kp.local.cfn_template import load_template, parameter_defaults

        defaults = parameter_defaults(load_template())
        classes = args.classes if args.classes is not None else str(defaults.get("Classes", ""))
        settings: dict[str, Any] = {
            "confidence": args.confidence if args.confidence is not None else float(defaults["Confidence"]),
            "overlap": args.overlap if args.overlap is not None else float(defaults["Overlap"]),
            "classes": classes.split(","),
            "max_side_for_inference": (
                args.max_side_for_inference
                if args.max_side_for_inference is not None
                else int(defaults["MaxSideForInference"])
            ),
        }
        video_fps = args.video_fps if args.video_fps is not None else str(defaults["VideoFps"])
        image = image or inference_fingerprint(args.model_id, **settings)
        video = video or inference_fingerprint(args.model_id, **settings, video_fps=video_fps)
    return image, video


def run_from_args(args: Any) -> int:
    import boto3

    from s3kp.local_target import LocalTargetError, local_target

    try:
        bucket, prefix = parse_s3_url(args.url)
        since = parse_since(args.since) if args.since else None
        reasons = parse_reasons(args.reason)
    except ValueError as error:
        print(f"s3kp backfill: {error}", file=sys.stderr)
        return 2
    selections = [f"--{name}" for name in ("only-missing", "reprocess", "only-failed")
                  if getattr(args, name.replace("-", "_"))]  # fmt: skip
    if len(selections) > 1:
        print(f"s3kp backfill: {' and '.join(selections)} exclude each other", file=sys.stderr)
        return 2
    if args.reason and not args.only_failed:
        print("s3kp backfill: --reason narrows --only-failed: add --only-failed", file=sys.stderr)
        return 2
    fingerprint, video_fingerprint = current_fingerprints(args)
    if args.reprocess and not (fingerprint or video_fingerprint):
        print(
            "s3kp backfill: --reprocess needs what the stack runs now: --model-id (and any inference "
            "setting or VideoFps you changed) or --fingerprint / --video-fingerprint",
            file=sys.stderr,
        )
        return 2
    if (args.limit is not None and args.limit < 0) or (args.max_rate is not None and args.max_rate <= 0):
        print("s3kp backfill: --limit must be >= 0 and --max-rate > 0", file=sys.stderr)
        return 2

    queue_url, results_table = args.queue_url, args.results_table
    video_queue_url = getattr(args, "video_queue_url", None)
    if queue_url:
        session = boto3.session.Session()  # the user's own credentials and region (or AWS_ENDPOINT_URL)
        endpoint_url = None
    else:
        try:
            target = local_target(args.name_prefix, args.endpoint_url)
        except LocalTargetError as error:
            print(f"s3kp backfill: {error}; pass --queue-url to send to a queue in AWS", file=sys.stderr)
            return 1
        session, endpoint_url = target.session, target.endpoint_url
        queue_url = target.queue_url
        video_queue_url = video_queue_url or target.video_queue_url
        results_table = results_table or target.results_table
    if session.region_name is None:
        print("s3kp backfill: no AWS region: set AWS_REGION (or a profile's region)", file=sys.stderr)
        return 1
    region = session.region_name
    clients = {name: session.client(name, endpoint_url=endpoint_url) for name in ("s3", "sqs", "dynamodb")}
    plan = Plan(
        key_filter=KeyFilter.from_template(),
        since=since,
        only_missing=args.only_missing,
        reprocess=args.reprocess,
        fingerprint=fingerprint,
        video_fingerprint=video_fingerprint,
        limit=args.limit,
        only_failed=args.only_failed,
        reasons=reasons,
    )
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        summary = run_backfill(
            s3=clients["s3"],
            sqs=clients["sqs"],
            dynamodb=clients["dynamodb"],
            bucket=bucket,
            prefix=prefix,
            queue_url=queue_url,
            results_table=results_table,
            region=region,
            plan=plan,
            dry_run=args.dry_run,
            max_rate=args.max_rate,
            video_queue_url=video_queue_url,
        )
    except (BackfillError, ClientError, BotoCoreError) as error:
        print(f"s3kp backfill: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary.as_dict()))
    else:
        print("\n".join(summary.lines()))
    return 0
