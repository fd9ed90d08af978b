"""A Ctrl+C in a blocking call leaves the loop thread working.

A signal handler's exception (KeyboardInterrupt) can surface in the calling thread at
any bytecode, including while it waits for the loop lock it let go of to poll, or just
after ``acquire()`` returned. Each test raises it at one such point, deterministically
(a lock or a loop method that raises once), and then checks that the interrupt reached
the caller and that the loop thread still runs operations and reads the connection.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from _thread import RLock
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest

from txamqp091.blocking import _loop
from txamqp091.blocking._loop import LoopThread, OwnedLock, Waiter, hold


class InterruptingLock:
    """The loop lock, raising KeyboardInterrupt once at the acquire named by ``when``:

    * ``"waiting"``: a blocking acquire, before it takes the lock (a signal while
      the caller sleeps on it);
    * ``"taken"``: a blocking acquire, after it took the lock (a signal handled just
      as it returned);
    * ``"trying"``: a non-blocking acquire that succeeded (``run_direct``'s).
    """

    def __init__(self, inner: OwnedLock, when: str) -> None:
        self.inner = inner
        self.when = when
        self.raised = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        armed = not self.raised and (self.when == "trying") != blocking
        if armed and self.when == "waiting":
            self.raised += 1
            raise KeyboardInterrupt
        taken = self.inner.acquire(blocking, timeout)
        if armed and taken:
            self.raised += 1
            raise KeyboardInterrupt
        return taken

    def release(self) -> None:
        self.inner.release()

    def _is_owned(self) -> bool:
        return self.inner._is_owned()


class Reader(asyncio.Protocol):
    def __init__(self) -> None:
        self.received = bytearray()
        self.got = threading.Event()

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.got.set()


@pytest.fixture
def lt() -> Iterator[LoopThread]:
    """A loop thread of the test's own, so that a failure cannot break the shared one
    (whose ident, which a loop thread records for :func:`wake_later`, is put back)."""
    shared_ident = _loop._deferring_ident
    thread = LoopThread()
    try:
        if not thread.loop.direct:
            pytest.skip("no epoll: every operation goes through the queue")
        yield thread
    finally:
        thread.loop.call_soon_threadsafe(thread.loop.stop)
        thread.thread.join(5.0)
        _loop._deferring_ident = shared_ident


@pytest.fixture
def connection(lt: LoopThread) -> Iterator[tuple[Any, Reader, socket.socket]]:
    """A transport of ``lt``'s loop (one end of a socket pair), its protocol, the peer."""
    ours, peer = socket.socketpair()
    made = asyncio.run_coroutine_threadsafe(lt.loop.create_connection(Reader, sock=ours), lt.loop)
    transport, reader = made.result(5.0)
    yield transport, reader, peer
    lt.loop.call_soon_threadsafe(transport.close)
    peer.close()


def direct(lt: LoopThread, start: Callable[[], Any], *args: Any) -> Waiter:
    """``run_direct(start, waiter, *args)``, again while the loop thread happens to hold
    its lock (it takes it for a moment whenever it wakes): the waiter."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        waiter = Waiter()
        if lt.run_direct(start, waiter, *args):
            return waiter
        time.sleep(0.01)
    raise AssertionError("the loop lock was never free for 5 s")


def still_works(lt: LoopThread, reader: Reader | None = None) -> None:
    """The loop thread runs a queued operation, a direct one, and reads the connection."""
    assert lt.call(lambda: 42, 5.0, "queued") == 42
    assert lt.wait(direct(lt, threading.get_ident), 5.0, "direct") == threading.get_ident()
    assert lt.thread.is_alive()
    if reader is not None:
        assert reader.got.wait(5.0), "the loop thread no longer reads the connection"
        assert bytes(reader.received) == b"x"


@pytest.mark.parametrize("when", ["waiting", "taken"])
def test_an_interrupt_while_taking_the_lock_back_after_polling_for_the_reply(
    lt: LoopThread, connection: tuple[Any, Reader, socket.socket], when: str
) -> None:
    transport, reader, peer = connection
    real = lt.loop.lock
    lock = InterruptingLock(real, when)
    reply = asyncio.run_coroutine_threadsafe(_a_future(), lt.loop).result(5.0)
    peer.send(b"x")  # the caller's poll returns at once: input is ready
    lt.loop.lock = lock
    try:
        with pytest.raises(KeyboardInterrupt):
            direct(lt, lambda: reply, lambda: transport, 5.0)
    finally:
        lt.loop.lock = real
    assert lock.raised == 1
    assert not real._is_owned()
    # The interrupt came before the caller read the byte: the loop thread reads it,
    # because input on the connection is watched again.
    still_works(lt, reader)


def test_an_interrupt_just_after_a_direct_call_took_the_lock(lt: LoopThread) -> None:
    real = lt.loop.lock
    lt.barrier(5.0)  # nothing queued: the direct path is taken
    lock = InterruptingLock(real, "trying")
    ran: list[int] = []
    lt.loop.lock = lock
    try:
        with pytest.raises(KeyboardInterrupt):
            direct(lt, lambda: ran.append(1))
    finally:
        lt.loop.lock = real
    assert (lock.raised, ran) == (1, [])
    assert not real._is_owned()
    still_works(lt)


def test_an_interrupt_while_scheduling_the_drain_leaves_later_operations_running(
    lt: LoopThread,
) -> None:
    loop = lt.loop
    schedule = loop.call_soon_threadsafe
    calls: list[str] = []

    def interrupted_once(*args: Any, **kwargs: Any) -> Any:
        calls.append("schedule")
        if len(calls) == 1:
            raise KeyboardInterrupt
        return schedule(*args, **kwargs)

    ran: list[str] = []
    done = threading.Event()
    loop.call_soon_threadsafe = interrupted_once  # type: ignore[method-assign,assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            lt.submit(lambda: ran.append("first"))
        lt.submit(lambda: ran.append("second"))
        lt.submit(done.set)
        assert done.wait(5.0), "operations submitted after the interrupt never ran"
    finally:
        del loop.call_soon_threadsafe
    assert ran == ["first", "second"]  # the interrupted one too, and in order
    still_works(lt)


def test_hold_returns_the_interrupt_once_the_lock_is_held() -> None:
    for when in ("waiting", "taken"):
        real = cast(OwnedLock, RLock())
        lock = InterruptingLock(real, when)
        error = hold(lock)
        assert isinstance(error, KeyboardInterrupt)
        assert real._is_owned()
        real.release()
    real = cast(OwnedLock, RLock())
    real.acquire()
    assert hold(real) is None  # already held: nothing to do
    real.release()


async def _a_future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()
