"""`s3kp up` and `s3kp down`: the command side of the offline stack (the stack itself is `stack.py`).

`s3kp demo` (`demo.py`) shares the pieces every stack command needs: options from the command line, the
logging set-up and a stop that says what it does.
"""

from __future__ import annotations

import argparse
import logging
import sys

from s3kp.console import wait_forever
from s3kp.local.processes import ChildFailed
from s3kp.local.stack import LocalStack, StackError, StackOptions
from s3kp.local.stack_record import recorded_stacks, records_dir, stop_stack

PROGRAM = "s3kp up"


def options_from_args(args: argparse.Namespace) -> StackOptions:
    """The stack options the command line gave; options left unset keep the stack's defaults."""
    known = {name for name in StackOptions.__dataclass_fields__ if hasattr(args, name)}
    return StackOptions(**{name: getattr(args, name) for name in known if getattr(args, name) is not None})


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="  [%(name)s] %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_up(args: argparse.Namespace) -> int:
    """Start the stack and keep it until Ctrl-C/SIGTERM, which `s3kp.console` turns into an exception
    here (exit 130/143 after the stop)."""
    options = options_from_args(args)
    configure_logging(options.verbose)
    print(f"{PROGRAM}: starting the offline stack", flush=True)
    stack = LocalStack(options, program=PROGRAM)
    try:
        stack.start()
        print(stack.summary(), flush=True)
        wait_forever()  # until a signal (or a closed stdout) raises
    except (StackError, ChildFailed) as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        stop_with_message(stack, PROGRAM)
    return 0  # not reached: only a signal ends the wait


def stop_with_message(stack: LocalStack, program: str) -> None:
    """Stop the stack, saying so; the stop runs even if the saying fails or is interrupted."""
    try:
        print(f"{program}: stopping", flush=True)
    finally:
        stack.stop()
    print(f"{program}: stopped", flush=True)


def run_down(args: argparse.Namespace) -> int:
    """`s3kp down`: stop the stacks recorded by this checkout (or the one of `--pid`) by their PIDs."""
    stacks = [record for record in recorded_stacks() if args.pid in (None, record.owner.pid)]
    if not stacks:
        where = f" with pid {args.pid}" if args.pid is not None else ""
        print(f"s3kp down: no running stack{where} recorded in {records_dir()}", flush=True)
        return 0 if args.pid is None else 1
    for record in stacks:
        running = ", ".join(f"{process.name} {process.pid}" for process in record.running_processes())
        print(f"s3kp down: stopping {record.describe()}: {running}", flush=True)
        killed = stop_stack(record)
        if killed:
            names = ", ".join(f"{process.name} {process.pid}" for process in killed)
            print(f"s3kp down: killed (did not stop within the timeout): {names}", flush=True)
    print("s3kp down: stopped", flush=True)
    return 0
