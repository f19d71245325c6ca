"""`s3kp export`: page through the results API and write one file, atomically.

Listing pages carry no predictions, so each result that has detections is read again in full
(`GET /results/{id}`); those reads run in a small thread pool over a bounded window, in listing order,
so the file is newest first and memory stays flat however many results there are. The file is written
as a temporary sibling and renamed into place at the end: an interrupted export leaves the previous
file (if any) untouched and no partial one behind.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from s3kp.export.formats import (
    DEFAULT_MAX_KEYPOINTS,
    CocoWriter,
    CsvWriter,
    ExportCounts,
    JsonlWriter,
    Writer,
)
from s3kp.results_api import PAGE_LIMIT, ApiError, InsecureTokenError, ResultsApi

DEFAULT_WORKERS = 8
WINDOW_PER_WORKER = 4  # details in flight or waiting to be written, per worker


@dataclass(frozen=True)
class ExportOptions:
    format: str  # coco | csv | jsonl
    output: str  # a path, or "-" for stdout
    filters: dict[str, str] = field(default_factory=dict)
    workers: int = DEFAULT_WORKERS
    visibility_threshold: float = 0.5
    max_keypoints: int = DEFAULT_MAX_KEYPOINTS


@dataclass
class ExportReport:
    output: str
    format: str
    seconds: float
    counts: ExportCounts

    @property
    def rate(self) -> float:
        return self.counts.results / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "format": self.format,
            "seconds": round(self.seconds, 3),
            "results_per_second": round(self.rate, 1),
            **asdict(self.counts),
        }

    def line(self) -> str:
        counts = self.counts
        skipped = ", ".join(f"{n} {status}" for status, n in sorted(counts.skipped_statuses.items()))
        return (
            f"wrote {counts.written} results ({counts.detections} detections, {counts.keypoints} keypoints) "
            f"to {self.output} as {self.format} in {self.seconds:.1f} s ({self.rate:.0f} results/s)"
            + (f"; left out (no predictions): {skipped}" if skipped else "")
            + (
                f"; {counts.refused_keypoints} keypoints left out (class_id outside 0..max-keypoints - 1)"
                if counts.refused_keypoints
                else ""
            )
        )


def effective_filters(options: ExportOptions) -> dict[str, str]:
    """COCO and CSV hold predictions only: without a status filter they ask for succeeded results."""
    filters = {name: value for name, value in options.filters.items() if value}
    if options.format in ("coco", "csv"):
        filters.setdefault("status", "succeeded")
    return filters


def export(
    api: ResultsApi, options: ExportOptions, progress: Callable[[int], None] | None = None
) -> ExportReport:
    started = time.perf_counter()
    summaries = _Prefetched(api.iter_results(effective_filters(options)), ahead=2 * PAGE_LIMIT)
    needs_detail = _needs_detail(options.format)
    results = _counted(ordered_details(api, summaries, options.workers, needs_detail), progress)
    try:
        if options.output == "-":
            counts = _write(options, sys.stdout, results, spool_dir=None)
        else:
            counts = _write_atomically(options, Path(options.output), results)
    finally:
        results.close()  # stops the detail reads and the listing thread at once, even on failure
    return ExportReport(options.output, options.format, time.perf_counter() - started, counts)


def _needs_detail(format_name: str) -> Callable[[dict[str, Any]], bool]:
    if format_name == "jsonl":  # the API's own (detail) shape for every result
        return lambda summary: True
    # COCO and CSV take predictions from succeeded results only; an image without detections has none (a
    # video's frames are images of their own, detections or not).
    return lambda summary: (
        summary.get("status") == "succeeded"
        and (bool(summary.get("detections")) or summary.get("media_type") == "video")
    )


def _with_frames(api: ResultsApi, result_id: str) -> dict[str, Any]:
    """The result's detail; a video's with `frames`, an iterator its writer reads page by page."""
    detail = api.detail(result_id)
    video = detail.get("video") if isinstance(detail.get("video"), dict) else None
    if detail.get("media_type") == "video" and video is not None and video.get("frames_ref"):
        detail["frames"] = api.iter_frames(result_id)
    return detail


class _Prefetched:
    """Iterate `source` in a background thread, at most `ahead` items ahead of the consumer: the next
    listing page is read while the details of this one are (the two share no server-side work)."""

    _END = object()

    def __init__(self, source: Iterable[dict[str, Any]], ahead: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=ahead)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._pump, args=(source,), name="export-list", daemon=True)
        self._thread.start()

    def _pump(self, source: Iterable[dict[str, Any]]) -> None:
        try:
            for item in source:
                if not self._put(item):
                    return
            self._put(self._END)
        except BaseException as error:  # handed to the consumer, raised there
            self._put(error)

    def _put(self, item: Any) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            while True:
                item = self._queue.get()
                if item is self._END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._stopped.set()
            self._thread.join(timeout=30)


def ordered_details(
    api: ResultsApi,
    summaries: Iterable[dict[str, Any]],
    workers: int,
    needs_detail: Callable[[dict[str, Any]], bool],
) -> Generator[dict[str, Any], None, None]:
    """Each summary's full result, in the summaries' order, at most `workers * 4` held at a time."""
    window: deque[Future[dict[str, Any]]] = deque()
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="export")
    try:
        for summary in summaries:
            if needs_detail(summary):
                window.append(pool.submit(_with_frames, api, summary["result_id"]))
            else:
                ready: Future[dict[str, Any]] = Future()
                ready.set_result(summary)
                window.append(ready)
            while len(window) >= max(1, workers) * WINDOW_PER_WORKER:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _counted(
    results: Generator[dict[str, Any], None, None], progress: Callable[[int], None] | None
) -> Generator[dict[str, Any], None, None]:
    try:
        for result in results:
            yield result
            if progress is not None:
                progress(1)
    finally:
        results.close()


def _writer(options: ExportOptions, out: IO[str], spool_dir: str | None) -> Writer:
    if options.format == "coco":
        return CocoWriter(
            out,
            visibility_threshold=options.visibility_threshold,
            spool_dir=spool_dir,
            max_keypoints=options.max_keypoints,
            warn=_Warnings(),
        )
    if options.format == "csv":
        return CsvWriter(out)
    if options.format == "jsonl":
        return JsonlWriter(out)
    raise ValueError(f"unknown format {options.format!r}")


class _Warnings:
    """Prints a writer's warnings on stderr, the first few only: one bad model answer can repeat in
    every result, and the closing line counts them all."""

    LIMIT = 10

    def __init__(self) -> None:
        self._printed = 0

    def __call__(self, message: str) -> None:
        self._printed += 1
        if self._printed <= self.LIMIT:
            print(f"s3kp export: warning: {message}", file=sys.stderr)
        elif self._printed == self.LIMIT + 1:
            print("s3kp export: warning: more of the same; the closing line counts them", file=sys.stderr)


def _write(
    options: ExportOptions, out: IO[str], results: Iterable[dict[str, Any]], spool_dir: str | None
) -> ExportCounts:
    writer = _writer(options, out, spool_dir)
    try:
        for result in results:
            writer.write(result)
        writer.finish()
    finally:
        if isinstance(writer, CocoWriter):
            writer.abort()  # closes (and so deletes) the spool file if finish() did not
    return writer.counts


def _write_atomically(options: ExportOptions, path: Path, results: Iterable[dict[str, Any]]) -> ExportCounts:
    if path.is_dir():
        raise ApiError(f"{path} is a directory: -o takes a file name")
    if not path.parent.is_dir():
        raise ApiError(f"{path.parent} does not exist")
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            counts = _write(options, out, results, spool_dir=str(path.parent))
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        with suppress(FileNotFoundError):
            partial.unlink()
        raise
    return counts


def run_export(args: Any) -> int:
    """The CLI entry: arguments in, exit code out (0 ok, 1 failure, 2 a token over plain http)."""
    options = ExportOptions(
        format=args.format,
        output=args.output,
        filters={
            "status": args.status or "",
            "class": args.class_name or "",
            "prefix": args.prefix or "",
            "since": args.since or "",
            "until": args.until or "",
        },
        workers=args.workers,
        visibility_threshold=args.visibility_threshold,
        max_keypoints=args.max_keypoints or DEFAULT_MAX_KEYPOINTS,
    )
    try:
        api = ResultsApi(args.api_url, token=args.token, region=args.region)
    except InsecureTokenError as error:
        print(f"s3kp export: {error}", file=sys.stderr)
        return 2
    except (ApiError, ValueError) as error:
        print(f"s3kp export: {error}", file=sys.stderr)
        return 1
    bar = _progress_bar()
    try:
        report = export(api, options, progress=bar.update if bar is not None else None)
    except (ApiError, OSError) as error:
        # A file is written atomically (nothing of it exists yet); stdout may already have rows.
        note = "" if args.output == "-" else " (nothing written)"
        print(f"s3kp export: {error}{note}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.close()
        api.close()
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(report.line(), file=sys.stderr)
    return 0


def _progress_bar() -> Any:
    """A tqdm bar on a terminal; nothing when stderr is a pipe or a file (logs stay clean)."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(unit=" results", desc="exporting", file=sys.stderr, dynamic_ncols=True)
