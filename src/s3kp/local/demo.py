"""`s3kp demo`: the whole pipeline offline, on the sample images and a short video, then a results table.

Brings the stack up, uploads the sample images (plus a few bad files, a key with spaces and unicode, and
a four-second clip made from the sample images: `s3kp.video_samples.sample_video`) to the bucket with
boto3 — the S3 notification does the rest — waits for every result (a video's final one, after its
segments), prints what became of each upload, downloads the annotated copies (the video's MP4 too) to
.cache/demo-output/, reads one result back through the local HTTP API, and stops the stack (or keeps it
running with --keep).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import requests
from s3kp_core.results import Status, result_id_for
from s3kp_core.results_schema import PARTITION_KEY, from_dynamodb

from s3kp import samples
from s3kp.console import Output, format_table, wait_forever
from s3kp.local.processes import ChildFailed
from s3kp.local.stack import LocalStack, StackError
from s3kp.local.stack_commands import configure_logging, options_from_args, stop_with_message
from s3kp.paths import cache_dir

PROGRAM = "s3kp demo"
POLL_INTERVAL_SECONDS = 0.25
UNICODE_SAMPLE_NAME = "my photos/Grace Hopper — café ☕.jpg"  # spaces, an em dash, accents, an emoji
SAMPLE_VIDEO_NAME = "samples/people and faces.mp4"


@dataclass(frozen=True)
class Upload:
    label: str
    key: str
    data: bytes
    must_succeed: bool  # a valid sample; the bad files may fail (with a reason) but must finish


@dataclass
class Outcome:
    upload: Upload
    uploaded_at: datetime
    record: dict[str, Any] | None = None

    @property
    def latency_ms(self) -> float | None:
        if self.record is None:
            return None
        finished = datetime.fromisoformat(str(self.record["updated_at"]).replace("Z", "+00:00"))
        return (finished - self.uploaded_at).total_seconds() * 1000


def demo_uploads(input_prefix: str) -> list[Upload]:
    """The sample images as JPEG, one under a key with spaces and unicode, the sample video (made now, from
    the sample images: nothing is downloaded) and the bad inputs."""
    from s3kp.video_samples import sample_video

    uploads = [
        Upload(name, f"{input_prefix}samples/{name}.jpg", samples.sample_jpeg(name), must_succeed=True)
        for name in samples.SAMPLE_IMAGES
    ]
    uploads.append(
        Upload(
            "unicode key", f"{input_prefix}{UNICODE_SAMPLE_NAME}", samples.sample_jpeg("grace_hopper"), True
        )
    )
    uploads.append(Upload("sample video", f"{input_prefix}{SAMPLE_VIDEO_NAME}", sample_video(), True))
    uploads += [
        Upload(name, f"{input_prefix}bad/{file_name}", make(), must_succeed=False)
        for name, (file_name, make) in samples.BAD_INPUTS.items()
    ]
    return uploads


def run_demo(args: argparse.Namespace) -> int:
    """Ctrl-C/SIGTERM and a closed stdout reach this as an exception (`s3kp.console`): the `finally`
    stops the stack whatever the demo was doing."""
    options = options_from_args(args)
    configure_logging(options.verbose)
    print(f"{PROGRAM}: starting the offline stack", flush=True)
    stack = LocalStack(options, report_batches=options.verbose, program=PROGRAM)
    try:
        stack.start()
        code = _run(stack, timeout=float(getattr(args, "timeout", 180.0)))
        if getattr(args, "keep", False):
            print(stack.summary(), flush=True)
            wait_forever()  # until Ctrl-C
        return code
    except (StackError, ChildFailed) as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        stop_with_message(stack, PROGRAM)


def _run(stack: LocalStack, *, timeout: float) -> int:
    resources = stack.resources
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint, region_name=resources.region)
    uploads = demo_uploads(resources.input_prefix)

    print(
        f"\nUploading {len(uploads)} files to s3://{resources.bucket}/{resources.input_prefix} …", flush=True
    )
    outcomes = []
    for upload in uploads:
        uploaded_at = datetime.now(UTC)
        s3.put_object(Bucket=resources.bucket, Key=upload.key, Body=upload.data)
        outcomes.append(Outcome(upload, uploaded_at))

    output = Output()
    finished = _wait_for_results(stack, outcomes, timeout, output)
    output.line()
    output.line(_results_table(outcomes, resources.input_prefix, aligned=output.interactive))
    if not finished:
        print(f"\n{PROGRAM}: not every result arrived within {timeout:.0f} s (see {stack.options.log_dir})")

    _show_annotated(stack, s3, outcomes)
    _show_api_excerpt(stack, outcomes)

    failed_samples = [
        o.upload.label for o in outcomes if o.upload.must_succeed and _status(o) != Status.SUCCEEDED
    ]
    if failed_samples:
        print(f"\n{PROGRAM}: FAILED: {', '.join(failed_samples)} did not succeed", flush=True)
        return 1
    print(f"\n{PROGRAM}: every sample image and the sample video succeeded", flush=True)
    return 0


def _wait_for_results(stack: LocalStack, outcomes: list[Outcome], timeout: float, output: Output) -> bool:
    """Poll the results table (one BatchGetItem per round) until every upload has a final result (a video
    is `processing` while its segments are outstanding)."""
    dynamodb = boto3.client("dynamodb", endpoint_url=stack.aws_endpoint, region_name=stack.resources.region)
    table = stack.resources.results_table
    bucket = stack.resources.bucket
    pending = {result_id_for(bucket, o.upload.key): o for o in outcomes}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        keys = [{PARTITION_KEY: {"S": result_id}} for result_id in list(pending)[:100]]
        response = dynamodb.batch_get_item(RequestItems={table: {"Keys": keys}})
        for item in response["Responses"].get(table, []):
            plain = from_dynamodb({name: _plain(value) for name, value in item.items()})
            pending[plain[PARTITION_KEY]].record = plain
            if plain.get("status") != Status.PROCESSING:
                del pending[plain[PARTITION_KEY]]
        output.progress("results", len(outcomes) - len(pending), len(outcomes))
        if pending:
            time.sleep(POLL_INTERVAL_SECONDS)
    output.done_progress()
    return not pending


def _plain(value: dict[str, Any]) -> Any:
    from boto3.dynamodb.types import TypeDeserializer

    return TypeDeserializer().deserialize(value)


def _status(outcome: Outcome) -> str | None:
    return None if outcome.record is None else str(outcome.record["status"])


def _results_table(outcomes: list[Outcome], input_prefix: str, *, aligned: bool = True) -> str:
    """What became of each upload: aligned columns for a person, tab-separated lines when piped."""
    header = ("image", "status", "detections", "keypoints", "latency ms", "reason")
    rows = []
    for outcome in outcomes:
        record = outcome.record or {}
        reason = record.get("reason") or {}
        latency = outcome.latency_ms
        rows.append(
            (
                outcome.upload.key.removeprefix(input_prefix),
                str(record.get("status", "no result")),
                str(record.get("detections", "")),
                str(record.get("keypoints", "")),
                "" if latency is None else f"{latency:.0f}",
                _shorten(f"{reason.get('code', '')}: {reason.get('message', '')}") if reason else "",
            )
        )
    return format_table(header, rows, numeric={2, 3, 4}, aligned=aligned)


def _shorten(text: str, width: int = 72) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _show_annotated(stack: LocalStack, s3: Any, outcomes: list[Outcome]) -> None:
    """Download every annotated copy to .cache/demo-output/ and say where the originals are."""
    annotated = [o.record["annotated"] for o in outcomes if o.record and o.record.get("annotated")]
    if not annotated:
        return
    output_dir = cache_dir() / "demo-output"
    for ref in annotated:
        target = output_dir / ref["key"]
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(ref["bucket"], ref["key"], str(target))
    bucket = annotated[0]["bucket"]
    prefix = stack.resources.output_prefix
    print(f"\nAnnotated copies ({len(annotated)}): s3://{bucket}/{prefix}")
    for ref in annotated[:3]:
        print(f"  s3://{ref['bucket']}/{ref['key']}")
    if len(annotated) > 3:
        print(f"  … and {len(annotated) - 3} more")
    print(f"  downloaded to {_relative(output_dir / prefix)}")
    print(f"  aws --endpoint-url {stack.aws_endpoint} s3 cp --recursive s3://{bucket}/{prefix} ./annotated/")


def _show_api_excerpt(stack: LocalStack, outcomes: list[Outcome]) -> None:
    """Read the richest result back through the HTTP API, as a client would."""
    succeeded = [o for o in outcomes if _status(o) == Status.SUCCEEDED]
    if not succeeded:
        return
    best = max(succeeded, key=lambda o: int(o.record["keypoints"]) if o.record else 0)
    result_id = result_id_for(stack.resources.bucket, best.upload.key)
    url = f"{stack.api_url}/results/{result_id}"
    response = requests.get(url, timeout=30)
    print(f"\nGET {url}  ->  {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        print(f"  {response.text[:300]}")
        return
    print(_excerpt(body))
    annotated = requests.get(f"{url}/annotated", timeout=30, allow_redirects=False)
    location = annotated.headers.get("Location", "")
    print(f"GET {url}/annotated  ->  {annotated.status_code} {location.split('?', 1)[0]}?…(presigned)")


def _excerpt(body: Any, max_lines: int = 30) -> str:
    """The JSON with long lists cut to their first item, then to `max_lines` lines."""

    def trim(value: Any) -> Any:
        if isinstance(value, list) and len(value) > 1:
            return [trim(value[0]), f"… {len(value) - 1} more"]
        if isinstance(value, dict):
            return {name: trim(item) for name, item in value.items()}
        return value

    lines = json.dumps(trim(body), indent=2, ensure_ascii=False).splitlines()
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], "  …"]
    return "\n".join(f"  {line}" for line in lines)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
