"""Command-line manners every `s3kp` subcommand inherits, and the output helper they share.

`guarded(command)` runs a subcommand (`s3kp.cli.main` wraps every one in it), so a subcommand gets these
for free:

- **Ctrl-C / SIGTERM** raise `Stopped` in the main thread, wherever it is (printing, waiting, sleeping),
  so its `finally`/`with` blocks stop what it started; the exit status is then 130 (SIGINT) or 143
  (SIGTERM). A second signal, or clean-up still running after `STOP_GRACE_SECONDS`, kills every
  process the command started (SIGKILL, read from /proc) and exits at once.
- **A reader that goes away** (`s3kp demo | head -3`): the first write to the closed stdout or stderr,
  from any thread, points that stream at /dev/null (so clean-up can keep printing) and raises `Stopped`
  in the main thread like a signal; once clean-up is done the process ends by SIGPIPE, as `cat` does:
  no traceback, status 141 in a shell.

A subcommand only has to keep its clean-up in `finally`/`with` blocks, wait with timeouts (or
`wait_forever()`) rather than in one endless blocking call, and write its clean-up messages
*before* or around the clean-up, never as the only statement between the error and the clean-up (see
`s3kp.local.demo.run_demo`). For its output it uses `Output` (below): a table or a live progress line when a
person watches (the stream is a TTY), plain tab-separated lines when piped.

Why our own code rather than a library: none of the CLI frameworks covers closed pipes from any thread
plus a bounded, process-tree-wide stop; the pieces are small and Linux-first (/proc), with plain fallbacks.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any, TextIO, cast

# Exit statuses of every subcommand (documented in docs/local-stack.md and the README).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # argparse's
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
EXIT_PIPE_CLOSED = 128 + signal.SIGPIPE  # 141: what a shell reports for a process killed by SIGPIPE
STOP_GRACE_SECONDS = 6.0


class Stopped(KeyboardInterrupt):
    """The command must stop: a signal arrived (`signum`) or its reader went away (`signal.SIGPIPE`).

    A KeyboardInterrupt, so code that already cleans up on Ctrl-C does the same here."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Guard:
    """The state of one guarded command: signal handlers, wrapped streams, the stop watchdog."""

    def __init__(self) -> None:
        self.stopping: int | None = None  # the signal that started the stop
        self.pipe_closed = False
        self._pending: int | None = None  # a stop requested by another thread, delivered as SIGINT
        self._previous: dict[int, Any] = {}
        self._done = threading.Event()  # the command returned: the watchdog stands down
        self._streams: list[tuple[str, TextIO]] = []

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread (e.g. a command run in a test)
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._on_signal)
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if isinstance(stream, _PipeAwareStream) or not _has_fd(stream):
                continue
            self._streams.append((name, stream))
            setattr(sys, name, cast(TextIO, _PipeAwareStream(stream, self)))

    def uninstall(self) -> bool:
        """Restore the handlers and streams and stop the watchdog; whether there was anything to restore."""
        self._done.set()
        installed = bool(self._previous)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        for name, stream in self._streams:
            setattr(sys, name, stream)
        self._streams.clear()
        return installed

    def exit_status(self, signum: int) -> int:
        return 128 + signum

    # -------------------------------------------------------------- stop requests
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        pending, self._pending = self._pending, None
        self.request_stop(pending if pending is not None and signum == signal.SIGINT else signum)

    def request_stop(self, signum: int) -> None:
        """In the main thread: start the stop (raise `Stopped`), or force it if one is under way."""
        if self.stopping is not None:
            if signum == signal.SIGPIPE:
                return  # clean-up printing into the closed pipe: it goes to /dev/null, keep cleaning up
            _kill_descendants()
            _write_stderr(f"s3kp: stopped at once ({signal.Signals(signum).name} during clean-up)\n")
            os._exit(self.exit_status(self.stopping))
        self.stopping = signum
        threading.Thread(target=self._watchdog, name="s3kp-stop-watchdog", daemon=True).start()
        raise Stopped(signum)

    def reader_gone(self) -> None:
        """A write found its pipe closed (the stream is /dev/null now): stop, from whichever thread."""
        first = not self.pipe_closed
        self.pipe_closed = True
        if threading.current_thread() is threading.main_thread():
            if first and self.stopping is None:
                self.request_stop(signal.SIGPIPE)
            return
        if first and self.stopping is None and self._previous:
            # Wake the main thread wherever it blocks (a real signal interrupts its wait); the handler
            # turns this SIGINT back into a closed pipe.
            self._pending = signal.SIGPIPE
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    def _watchdog(self) -> None:
        if self._done.wait(STOP_GRACE_SECONDS):
            return
        _write_stderr(f"s3kp: clean-up took over {STOP_GRACE_SECONDS:.0f} s: killing what is left\n")
        _kill_descendants()
        status = self.exit_status(self.stopping or signal.SIGTERM)
        if self.stopping == signal.SIGPIPE:
            _die_of_sigpipe()
        os._exit(status)


class _PipeAwareStream:
    """A text stream whose writes never raise for a closed pipe: it reports it and goes to /dev/null."""

    def __init__(self, stream: TextIO, guard: _Guard) -> None:
        self._stream = stream
        self._guard = guard

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as error:
            self._closed_or_raise(error)
            return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as error:
            self._closed_or_raise(error)

    def _closed_or_raise(self, error: OSError) -> None:
        if error.errno != errno.EPIPE:
            raise error
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)
        with contextlib.suppress(OSError):
            self._stream.flush()  # what was buffered for the pipe now goes to /dev/null
        self._guard.reader_gone()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guarded(command: Callable[[], int]) -> int:
    """Run `command` with the manners above; its exit status, or the stop's (the pipe's ends the process)."""
    guard = _Guard()
    guard.install()
    try:
        status = command()
    except Stopped as stop:
        status = guard.exit_status(stop.signum)
    except KeyboardInterrupt:  # the guard was not installed (not the main thread)
        status = EXIT_INTERRUPTED
    except BrokenPipeError:  # a write that bypassed the wrapped streams (e.g. sys.stdout.buffer)
        guard.pipe_closed = True
        status = EXIT_PIPE_CLOSED
    finally:
        installed = guard.uninstall()
    if guard.pipe_closed and installed:
        _die_of_sigpipe()  # after the clean-up above: the status of a closed pipe, as `cat` has it
    return status


def wait_forever(poll_seconds: float = 0.2) -> None:
    """Block the main thread until a signal (or a closed pipe) raises `Stopped`.

    Not `threading.Event().wait()`: a signal that the kernel hands to another thread (any thread may
    take a process-directed signal, e.g. after SIGCONT) does not wake a lock wait, and Python runs
    handlers only in the main thread; a sleep returns regularly and lets the handler run."""
    while True:
        time.sleep(poll_seconds)


# ---------------------------------------------------------------------- output helper
class Output:
    """How a subcommand prints results and progress, depending on who reads.

        out = Output()                       # results and progress on stdout (`progress=sys.stderr`
                                             # keeps progress out of data piped from stdout)
        out.line("uploaded 12 files")        # always a plain line
        out.progress("results", 3, 12)       # TTY: one line rewritten in place; piped: a line per change
        out.done_progress()
        out.table(["image", "status"], rows, numeric={2})  # TTY: aligned columns; piped: tab-separated

    Whether a person watches is decided once per stream (`interactive` overrides both, e.g. for a
    `--plain` flag): tables follow the data stream, live progress its own stream. Data
    meant for programs should be offered as `--json` by the subcommand, not parsed from these lines.
    """

    def __init__(
        self, stream: IO[str] | None = None, progress: IO[str] | None = None, interactive: bool | None = None
    ) -> None:
        self._stream = stream
        self._progress_stream = progress
        self.interactive = self.stream.isatty() if interactive is None else interactive
        progress_stream = self.progress_stream
        self.live_progress = progress_stream.isatty() if interactive is None else interactive
        self._live = False
        self._last_progress: str | None = None

    @property
    def stream(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stdout  # sys.stdout as the guard wraps it

    @property
    def progress_stream(self) -> IO[str]:
        return self._progress_stream if self._progress_stream is not None else self.stream

    def line(self, text: str = "") -> None:
        self.done_progress()
        print(text, file=self.stream, flush=True)

    def progress(self, what: str, done: int, total: int | None = None) -> None:
        text = f"  {what} {done}/{total}" if total is not None else f"  {what} {done}"
        if text == self._last_progress:
            return
        self._last_progress = text
        stream = self.progress_stream
        if self.live_progress:
            print(f"\r{text}", end="", file=stream, flush=True)
            self._live = True
        else:
            print(text, file=stream, flush=True)

    def done_progress(self) -> None:
        if self._live:
            print(file=self.progress_stream, flush=True)
            self._live = False
        self._last_progress = None

    def table(
        self, header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()
    ) -> None:
        self.done_progress()
        print(
            format_table(header, list(rows), numeric, aligned=self.interactive), file=self.stream, flush=True
        )


def format_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Iterable[int] = (), *, aligned: bool = True
) -> str:
    """Aligned columns under a rule (for people), or header and rows tab-separated (for `cut`, `awk`)."""
    if not aligned:
        return "\n".join("\t".join(cells) for cells in [header, *rows])
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = set(numeric)

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


# ---------------------------------------------------------------------- process tree
def descendants(pid: int | None = None) -> list[int]:
    """Every live process below `pid` (default: this one), children of every thread, read from /proc."""
    found: list[int] = []
    pending = [os.getpid() if pid is None else pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
            for child in children:
                if child not in found:
                    found.append(child)
                    pending.append(child)
    return found


def _kill_descendants() -> None:
    for pid in descendants():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _die_of_sigpipe() -> None:
    """End the process the way `cat` ends when its reader goes away: killed by SIGPIPE."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    os._exit(EXIT_PIPE_CLOSED)  # not reached where SIGPIPE exists


def _write_stderr(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, text.encode())


def _has_fd(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True
