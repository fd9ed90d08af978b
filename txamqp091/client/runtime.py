"""What an adapter provides to the shared client logic."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

if sys.version_info >= (3, 11):
    from operator import call as _call  # C: no Python frame of its own
else:  # pragma: no cover - Python 3.10

    def _call(fn: Callable[[Any], None], arg: Any, /) -> None:
        fn(arg)


__all__ = ["Runtime", "TimerHandle", "W", "for_delivery"]

#: The adapter's waiter type: ``Deferred[Any]`` or ``asyncio.Future[Any]``.
W = TypeVar("W")


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Runtime(Generic[W]):
    """The adapter's half of the client: waiters, time and the transport.

    Subclasses implement every method; the shared logic never touches a
    reactor, an event loop or a socket except through these.
    """

    # -- waiters -----------------------------------------------------------------

    def create_waiter(self, canceller: Callable[[], None] | None = None) -> W:
        """A new pending waiter; ``canceller`` runs if the user cancels it."""
        raise NotImplementedError

    def resolve(self, waiter: W, value: Any) -> None:
        """Complete ``waiter`` with ``value``; nothing if it is already done or cancelled."""
        raise NotImplementedError

    def reject(self, waiter: W, error: BaseException) -> None:
        """Fail ``waiter`` with ``error``; nothing if it is already done or cancelled."""
        raise NotImplementedError

    def is_done(self, waiter: W) -> bool:
        raise NotImplementedError

    def try_resolve(self, waiter: W, value: Any) -> bool:
        """:meth:`resolve` ``waiter`` unless it :meth:`is_done`; return whether it was
        resolved. One call instead of two for a delivery handed to a ``get()``;
        adapters implement it without calling the other two."""
        if self.is_done(waiter):
            return False
        self.resolve(waiter, value)
        return True

    def resolve_all(self, waiters: list[W], value: Any) -> None:
        """:meth:`resolve` each of ``waiters`` with ``value``, in order: the waiters of one
        publisher-confirm ack. Only for waiters that no one asks :meth:`is_done` about
        before they fire (an adapter may settle them after the read, as one batch)."""
        resolve = self.resolve
        for waiter in waiters:
            resolve(waiter, value)

    def waiter_factory(self) -> Callable[[], W]:
        """A callable of no arguments that makes what ``create_waiter()`` makes, for the
        per-message path (a publish in confirm mode): adapters return their waiter
        class or the loop's constructor, so no Python frame runs per waiter."""
        return self.create_waiter

    def succeeded(self, value: Any) -> W:
        waiter = self.create_waiter()
        self.resolve(waiter, value)
        return waiter

    def failed(self, error: BaseException) -> W:
        waiter = self.create_waiter()
        self.reject(waiter, error)
        return waiter

    def add_done(self, waiter: W, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once ``waiter`` is done, however it ended, without consuming it."""
        raise NotImplementedError

    def on_result(
        self,
        waiter: W,
        on_success: Callable[[Any], object],
        on_failure: Callable[[BaseException], object],
    ) -> None:
        """Take ``waiter``'s outcome: its failure counts as handled (nothing is logged).
        For waiters only the client itself holds."""
        raise NotImplementedError

    def observe(
        self,
        waiter: W,
        on_success: Callable[[Any], object],
        on_failure: Callable[[BaseException], object],
    ) -> None:
        """Watch ``waiter``'s outcome without changing what its holder sees (the user's
        waiters: a failure still reaches them, and is still theirs to handle)."""
        raise NotImplementedError

    # -- time ----------------------------------------------------------------------

    def now(self) -> float:
        raise NotImplementedError

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        raise NotImplementedError

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the current batch of work is done (the next loop turn)."""
        raise NotImplementedError

    #: Dispatch a read that is exactly one delivery (an RPC's request or reply):
    #: ``dispatch_delivery(deliver, message)`` calls ``deliver(message)``, the channel's
    #: routing of it, which settles at most one getter. By default that is all it does,
    #: as the C ``operator.call`` (no Python frame of its own); an adapter whose
    #: waiters' callbacks wait for the loop (asyncio's futures) overrides it to run
    #: them after the dispatch, as :meth:`dispatch_read` does for a read of several.
    dispatch_delivery: Callable[[Callable[[Any], None], Any], None] = staticmethod(_call)

    def dispatch_read(self, dispatch: Callable[[list[Any]], None], events: list[Any]) -> None:
        """Dispatch one read's ``events``. An adapter whose waiters fire synchronously
        (Twisted's Deferreds) overrides it to fire the waiters settled meanwhile only
        after the whole read, as asyncio's futures do; what they queue still leaves in
        the read's one flush."""
        dispatch(events)

    def in_loop_thread(self) -> bool:
        """Whether the caller runs in the event loop's thread (adapters that know better
        override this; the default suits a single-threaded program)."""
        return True

    def call_from_thread(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the event loop's thread, from any thread."""
        raise NotImplementedError

    # -- the transport ---------------------------------------------------------------

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close_transport(self, abort: bool = False) -> None:
        raise NotImplementedError

    def pause_reading(self) -> None:
        raise NotImplementedError

    def resume_reading(self) -> None:
        raise NotImplementedError

    # -- user code -----------------------------------------------------------------------

    def run_user_callback(
        self, fn: Callable[..., Any], *args: Any, delivery_tag: int | None = None
    ) -> None:
        """Call user code; log what it raises (with the ``delivery_tag`` of its message)
        instead of letting it reach the protocol. A coroutine or Deferred/awaitable it
        returns is run to its end, and its failure logged the same way."""
        raise NotImplementedError

    def run_blocking(self, fn: Callable[..., Any], *args: Any) -> W:
        """Run blocking ``fn(*args)`` in a worker thread; the waiter fires in the loop's
        thread with what it returned (or fails with what it raised)."""
        raise NotImplementedError

    def log(self, level: str, message: str, **fields: Any) -> None:
        raise NotImplementedError


def for_delivery(delivery_tag: int | None) -> str:
    """The log text naming a callback's message (formatted only when logging)."""
    return "" if delivery_tag is None else f" for delivery {delivery_tag}"
