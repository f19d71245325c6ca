"""The record of a running stack: which processes it started and which ports they hold.

`s3kp up`/`s3kp demo` write `<cache>/stacks/<pid>-<aws port>.json` while their stack runs and delete
it when it stops. A record left behind means the stack did not stop cleanly (killed with SIGKILL, or
hung): the next start uses it to say which process holds which port, and `s3kp down` stops that stack
by its recorded PIDs — never by process name. A PID is only trusted while the process's start time
(from /proc) is the recorded one, so a PID reused by an unrelated process is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from s3kp.paths import cache_dir

STOP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class RecordedProcess:
    name: str  # "s3kp up", "moto server", "inference server", "Lambda worker s3kp-local-ingest"
    pid: int
    start_ticks: int | None  # /proc/<pid>/stat start time; None where /proc does not exist
    ports: tuple[int, ...] = ()

    @classmethod
    def of(cls, name: str, pid: int, ports: tuple[int, ...] = ()) -> RecordedProcess:
        return cls(name, pid, process_start_ticks(pid), ports)

    def is_running(self) -> bool:
        """Still the process we started (same PID and start time), and not a zombie."""
        if sys.platform.startswith("linux"):
            try:
                stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return False
            return stat[0] != "Z" and int(stat[19]) == self.start_ticks
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    def signal(self, signum: int) -> None:
        if self.is_running():
            with contextlib.suppress(OSError):
                os.kill(self.pid, signum)


@dataclass
class StackRecord:
    owner: RecordedProcess  # the `s3kp` process; its ports are every port of the stack
    host: str
    started_at: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
    children: list[RecordedProcess] = field(default_factory=list)

    @property
    def path(self) -> Path:
        first_port = self.owner.ports[0] if self.owner.ports else 0  # one process may run several stacks
        return records_dir() / f"{self.owner.pid}-{first_port}.json"

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        temporary.replace(self.path)  # a reader never sees half a record

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)

    def running_processes(self) -> list[RecordedProcess]:
        return [process for process in [self.owner, *self.children] if process.is_running()]

    def holder_of(self, port: int) -> RecordedProcess | None:
        """The recorded process serving `port`: the child that listens on it, else the owner."""
        for process in self.children:
            if port in process.ports and process.is_running():
                return process
        return self.owner if port in self.owner.ports and self.owner.is_running() else None

    def describe(self) -> str:
        state = "running" if self.owner.is_running() else "killed or crashed, not cleaned up"
        return f"`{self.owner.name}` pid {self.owner.pid}, started {self.started_at} ({state})"

    @classmethod
    def load(cls, path: Path) -> StackRecord | None:
        try:
            data = json.loads(path.read_text())
            return cls(
                owner=_process(data["owner"]),
                host=data["host"],
                started_at=data["started_at"],
                children=[_process(child) for child in data["children"]],
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None  # unreadable or from another version: ignored, never acted upon


def _process(data: dict[str, object]) -> RecordedProcess:
    ports = data.get("ports") or []
    assert isinstance(ports, list)
    start = data["start_ticks"]
    return RecordedProcess(
        str(data["name"]), int(str(data["pid"])), None if start is None else int(str(start)), tuple(ports)
    )


def records_dir() -> Path:
    return cache_dir() / "stacks"


def recorded_stacks() -> list[StackRecord]:
    """Every readable record of a stack with a process still running (dead ones are discarded)."""
    return _sort_records()[0]


def discard_dead_records() -> list[StackRecord]:
    """Delete the records none of whose processes runs any more (their stack was killed, and its
    children died with it); return them."""
    return _sort_records()[1]


def _sort_records() -> tuple[list[StackRecord], list[StackRecord]]:
    running, dead = [], []
    for path in sorted(records_dir().glob("*.json")):
        record = StackRecord.load(path)
        if record is None:
            continue
        if record.running_processes():
            running.append(record)
        else:
            record.delete()
            dead.append(record)
    return running, dead


def stop_stack(record: StackRecord, timeout: float = STOP_TIMEOUT_SECONDS) -> list[RecordedProcess]:
    """Stop a recorded stack by its PIDs: SIGTERM to its `s3kp` process (which stops its children in
    order) or, if that is gone, to the children; SIGKILL to whatever is left after `timeout`.
    Returns the processes that had to be killed."""
    targets = [record.owner] if record.owner.is_running() else record.children
    for process in targets:
        process.signal(signal.SIGTERM)
        process.signal(signal.SIGCONT)  # a stopped (Ctrl-Z) process only acts on SIGTERM once continued
    deadline = time.monotonic() + timeout
    while record.running_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = record.running_processes()
    for process in killed:
        process.signal(signal.SIGKILL)
    record.delete()
    return killed


def process_start_ticks(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None
