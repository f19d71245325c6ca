"""One lock around moto's SQS message lists, so concurrent receives lose nothing (moto 5.2.5).

moto's `SQSBackend.receive_message` picks messages from `queue._messages` and, after its loop, moves
those at `maxReceiveCount` to the dead-letter queue with `queue._messages.remove(message)`, all without
a lock. Two receives served at once by the threaded server can both pick the same message for the DLQ:
the second `remove` raises ValueError, the request fails with a 500, and the messages that call had
already marked received go to nobody until their visibility timeout. `Queue.delete_message` also
rebuilds the list while a send may append to the old one.

`install()` serialises what reads and rewrites those lists (receive, delete, change visibility, send,
purge) on one re-entrant lock. A long poll does not hold it while it waits: each pass of the receive
runs under the lock without waiting, and the wait for new messages happens between passes, as moto's
own loop does. Installed by our AWS server (`aws_server`) before it serves; docs/local-stack.md has
the upstream-style note.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.core.utils import unix_time
from moto.sqs.models import Queue, SQSBackend

_LOCK = threading.RLock()
_INSTALLED = "_s3kp_locked"


def install() -> None:
    """Patch moto's SQS classes in this process (idempotent)."""
    if getattr(SQSBackend, _INSTALLED, False):
        return
    for owner, name in (
        (SQSBackend, "change_message_visibility"),
        (SQSBackend, "purge_queue"),
        (Queue, "add_message"),
        (Queue, "delete_message"),
    ):
        setattr(owner, name, _locked(getattr(owner, name)))
    SQSBackend.receive_message = _receive_in_locked_passes(SQSBackend.receive_message)  # type: ignore[method-assign]
    setattr(SQSBackend, _INSTALLED, True)


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    return locked


def _receive_in_locked_passes(receive: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    @functools.wraps(receive)
    def receive_message(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> list[Any]:
        polling_end = unix_time() + wait_seconds_timeout
        while True:
            with _LOCK:  # one pass of moto's loop (a zero wait makes it a single pass)
                result = receive(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            if result or not wait_seconds_timeout or unix_time() > polling_end:
                return result
            self.get_queue(queue_name).wait_for_messages(1)

    return receive_message
