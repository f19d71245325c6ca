"""`s3kp.console`: the entry-point guard's statuses and the output helper's two faces (TTY or piped).

The guard's behaviour on real pipes and signals, with a whole stack, is specified in
tests/integration/test_cli_manners.py; here it runs in-process on plain commands.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import time

from s3kp.console import EXIT_INTERRUPTED, EXIT_TERMINATED, Output, Stopped, format_table, guarded
from s3kp.local.ports import port_holders


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_command_ends_with_its_own_status_and_the_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert guarded(lambda: 3) == 3
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_while_a_command_sleeps_interrupts_it_and_runs_its_clean_up() -> None:
    cleaned: list[str] = []

    def command() -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            return 0
        finally:
            cleaned.append("stopped what it started")

    started = time.monotonic()
    assert guarded(command) == EXIT_TERMINATED
    assert time.monotonic() - started < 2
    assert cleaned == ["stopped what it started"]


def test_ctrl_c_is_130() -> None:
    def command() -> int:
        raise KeyboardInterrupt

    assert guarded(command) == EXIT_INTERRUPTED

    def stopped() -> int:
        raise Stopped(signal.SIGINT)

    assert guarded(stopped) == EXIT_INTERRUPTED


def test_a_table_is_aligned_for_a_person_and_tab_separated_for_a_pipe() -> None:
    header, rows = (
        ("image", "status", "ms"),
        [("astronaut.jpg", "succeeded", "812"), ("bad.jpg", "failed", "5")],
    )
    assert format_table(header, rows, numeric=[2]).splitlines() == [
        "image          status      ms",
        "-------------  ---------  ---",
        "astronaut.jpg  succeeded  812",
        "bad.jpg        failed       5",
    ]
    assert format_table(header, rows, aligned=False).splitlines() == [
        "image\tstatus\tms",
        "astronaut.jpg\tsucceeded\t812",
        "bad.jpg\tfailed\t5",
    ]


def test_progress_is_one_rewritten_line_on_a_terminal_and_a_line_per_change_when_piped() -> None:
    piped = io.StringIO()
    output = Output(piped)
    assert not output.interactive
    for done in (0, 1, 1, 2):
        output.progress("results", done, 2)
    output.line("done")
    assert piped.getvalue() == "  results 0/2\n  results 1/2\n  results 2/2\ndone\n"

    terminal = FakeTerminal()
    output = Output(terminal)
    assert output.interactive
    output.progress("results", 0, 2)
    output.progress("results", 2, 2)
    output.line("done")
    assert terminal.getvalue() == "\r  results 0/2\r  results 2/2\ndone\n"


def test_the_holder_of_a_listening_port_is_found() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert port_holders(listener.getsockname()[1]) == [os.getpid()]
