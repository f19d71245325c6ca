"""Lambda workers: a handler in its own process with its own environment, as a Lambda sandbox.

Stub handler modules are written to a temporary code directory, so these tests pin the worker's
behaviour (environment, cold start, errors, timeouts, crashes) without the real functions.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3kp.local.lambda_runtime import LambdaContext
from s3kp.local.workers import (
    FunctionConfig,
    HandlerError,
    InvocationTimeout,
    LambdaWorker,
    WorkerCrashed,
    lambda_environment,
)

STUB = """
import os, sys, time

IMPORTED_AT = time.time()
SETTING_AT_IMPORT = os.environ.get("GREETING")

def lambda_handler(event, context):
    if event.get("action") == "raise":
        raise ValueError("bad input")
    if event.get("action") == "sleep":
        time.sleep(event["seconds"])
    if event.get("action") == "crash":
        os._exit(3)
    print("a log line on stdout")
    return {
        "greeting": SETTING_AT_IMPORT,
        "function": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        "imported_at": IMPORTED_AT,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "parent_only": os.environ.get("S3KP_PARENT_ONLY"),
    }
"""


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    (tmp_path / "stub_handler.py").write_text(textwrap.dedent(STUB))
    (tmp_path / "broken_handler.py").write_text("import module_that_does_not_exist\n")
    return tmp_path


def make_worker(
    code_dir: Path, handler: str = "stub_handler.lambda_handler", timeout: float = 5.0
) -> LambdaWorker:
    function = FunctionConfig(
        name="stub-fn",
        code_dir=code_dir,
        handler=handler,
        environment={"GREETING": "hello"},
        timeout_seconds=timeout,
    )
    return LambdaWorker(function, lambda_environment(function, "us-east-1", {}), code_dir / "stub.log")


@pytest.fixture
def worker(code_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaWorker]:
    monkeypatch.setenv("S3KP_PARENT_ONLY", "leaks?")
    started = make_worker(code_dir)
    started.start()
    yield started
    started.stop()


def context(timeout: float = 5.0) -> LambdaContext:
    return LambdaContext(function_name="stub-fn", timeout_seconds=timeout)


def test_the_handler_sees_its_own_environment_and_a_lambda_context(
    worker: LambdaWorker, code_dir: Path
) -> None:
    """GIVEN a worker WHEN invoked THEN the handler read its function's environment at import, not ours,
    got the request id and remaining time, and its stdout went to the function's log file."""
    invocation = context(timeout=5.0)
    result = worker.invoke({}, invocation)

    assert result["greeting"] == "hello"
    assert result["function"] == "stub-fn"
    assert result["parent_only"] is None, "the parent's environment does not leak into the sandbox"
    assert result["request_id"] == invocation.aws_request_id
    assert 3_000 < result["remaining_ms"] <= 5_000
    assert "a log line on stdout" in (code_dir / "stub.log").read_text()


def test_a_warm_sandbox_keeps_its_module_state(worker: LambdaWorker) -> None:
    """GIVEN two invocations WHEN the handler did not fail THEN the module was imported once (warm start)."""
    first = worker.invoke({}, context())
    second = worker.invoke({}, context())
    assert first["imported_at"] == second["imported_at"]
    assert worker.cold_starts == 1


def test_a_raising_handler_is_a_handler_error_and_the_sandbox_survives(worker: LambdaWorker) -> None:
    with pytest.raises(HandlerError, match="ValueError: bad input"):
        worker.invoke({"action": "raise"}, context())
    assert worker.invoke({}, context())["greeting"] == "hello"
    assert worker.cold_starts == 1


def test_a_timeout_replaces_the_sandbox(worker: LambdaWorker) -> None:
    """GIVEN a handler sleeping past its timeout WHEN invoked THEN InvocationTimeout, and the next
    invocation is a cold start in a fresh process."""
    first_pid = worker.pid
    with pytest.raises(InvocationTimeout):
        worker.invoke({"action": "sleep", "seconds": 30}, context(timeout=0.5))
    assert worker.invoke({}, context())["greeting"] == "hello"
    assert worker.cold_starts == 2
    assert worker.pid != first_pid


def test_a_crashing_process_is_reported_and_replaced(worker: LambdaWorker) -> None:
    with pytest.raises(WorkerCrashed):
        worker.invoke({"action": "crash"}, context())
    assert worker.invoke({}, context())["greeting"] == "hello"


def test_a_sandbox_killed_while_idle_is_replaced_before_the_next_invocation(worker: LambdaWorker) -> None:
    """GIVEN the worker process killed between invocations (SIGKILL, out of memory) WHEN the next batch
    comes THEN it runs in a fresh sandbox, as in Lambda, instead of failing without running the handler
    (its messages would then wait out the queue's whole visibility timeout)."""
    worker.invoke({}, context())
    first_pid = worker.pid
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    time.sleep(0.5)

    assert worker.invoke({}, context())["greeting"] == "hello"
    assert worker.pid != first_pid
    assert worker.cold_starts == 2


def test_a_handler_that_cannot_be_imported_fails_at_start(code_dir: Path) -> None:
    broken = make_worker(code_dir, handler="broken_handler.lambda_handler")
    with pytest.raises(WorkerCrashed, match="module_that_does_not_exist"):
        broken.start()
    assert broken.pid is None


def test_a_closed_worker_refuses_to_start_again(worker: LambdaWorker) -> None:
    """GIVEN the stack shutting down WHEN a poller still invokes THEN no new sandbox is spawned."""
    worker.close()
    with pytest.raises(WorkerCrashed, match="shut down"):
        worker.invoke({}, context())
    assert worker.pid is None
