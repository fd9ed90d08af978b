"""Small reactor helpers of the consumer service: firing, sleeping, exiting."""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ...message import Message

__all__ = [
    "awaited",
    "channel_gone",
    "daemon_thread",
    "exit_process",
    "fire",
    "ignore_cancel",
    "sleep",
]


async def awaited(awaitable: Any) -> Any:
    """A coroutine (or any awaitable) as something ``ensureDeferred`` runs."""
    return await awaitable


def channel_gone(message: Message) -> bool:
    """The channel the message came on has closed: settling it now sends nothing."""
    channel = message.channel
    return channel is not None and not getattr(channel, "is_open", True)


def exit_process(status: int) -> None:
    """End the process with ``status`` once the reactor has shut down (twistd itself
    always exits 0 after a clean shutdown)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def ignore_cancel(failure: Failure) -> None:
    failure.trap(defer.CancelledError)  # type: ignore[no-untyped-call]


def fire(d: Deferred[None]) -> None:
    if not d.called:
        d.callback(None)


def daemon_thread(*args: Any, **kwargs: Any) -> Any:
    import threading

    thread = threading.Thread(*args, **kwargs)
    thread.daemon = True
    return thread


def sleep(reactor: Any, seconds: float) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, fire, d)
    return d
