"""Child processes of the stack (moto server, inference server): started, health-checked, stopped.

Each child gets its own process group, so a terminal Ctrl-C reaches only `s3kp up`, which then stops
the children in order (runner first, AWS last). On Linux a child is also told to exit if `s3kp up`
itself dies without cleaning up (PR_SET_PDEATHSIG), so a `kill -9` leaves no orphan on the ports.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import requests

_PR_SET_PDEATHSIG = 1


class ChildFailed(RuntimeError):
    pass


def _die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork: the hook below only calls into it

    def hook() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return hook


class ChildProcess:
    """A named child process whose output goes to a log file."""

    def __init__(self, name: str, command: Sequence[str], log_path: Path, env: dict[str, str] | None = None):
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self.env = env
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            # preexec_fn is safe here: the stack starts its children before it starts any thread.
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                process_group=0,
                preexec_fn=_die_with_parent(),
            )

    def exit_code(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def wait_healthy(
        self, url: str, timeout: float, on_wait: Callable[[float], None] | None = None, interval: float = 0.1
    ) -> float:
        """Poll `url` until it answers 200; return the seconds waited. Calls `on_wait(elapsed)` each poll."""
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < timeout:
            code = self.exit_code()
            if code is not None:
                raise ChildFailed(f"{self.name} exited with code {code} while starting: see {self.log_path}")
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return elapsed
            except requests.RequestException:
                pass
            if on_wait is not None:
                on_wait(elapsed)
            time.sleep(interval)
        raise ChildFailed(
            f"{self.name} did not become healthy at {url} within {timeout:.0f} s: see {self.log_path}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
