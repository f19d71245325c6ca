"""`s3kp up` / `s3kp demo` used with a shell's habits: a pipe closed early, a signal mid-run, a second
start while the first still runs, a stack left behind by a killed run.

Each test runs the real command as a subprocess on free loopback ports, with its own cache directory
(where the stack records its PIDs) and a marker variable in its environment, so "nothing left behind"
is checked on every process the run started: each one inherits the marker.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from s3kp.local.ports import port_is_free
from s3kp.paths import model_dir
from tests.conftest import ROOT, free_port

S3KP = [sys.executable, "-m", "s3kp.cli"]
STOP_SECONDS = 15.0  # the guard kills what is left after 6 s; a loaded 2-core machine gets slack
START_SECONDS = 240.0


@dataclass
class Run:
    """One `s3kp` command started by a test."""

    process: subprocess.Popen[str]
    ports: dict[str, int]
    marker: str
    env: dict[str, str]

    def read_until(self, pattern: str, timeout: float = START_SECONDS) -> list[str]:
        """Lines printed up to the first one matching `pattern` (stdout and stderr are merged)."""
        assert self.process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if re.search(pattern, line):
                return lines
        raise AssertionError(f"never printed {pattern!r}; printed:\n{''.join(lines)}")

    def port_options(self) -> list[str]:
        return port_options(self.ports)

    def left_behind(self, grace: float = 5.0) -> list[str]:
        return left_behind(self.marker, self.ports, grace)


def port_options(ports: dict[str, int]) -> list[str]:
    return [option for name, port in ports.items() for option in (f"--{name}-port", str(port))]


def left_behind(marker: str, ports: dict[str, int], grace: float = 5.0) -> list[str]:
    """Processes carrying the run's marker, and busy ports, still there after `grace` seconds."""
    deadline = time.monotonic() + grace
    while True:
        left = [f"pid {pid}: {command}" for pid, command in marked_processes(marker)]
        left += [
            f"port {port} ({name})" for name, port in ports.items() if not port_is_free("127.0.0.1", port)
        ]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def marked_processes(marker: str) -> list[tuple[int, str]]:
    """Live processes whose environment holds `marker` (this user's; zombies excluded)."""
    found = []
    needle = f"S3KP_TEST_RUN={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if state != "Z":
            found.append((int(entry.name), command[:120]))
    return found


@pytest.fixture
def environment(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The commands' environment; whatever still carries its marker afterwards is killed."""
    marker = uuid.uuid4().hex
    yield os.environ | {
        "S3KP_TEST_RUN": marker,
        "S3KP_CACHE_DIR": str(tmp_path / "cache"),  # the stack records of this test only
        "S3KP_MODEL_DIR": str(model_dir()),
        "PYTHONUNBUFFERED": "1",
    }
    for pid, _ in marked_processes(marker):  # a failed test must not leave its stack running
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def runs(tmp_path: Path, environment: dict[str, str]) -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:  # a failed test must not leave its stack running
        if run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)
            run.process.wait()


def start(
    runs: list[Run], environment: dict[str, str], tmp_path: Path, command: str, *extra: str,
    ports: dict[str, int] | None = None,
) -> Run:  # fmt: skip
    ports = ports or {"aws": free_port(), "inference": free_port(), "api": free_port()}
    process = subprocess.Popen(
        [*S3KP, command, *port_options(ports), "--log-dir", str(tmp_path / "logs"), *extra],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # like a shell job: a signal to its group reaches it, not pytest
    )  # fmt: skip
    run = Run(process, ports, environment["S3KP_TEST_RUN"], environment)
    runs.append(run)
    return run


def s3kp(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*S3KP, *arguments], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_demo_piped_into_head_exits_quietly_as_cat_does_and_leaves_nothing_behind(
    runs: list[Run], environment: dict[str, str], tmp_path: Path
) -> None:
    """GIVEN `s3kp demo | head -3` WHEN head exits after three lines THEN the demo stops its stack,
    prints no traceback and ends as `cat` ends on a closed pipe (SIGPIPE, 141 in a shell)."""
    ports = {"aws": free_port(), "inference": free_port(), "api": free_port()}
    options = " ".join(port_options(ports))
    completed = subprocess.run(
        ["bash", "-c", f"{' '.join(S3KP)} demo {options} --log-dir {tmp_path}/logs 2>{tmp_path}/stderr "
         "| head -3; echo \"status ${PIPESTATUS[0]}\""],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = completed.stdout.splitlines()
    assert len(lines) == 4, completed.stdout
    assert lines[0] == "s3kp demo: starting the offline stack"
    assert lines[-1] == "status 141"
    stderr = (tmp_path / "stderr").read_text()
    assert "Traceback" not in stderr, stderr
    assert "BrokenPipeError" not in stderr, stderr
    assert left_behind(environment["S3KP_TEST_RUN"], ports) == []


@pytest.mark.slow
def test_ctrl_c_while_the_demo_waits_for_results_stops_the_whole_stack_within_seconds(
    runs: list[Run], environment: dict[str, str], tmp_path: Path
) -> None:
    run = start(runs, environment, tmp_path, "demo")
    run.read_until(r"^Uploading ")
    os.killpg(run.process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole job
    started = time.monotonic()
    output, _ = run.process.communicate(timeout=STOP_SECONDS)
    assert run.process.returncode == 130, output
    assert time.monotonic() - started < STOP_SECONDS
    assert "Traceback" not in output, output
    assert run.left_behind() == []


@pytest.mark.slow
def test_sigterm_while_the_stack_starts_stops_everything_started_so_far(
    runs: list[Run], environment: dict[str, str], tmp_path: Path
) -> None:
    """GIVEN `s3kp up` whose inference server is still loading WHEN it gets SIGTERM (`kill PID`, only the
    main process) THEN it stops moto, the workers and the inference server, and exits 143."""
    run = start(runs, environment, tmp_path, "up")
    run.read_until(r"ok  Lambda workers")
    os.kill(run.process.pid, signal.SIGTERM)
    output, _ = run.process.communicate(timeout=STOP_SECONDS)
    assert run.process.returncode == 143, output
    assert "Traceback" not in output, output
    assert run.left_behind() == []
    assert list((tmp_path / "cache" / "stacks").glob("*.json")) == [], "the stack record is removed"


@pytest.mark.slow
def test_a_second_ctrl_c_during_the_clean_up_stops_everything_at_once(
    runs: list[Run], environment: dict[str, str], tmp_path: Path
) -> None:
    external = ["--inference-url", f"http://127.0.0.1:{free_port()}", "--api-key", "k"]
    run = start(runs, environment, tmp_path, "up", *external)
    run.read_until(r"^Ready\.")
    os.killpg(run.process.pid, signal.SIGINT)
    run.read_until(r"s3kp up: stopping", timeout=STOP_SECONDS)
    os.killpg(run.process.pid, signal.SIGINT)
    output, _ = run.process.communicate(timeout=STOP_SECONDS)
    assert run.process.returncode == 130, output
    assert run.left_behind() == []


@pytest.mark.slow
def test_a_second_start_names_the_running_stack_and_down_stops_a_hung_one_by_its_pids(
    runs: list[Run], environment: dict[str, str], tmp_path: Path
) -> None:
    """GIVEN a running `s3kp up` WHEN a second one starts on the same ports THEN it fails at once naming,
    per port, the process of the first stack holding it and how to stop it; AND WHEN the first hangs
    (SIGSTOP) `s3kp down` stops it by its recorded PIDs."""
    external = ["--inference-url", f"http://127.0.0.1:{free_port()}", "--api-key", "k"]  # no model loading
    first = start(runs, environment, tmp_path, "up", *external)
    first.read_until(r"^Ready\.")
    ports = first.ports

    second = s3kp(environment, "up", *first.port_options(), *external, "--log-dir", str(tmp_path / "logs2"))
    assert second.returncode == 1
    assert "Traceback" not in second.stderr
    pid = first.process.pid
    assert re.search(
        rf"port {ports['aws']} \(AWS endpoint\) already in use on 127\.0\.0\.1: held by the moto server "
        rf"\(pid \d+\) of `s3kp up` pid {pid}, started .* \(running\)",
        second.stderr,
    ), second.stderr
    assert re.search(
        rf"port {ports['api']} \(HTTP API\) already in use .* `s3kp up` pid {pid}", second.stderr
    )
    assert "`s3kp down`" in second.stderr
    assert "--aws-port" in second.stderr

    os.kill(pid, signal.SIGSTOP)  # a hung stack: it holds the ports and reacts to nothing but SIGKILL
    down = s3kp(environment, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"stopping `s3kp up` pid {pid}" in down.stdout
    assert first.process.wait(STOP_SECONDS) == 143  # it was continued and stopped itself cleanly
    assert first.left_behind() == []
    assert "no running stack" in s3kp(environment, "down").stdout


@pytest.mark.slow
def test_a_stack_whose_s3kp_process_was_killed_leaves_nothing_and_the_next_start_succeeds(
    runs: list[Run], environment: dict[str, str], tmp_path: Path
) -> None:
    """GIVEN `s3kp up` WHEN its process is SIGKILLed (no clean-up runs) THEN its children exit by
    themselves (the servers by PR_SET_PDEATHSIG, the Lambda workers by watching their parent), the
    ports are free again and the stale record is discarded by the next command."""
    external = ["--inference-url", f"http://127.0.0.1:{free_port()}", "--api-key", "k"]
    first = start(runs, environment, tmp_path, "up", *external)
    first.read_until(r"^Ready\.")
    from s3kp.local.stack_record import StackRecord

    records = list((tmp_path / "cache" / "stacks").glob("*.json"))
    assert len(records) == 1
    record = StackRecord.load(records[0])
    assert record is not None
    assert record.owner.pid == first.process.pid
    assert {"moto server"} <= {child.name for child in record.children}
    assert len(record.children) >= 3, "moto and the Lambda workers are recorded"

    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    assert first.left_behind(grace=5.0) == []
    again = start(runs, environment, tmp_path, "up", *external, ports=first.ports)
    printed = "".join(again.read_until(r"^Ready\."))
    assert (
        f"discarded the record of a stack that did not stop cleanly: `s3kp up` pid {first.process.pid}"
        in printed
    )
    assert not records[0].exists(), "a record of processes that are all gone is discarded"
    os.kill(again.process.pid, signal.SIGTERM)
    assert again.process.wait(STOP_SECONDS) == 143
    assert again.left_behind() == []


def test_down_stops_the_leftovers_of_a_killed_stack_by_pid_and_never_a_reused_pid(
    environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GIVEN a record whose `s3kp` process is gone but whose child still runs (a platform without
    PR_SET_PDEATHSIG), and a recorded PID now used by another process WHEN `s3kp down` runs THEN it stops
    the child by its PID and leaves the other process alone (its start time differs from the record)."""
    from s3kp.local.stack_record import RecordedProcess, StackRecord

    leftover = subprocess.Popen(["sleep", "60"], env=environment)
    bystander = subprocess.Popen(["sleep", "60"], env=environment)
    monkeypatch.setenv("S3KP_CACHE_DIR", environment["S3KP_CACHE_DIR"])  # where `s3kp down` looks
    try:
        record = StackRecord(
            owner=RecordedProcess("s3kp up", 2**22 + 1, 1, (free_port(),)),  # above pid_max: never running
            host="127.0.0.1",
            children=[
                RecordedProcess.of("moto server", leftover.pid, (free_port(),)),
                RecordedProcess("inference server", bystander.pid, 1, ()),  # PID reused since: start differs
            ],
        )
        record.save()
        down = s3kp(environment, "down")
        assert down.returncode == 0, down.stderr
        assert f"moto server {leftover.pid}" in down.stdout
        assert leftover.wait(10) == -signal.SIGTERM
        assert bystander.poll() is None, "a PID whose start time does not match is never signalled"
        assert not record.path.exists()
    finally:
        for process in (leftover, bystander):
            process.kill()
            process.wait()
