"""`s3kp`: the project's command-line tool.

Subcommands import their implementation lazily so `s3kp --help` stays instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def _models(args: argparse.Namespace) -> int:
    from s3kp_models.model_files import MODEL_FILES

    from s3kp.model_server import model_files

    if args.action == "fetch":
        model_files.fetch()
        return 0
    bad = model_files.missing_or_corrupt()
    if bad:
        print(f"missing or corrupt: {', '.join(bad)} (run `s3kp models fetch`)", file=sys.stderr)
        return 1
    print(f"all {len(MODEL_FILES)} model files verified")
    return 0


def _model_server(args: argparse.Namespace) -> int:
    from s3kp.model_server.serve import serve

    return serve(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        workers=args.threads,
        allow_remote=args.allow_remote,
        allow_private_image_urls=args.allow_private_image_urls,
    )


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _up(args: argparse.Namespace) -> int:
    from s3kp.local.stack_commands import run_up

    return run_up(args)


def _demo(args: argparse.Namespace) -> int:
    from s3kp.local.demo import run_demo

    return run_demo(args)


def _export(args: argparse.Namespace) -> int:
    from s3kp.export.run import run_export

    if args.json and args.output == "-":
        args.parser.error("--json prints a summary on stdout: it cannot go with -o - (the data)")
    if not 0.0 <= args.visibility_threshold <= 1.0:
        args.parser.error("--visibility-threshold is a confidence: between 0 and 1")
    if args.workers < 1:
        args.parser.error("--workers must be at least 1")
    if args.max_keypoints is not None and args.max_keypoints < 1:
        args.parser.error("--max-keypoints must be at least 1")
    return run_export(args)


def _view(args: argparse.Namespace) -> int:
    from s3kp.viewer.server import run_view

    return run_view(args)


def _add_api_options(parser: argparse.ArgumentParser) -> None:
    """Where the results API is and how to authenticate (shared by `export` and `view`)."""
    parser.add_argument(
        "--api-url",
        default=os.environ.get("S3KP_API_URL", "http://127.0.0.1:3000"),
        help="the results API (default: $S3KP_API_URL or the local stack's http://127.0.0.1:3000); "
        "requests to a non-loopback API are signed with your AWS credentials (SigV4)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("S3KP_API_TOKEN"),
        help="send this bearer token instead of signing (an API deployed with ApiAuthType=JWT; "
        "default: $S3KP_API_TOKEN)",
    )
    parser.add_argument("--region", default=None, help="AWS region for signing (default: from the URL)")


def _down(args: argparse.Namespace) -> int:
    from s3kp.local.stack_commands import run_down

    return run_down(args)


def _events(args: argparse.Namespace) -> int:
    from s3kp.events_follow import run_from_args

    return run_from_args(args)


def _backfill(args: argparse.Namespace) -> int:
    from s3kp.backfill import run_from_args

    return run_from_args(args)


def _redrive(args: argparse.Namespace) -> int:
    from s3kp.redrive import run_from_args

    return run_from_args(args)


def _add_local_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint-url",
        default=None,
        help="the local stack's AWS endpoint (default: $AWS_ENDPOINT_URL, else http://127.0.0.1:4566)",
    )
    parser.add_argument("--name-prefix", default="s3kp-local", help="the local stack's --name-prefix")


def _add_events_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = sub.add_parser(
        "events",
        help="print the result events of the stack's EventBridge bus as they arrive (Ctrl-C stops)",
        description="Adds a rule and a temporary queue of its own on the results bus, prints each "
        "Keypoint Result event, and removes both on exit.",
    )
    events.add_argument(
        "--bus", default=None, help="an event bus in AWS (default: the running local stack's)"
    )
    _add_local_target_options(events)
    events.add_argument("--json", action="store_true", help="print each whole event as one JSON line")
    events.add_argument("--count", type=_positive_int, default=None, help="stop after this many events")
    events.add_argument("--timeout", type=_positive_float, default=None, help="stop after this many seconds")
    events.set_defaults(func=_events)

    backfill = sub.add_parser(
        "backfill",
        help="send the objects already in a bucket to the ingest queue, as S3 notifications",
        description="Lists s3://BUCKET/PREFIX (keys the bucket notification would match) and sends one "
        "S3 ObjectCreated notification per object to the ingest queue, in batches of 10 (docs/backfill.md).",
    )
    backfill.add_argument("url", metavar="s3://BUCKET/PREFIX")
    backfill.add_argument(
        "--queue-url", default=None, help="the ingest queue (default: the running local stack's)"
    )
    backfill.add_argument(
        "--video-queue-url",
        default=None,
        help="the video queue, where videos are sent (output VideoQueueUrl; default: the local stack's)",
    )
    backfill.add_argument(
        "--results-table",
        default=None,
        help="the results table, for --only-missing/--reprocess/--only-failed (default: the local stack's)",
    )
    _add_local_target_options(backfill)
    backfill.add_argument("--dry-run", action="store_true", help="list and decide, send nothing")
    backfill.add_argument(
        "--only-missing", action="store_true", help="skip objects whose current version has a result"
    )
    backfill.add_argument(
        "--reprocess",
        action="store_true",
        help="send only objects without a result of the current fingerprint, images' or videos' "
        "(needs --model-id, or --fingerprint / --video-fingerprint)",
    )
    backfill.add_argument(
        "--only-failed",
        action="store_true",
        help="send only objects whose stored result is failed (run again even if idempotency remembers it)",
    )
    backfill.add_argument(
        "--reason",
        action="append",
        metavar="CODE",
        help="with --only-failed: only failures with this reason code (repeat it or separate codes with "
        "commas, e.g. inference_unavailable)",
    )
    backfill.add_argument("--model-id", default=None, help="the model the stack runs now (for --reprocess)")
    backfill.add_argument("--confidence", type=float, default=None, help="the stack's Confidence, if changed")
    backfill.add_argument("--overlap", type=float, default=None, help="the stack's Overlap, if changed")
    backfill.add_argument("--classes", default=None, help="the stack's Classes, if changed")
    backfill.add_argument(
        "--max-side-for-inference", type=int, default=None, help="the stack's MaxSideForInference, if changed"
    )
    backfill.add_argument(
        "--video-fps",
        type=_positive_float,
        default=None,
        help="the stack's VideoFps, if changed (part of the videos' fingerprint)",
    )
    backfill.add_argument(
        "--fingerprint",
        default=None,
        help="the current fingerprint of images itself (overrides --model-id's)",
    )
    backfill.add_argument(
        "--video-fingerprint",
        default=None,
        help="the current fingerprint of videos itself (overrides --model-id's and --video-fps')",
    )
    backfill.add_argument(
        "--since", default=None, help="only objects modified at or after this ISO-8601 date"
    )
    backfill.add_argument("--max-rate", type=float, default=None, help="at most this many objects per second")
    backfill.add_argument("--limit", type=int, default=None, help="send at most this many objects")
    backfill.add_argument("--json", action="store_true", help="print the summary as JSON")
    backfill.set_defaults(func=_backfill)

    redrive = sub.add_parser(
        "redrive",
        help="move the dead-letter queues' messages back (images to the ingest queue, videos to the video "
        "queue)",
        description="For each dead-letter queue of the stack (images, videos; --queue picks one), starts an "
        "SQS message move task back to its queue; where the endpoint has none (the local stack's moto), "
        "receives, sends and deletes ten messages at a time (docs/backfill.md).",
    )
    redrive.add_argument(
        "--queue",
        choices=("images", "videos", "all"),
        default=None,
        help="which of the local stack's DLQs: images (-> the ingest queue), videos (-> the video queue) "
        "or all (default)",
    )
    redrive.add_argument(
        "--queue-url",
        default=None,
        help="one queue instead (output IngestQueueUrl or VideoQueueUrl), e.g. of a stack in AWS",
    )
    redrive.add_argument(
        "--dlq-url",
        default=None,
        help="its dead-letter queue (output DeadLetterQueueUrl or VideoDeadLetterQueueUrl; default: the "
        "queue's RedrivePolicy)",
    )
    _add_local_target_options(redrive)
    redrive.add_argument(
        "--dry-run", action="store_true", help="print how many messages the DLQ holds; receive nothing"
    )
    redrive.add_argument(
        "--wait", action="store_true", help="follow the move tasks until they end, printing progress"
    )
    redrive.add_argument(
        "--max-rate",
        type=_positive_int,
        default=None,
        help="at most this many messages per second from each DLQ (<= 500)",
    )
    redrive.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        help="move at most this many messages from each DLQ (always by receive/send/delete: a move task "
        "takes no limit)",
    )
    redrive.add_argument("--json", action="store_true", help="print the summary as JSON")
    redrive.set_defaults(func=_redrive)


def _positive_int(text: str) -> int:
    value = _positive_float(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(value)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text}")
    return value


def _port(text: str) -> int:
    """A TCP port for argparse: 0 (pick a free one) to 65535, else a usage error (exit 2)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535)")
    return port


def _add_stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (loopback by default)")
    parser.add_argument("--aws-port", type=_port, default=4566, help="local AWS endpoint (moto server)")
    parser.add_argument("--inference-port", type=_port, default=9001, help="local inference server")
    parser.add_argument("--api-port", type=_port, default=3000, help="local HTTP API")
    parser.add_argument(
        "--inference-url",
        default=None,
        help="use this inference endpoint instead of starting the local one (e.g. https://detect.roboflow.com)",
    )
    parser.add_argument(
        "--inference-backend",
        choices=["roboflow", "builtin"],
        default="roboflow",
        help="the template's InferenceBackend: roboflow (default: the local inference server, or "
        "--inference-url) or builtin (the InferenceFunction behind a local AWS_IAM Function URL)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("ROBOFLOW_API_KEY"),
        help="API key sent to the inference endpoint (default: $ROBOFLOW_API_KEY or a local one)",
    )
    parser.add_argument(
        "--model-id",
        default=None,
        help="project/version to run (default: faces/2, a face model of the local server)",
    )
    parser.add_argument("--bucket", default=None, help="upload bucket name (default: the stack's)")
    parser.add_argument("--name-prefix", default="s3kp-local", help="prefix of the local resource names")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="concurrent ingest invocations (default: the template's MaximumConcurrency)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the local API and AWS endpoint have no auth)",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="where the servers' and handlers' logs go (default: .cache/logs/)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show the handlers' logs here instead of in .cache/logs/"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3kp",
        description=__doc__,
        epilog="exit status: 0 ok, 1 failure, 2 usage error, 130 Ctrl-C (SIGINT), 143 SIGTERM; "
        "a closed output pipe ends a command as it ends `cat` (SIGPIPE, 141 in a shell)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = sub.add_parser("models", help="fetch or verify the MediaPipe model files")
    models.add_argument("action", choices=["fetch", "verify"])
    models.set_defaults(func=_models)

    server = sub.add_parser("model-server", help="run the Roboflow-compatible keypoint inference server")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=_port, default=9001)
    server.add_argument(
        "--api-key",
        default=os.environ.get("S3KP_MODEL_SERVER_API_KEY"),
        help="require this API key (default: $S3KP_MODEL_SERVER_API_KEY; unset accepts any)",
    )
    server.add_argument(
        "--threads", type=int, default=None, help="inference threads (default: the number of CPU cores)"
    )
    server.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (anyone who reaches it can make the server fetch image URLs)",
    )
    server.add_argument(
        "--allow-private-image-urls",
        action="store_true",
        default=_env_flag("S3KP_MODEL_SERVER_ALLOW_PRIVATE_URLS"),
        help="let image=<url> fetch from loopback, private and link-local addresses "
        "(default: refused; $S3KP_MODEL_SERVER_ALLOW_PRIVATE_URLS=1 turns it on)",
    )
    server.set_defaults(func=_model_server)

    up = sub.add_parser("up", help="start the offline stack and keep it running (Ctrl-C stops it)")
    _add_stack_options(up)
    up.set_defaults(func=_up)

    demo = sub.add_parser("demo", help="run the whole pipeline offline on sample images, then stop")
    _add_stack_options(demo)
    demo.add_argument(
        "--keep", action="store_true", help="leave the stack running afterwards (Ctrl-C stops it)"
    )
    demo.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for every result")
    demo.set_defaults(func=_demo)

    export = sub.add_parser("export", help="write results as COCO keypoints, CSV or JSONL")
    _add_api_options(export)
    export.add_argument("--format", required=True, choices=["coco", "csv", "jsonl"])
    export.add_argument("-o", "--output", required=True, help="file to write (atomically), or - for stdout")
    export.add_argument("--status", choices=["succeeded", "failed", "skipped"],
                        help="only this status (COCO and CSV default to succeeded)")  # fmt: skip
    export.add_argument("--class", dest="class_name", help="only results with a detection of this class")
    export.add_argument("--prefix", help="only source keys starting with this")
    export.add_argument("--since", help="ISO-8601, updated at or after")
    export.add_argument("--until", help="ISO-8601, updated before")
    export.add_argument("--workers", type=int, default=8, help="parallel detail reads (default 8)")
    export.add_argument(
        "--visibility-threshold",
        type=float,
        default=0.5,
        help="COCO: keypoints at or above this confidence are visible (v=2), others v=1",
    )
    export.add_argument(
        "--max-keypoints",
        type=int,
        default=None,
        help="COCO: the model's keypoint count; a keypoint whose class_id is outside 0..N-1 is left out "
        "with a warning (default 1024, above any model we know)",
    )
    export.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    export.set_defaults(func=_export, parser=export)

    view = sub.add_parser("view", help="browse the results in a web viewer served on loopback")
    _add_api_options(view)
    view.add_argument("--host", default="127.0.0.1", help="interface to bind (loopback only)")
    view.add_argument("--port", type=_port, default=8080, help="viewer port (default 8080; 0 picks one)")
    view.add_argument("--no-browser", action="store_true", help="do not open a browser")
    view.add_argument(
        "--aws-endpoint-url",
        default=None,
        help="S3 endpoint for source images, and the only host annotated images are fetched from (default: "
        "$AWS_ENDPOINT_URL; with a loopback API and no variable set, the local stack's http://127.0.0.1:4566)",
    )
    view.set_defaults(func=_view)

    down = sub.add_parser(
        "down", help="stop a stack left running (a hung or killed `s3kp up`/`demo`) by its recorded PIDs"
    )
    down.add_argument(
        "--pid", type=int, default=None, help="only the stack whose `s3kp` process has this PID"
    )
    down.set_defaults(func=_down)

    _add_events_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Every subcommand runs inside the guard of `s3kp.console`: Ctrl-C/SIGTERM stop what it started
    (exit 130/143) and a closed stdout ends it quietly, as `cat` ends."""
    from s3kp.console import guarded

    args = build_parser().parse_args(argv)
    return guarded(lambda: int(args.func(args) or 0))


if __name__ == "__main__":
    sys.exit(main())
