"""Lambda workers: each function's handler runs in its own child process, like a Lambda sandbox.

Why a process per function rather than importing both handlers here: handlers read their settings from
the environment at import (cold start), the ingest and API functions need different environments
(`POWERTOOLS_SERVICE_NAME`, `AWS_LAMBDA_FUNCTION_NAME`, ...), and the shared Powertools logger is a
module-level singleton. A worker gets exactly its function's environment, imports the handler once and
then serves one invocation at a time, as a Lambda execution environment does. As in Lambda, a handler
that raises keeps its sandbox, while a timeout or a crash replaces it (the next invocation is a cold start).
The pipe costs well under a millisecond per invocation (see docs/local-stack.md).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from s3kp.local.lambda_runtime import LambdaContext

# Spawn, not fork: the parent has threads (HTTP server, pollers), and a clean interpreter is what a
# sandbox starts from.
_SPAWN = multiprocessing.get_context("spawn")
_START_TIMEOUT_SECONDS = 60.0
# How long past the function timeout we wait before declaring the sandbox dead (Lambda is strict; a
# little slack keeps a loaded 2-core machine from killing handlers that finished in time).
_TIMEOUT_GRACE_SECONDS = 2.0
_PARENT_CHECK_SECONDS = 0.5


class InvocationError(Exception):
    """The invocation failed as a whole (Lambda reports a function error; an SQS batch is retried)."""


class HandlerError(InvocationError):
    """The handler raised; the message carries its exception type and message."""


class InvocationTimeout(InvocationError):
    """The handler ran past the function timeout; the sandbox was replaced."""


class WorkerCrashed(InvocationError):
    """The worker process died (e.g. out of memory or a native crash); the sandbox was replaced."""


@dataclass(frozen=True)
class FunctionConfig:
    """One Lambda function as the template declares it: where its code is, its handler and settings."""

    name: str
    code_dir: Path
    handler: str  # "module.function", as in the template's `Handler`
    environment: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float = 60.0
    memory_mb: int = 1024


def lambda_environment(function: FunctionConfig, region: str, base: dict[str, str]) -> dict[str, str]:
    """The variables Lambda sets for every function, plus `base` (endpoint, credentials) and its own."""
    reserved = {
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
        "_HANDLER": function.handler,
        "LAMBDA_TASK_ROOT": str(function.code_dir),
        "TZ": ":UTC",
        # No X-Ray daemon locally: Powertools' Tracer would only log "segment not found" errors.
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    inherited = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")}
    return inherited | base | function.environment | reserved


class LambdaWorker:
    """One execution environment for one function; `invoke` is synchronous and not re-entrant."""

    def __init__(self, function: FunctionConfig, environment: dict[str, str], log_path: Path | None) -> None:
        self.function = function
        self._environment = environment
        self._log_path = log_path
        self._process: multiprocessing.process.BaseProcess | None = None
        self._connection: Connection | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.cold_starts = 0
        self.invocations = 0  # answered by the current sandbox (0: its first is cold, or none came yet)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def busy(self) -> bool:
        """An invocation is running (or the sandbox is starting)."""
        return self._lock.locked()

    def start(self) -> None:
        """Spawn the sandbox and import the handler (the cold start); raise if the import fails."""
        if self._closed:  # closed by a stop while this start was still queued
            raise WorkerCrashed(f"{self.function.name}: the worker was shut down")
        parent_end, child_end = _SPAWN.Pipe()
        process = _SPAWN.Process(
            target=_serve,
            args=(child_end, self.function, self._environment, self._log_path),
            name=f"lambda-{self.function.name}",
            daemon=True,
        )
        process.start()
        child_end.close()
        self._process, self._connection = process, parent_end
        self.cold_starts += 1
        self.invocations = 0
        if not parent_end.poll(_START_TIMEOUT_SECONDS):
            self.stop()
            raise WorkerCrashed(
                f"{self.function.name}: handler import did not finish in {_START_TIMEOUT_SECONDS} s"
            )
        try:
            status, detail = parent_end.recv()
        except EOFError:
            status, detail = "error", f"worker exited with code {process.exitcode}"
        if status != "ready":
            self.stop()
            raise WorkerCrashed(f"{self.function.name}: cannot import {self.function.handler}: {detail}")

    def invoke(self, event: dict[str, Any], context: LambdaContext) -> Any:
        """Run the handler on `event` with the remaining time of `context`; return its result."""
        with self._lock:
            if self._closed:
                raise WorkerCrashed(f"{self.function.name}: the worker was shut down")
            if self._process is not None and not self._process.is_alive():
                self.stop()  # died while idle (killed, out of memory): Lambda would use a new sandbox
            if self._connection is None:
                self.start()
            connection = self._connection  # `stop()` from another thread may clear the attribute
            assert connection is not None
            remaining = context.get_remaining_time_in_millis() / 1000
            try:
                connection.send((event, _context_fields(context)))
                if not connection.poll(remaining + _TIMEOUT_GRACE_SECONDS):
                    self.stop()
                    raise InvocationTimeout(
                        f"{self.function.name}: task timed out after {context.timeout_seconds:.2f} seconds"
                    )
                status, payload = connection.recv()
            except (EOFError, OSError, ValueError) as error:  # ValueError: the pipe was closed by stop()
                self.stop()
                raise WorkerCrashed(f"{self.function.name}: the worker process died ({error!r})") from None
            self.invocations += 1
            if status == "error":
                raise HandlerError(payload)
            return payload

    def close(self) -> None:
        """Terminate the sandbox for good: later invocations fail instead of starting a new one."""
        self._closed = True
        self.stop()

    def stop(self) -> None:
        """Terminate the sandbox (idempotent); the next `invoke` starts a new one."""
        process, connection = self._process, self._connection
        self._process = self._connection = None
        # The process first: its exit wakes an `invoke` waiting on the pipe (closing our end would not).
        if process is not None and process.is_alive():
            process.terminate()
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
        if connection is not None:
            connection.close()


class WorkerPool:
    """Several sandboxes of one function; each call takes an idle one, as Lambda scales out per request."""

    def __init__(self, workers: list[LambdaWorker]) -> None:
        if not workers:
            raise ValueError("a pool needs at least one worker")
        self.workers = workers
        self._idle: queue.SimpleQueue[LambdaWorker] = queue.SimpleQueue()
        for worker in workers:
            self._idle.put(worker)

    def invoke(self, event: dict[str, Any], context: LambdaContext) -> Any:
        worker = self._idle.get()
        try:
            return worker.invoke(event, context)
        finally:
            self._idle.put(worker)


def _context_fields(context: LambdaContext) -> dict[str, Any]:
    return {
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "timeout_seconds": context.get_remaining_time_in_millis() / 1000,
        "region": context.region,
        "account_id": context.account_id,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
    }


def _serve(
    connection: Connection, function: FunctionConfig, environment: dict[str, str], log_path: Path | None
) -> None:
    """The worker process: set the function's environment, import its handler, serve invocations."""
    # The stack stops its workers itself; a terminal Ctrl-C must not interrupt a handler mid-batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    if log_path is not None:
        _redirect_output(log_path)
    os.environ.clear()
    os.environ.update(environment)
    sys.path.insert(0, str(function.code_dir))
    try:
        handler = _import_handler(function.handler)
    except BaseException as error:  # report any import failure to the parent, then exit
        traceback.print_exc()
        connection.send(("error", _describe(error)))
        return
    connection.send(("ready", None))
    while True:
        try:
            event, context_fields = connection.recv()
        except EOFError:  # the parent went away
            return
        context = LambdaContext(**context_fields)
        try:
            result = handler(event, context)
        except Exception as error:
            traceback.print_exc()
            connection.send(("error", _describe(error)))
        else:
            connection.send(("ok", result))


def _exit_with_parent() -> None:
    """End this sandbox when the stack's process dies without stopping it (SIGKILL, a crash).

    Not PR_SET_PDEATHSIG (as the servers in processes.py use): it fires when the *thread* that started
    the process ends, and workers are started, and restarted, from short-lived threads. A handler busy
    in a batch does not read the pipe, so EOF alone would not tell it either."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _import_handler(spec: str) -> Any:
    import importlib

    module_name, _, attribute = spec.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _redirect_output(log_path: Path) -> None:
    """Send the handler's stdout and stderr (Powertools writes JSON to stdout) to the log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
