"""The private event-loop thread every blocking connection shares, and the bridge to it.

One asyncio loop runs on one daemon thread per process, started on first use.
Blocking calls hand it small operations through one FIFO queue (so everything one
thread asks for happens in the order it asked), and a caller that needs the result
sleeps on a lock that the loop releases. The loop is created with
``asyncio.SelectorEventLoop()`` and made current only in its own thread, so an
asyncio loop or a Twisted reactor that the application runs elsewhere never sees it.

Operations are queued, not posted one by one with ``call_soon_threadsafe``: the
loop is woken once per batch, which is what lets a tight ``basic_publish`` loop
hand over tens of thousands of messages a second.

A round trip (a confirmed ``basic_publish``) can skip the hand-over altogether.
The loop thread holds :attr:`LoopThread.lock` at all times except while it sleeps
in ``epoll_wait``; a caller that finds the queue empty and takes the lock then
owns every object of the loop, so it encodes and writes its frames itself and
only sleeps for the reply: no wake-up write, no second thread woken to send.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import selectors
import threading
import time
from _thread import RLock, allocate_lock, get_ident
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

from .exceptions import CallTimeout

__all__ = ["EagerFuture", "LoopThread", "PrivateLoop", "Waiter", "loop_thread", "wake_later"]

logger = logging.getLogger("txamqp091.blocking")

#: The loop thread's ident once it polls through :class:`_UnlockedPoll`, and the
#: waiters it settled since its last poll: they are woken just before it polls again.
#: A caller woken at once would only wait for the interpreter lock, which the loop
#: thread keeps until it polls; woken then, it finds it free (one wake-up, not two).
_deferring_ident = 0
#: How long a caller reads the socket for its own reply before the loop thread
#: takes over (it then sleeps on the reply as any other call does).
READ_REPLY_FOR = 0.5
POLL_SLICE = 0.05


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except OSError:  # BlockingIOError: empty
        pass


_deferred: list[tuple[Callable[[Any], Any], Any]] = []


def wake_later(wake: Callable[[Any], Any], arg: Any) -> None:
    """``wake(arg)`` (which wakes another thread: a lock release, a queue put) now, or,
    in the loop thread, just before it polls again (see ``_deferred``)."""
    if get_ident() == _deferring_ident:
        _deferred.append((wake, arg))
    else:
        wake(arg)


def _release(lock: Any) -> None:
    lock.release()


class OwnedLock(Protocol):
    """The loop lock: an ``_thread.RLock``, for its ``_is_owned()`` (see :func:`hold`)."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...

    def _is_owned(self) -> bool: ...


def hold(lock: OwnedLock) -> BaseException | None:
    """Hold ``lock`` again in a caller that let it go to poll, whatever a signal handler
    raises meanwhile; what it raised (a KeyboardInterrupt) is returned, to be raised
    once the lock is held and the loop's state restored.

    A blocking ``acquire()`` is interrupted by signals, and a handler's exception can
    also surface just after it returned, lock taken. Only the owner test tells the two
    apart; a plain lock (which has no owner) would let the caller's ``finally`` release
    the loop thread's hold, and both threads would then run the loop at once.
    """
    interrupted: BaseException | None = None
    while True:
        try:
            if lock._is_owned():
                return interrupted
            lock.acquire()
        except BaseException as exc:  # raised by our caller once the lock is held
            interrupted = exc


def _notify(fd: int) -> None:
    try:
        os.write(fd, b"\0")
    except OSError:  # full (it is drained by its reader) or closed: either way awake
        pass


class _Pipe:
    """A thread's wake-up pipe; closed when the thread ends (its ``threading.local``
    slot is dropped then), so threads that come and go leak no descriptors."""

    __slots__ = ("__weakref__", "read", "write")

    def __init__(self) -> None:
        self.read, self.write = os.pipe()
        os.set_blocking(self.read, False)
        os.set_blocking(self.write, False)

    def __del__(self) -> None:
        for fd in (self.read, self.write):
            try:
                os.close(fd)
            except OSError:
                pass


_pipes = threading.local()


def _thread_pipe() -> tuple[int, int]:
    """This thread's wake-up pipe (read end, write end), made on first use: a caller
    reading its own reply polls it too, so that it hears at once when the loop thread
    took the reply instead."""
    pipe: _Pipe | None = getattr(_pipes, "pipe", None)
    if pipe is None:
        pipe = _pipes.pipe = _Pipe()
    return pipe.read, pipe.write


class Waiter:
    """The result of one operation, handed from the loop thread to the caller.

    The caller holds ``lock`` from the start and takes it a second time to wait;
    the loop thread releases it once the value or the error is set.
    """

    __slots__ = ("error", "future", "lock", "notify", "value")

    def __init__(self) -> None:
        self.lock = allocate_lock()
        self.lock.acquire()
        #: A pipe to write to when the loop thread settles it (-1: none), see _read_reply.
        self.notify = -1
        self.value: Any = None
        self.error: BaseException | None = None
        self.future: asyncio.Future[Any] | None = None

    def succeed(self, value: Any) -> None:
        self.value = value
        self._wake()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self._wake()

    def _wake(self) -> None:
        if get_ident() == _deferring_ident:
            _deferred.append((_release, self.lock))  # released by _UnlockedPoll.poll
            if self.notify >= 0:
                _deferred.append((_notify, self.notify))
        else:
            self.lock.release()

    def settle(self, future: asyncio.Future[Any]) -> None:
        """A future's done callback (or called at once when it is already done)."""
        if future.cancelled():
            self.error = asyncio.CancelledError()
        else:
            self.error = future.exception()
            if self.error is None:
                self.value = future.result()
        self._wake()

    def take(self, result: Any) -> None:
        """Settle from what an operation returned: a future (now or later) or a value."""
        if isinstance(result, asyncio.Future):
            if result.done():
                self.settle(result)
            else:
                self.future = result
                if isinstance(result, EagerFuture) and result._eager is None:
                    result._eager = self.settle
                else:
                    result.add_done_callback(self.settle)
        else:
            self.succeed(result)

    def cancel(self) -> None:
        """The caller gave up (its deadline passed): cancel the future in the loop thread.
        A cancelled RPC waiter still takes its reply, so the channel stays in step."""
        future = self.future
        if future is not None and not future.done():
            future.cancel()


class EagerFuture(asyncio.Future[Any]):
    """A future that can tell one waiting thread at once that it is done.

    asyncio runs a future's done callbacks on the next loop turn; a blocking caller
    needs only a lock released, which is safe right where the result is set. Doing
    it there saves a loop turn on every round trip (a confirmed publish, an RPC).
    """

    _eager: Callable[[asyncio.Future[Any]], None] | None = None

    def set_result(self, result: Any) -> None:
        super().set_result(result)
        eager = self._eager
        if eager is not None:
            self._eager = None
            eager(self)

    def set_exception(self, exception: type[BaseException] | BaseException) -> None:
        super().set_exception(exception)
        eager = self._eager
        if eager is not None:
            self._eager = None
            eager(self)

    def cancel(self, msg: Any = None) -> bool:
        cancelled = super().cancel(msg)
        eager = self._eager
        if cancelled and eager is not None:
            self._eager = None
            eager(self)
        return cancelled


class _UnlockedPoll:
    """The selector's epoll object, releasing the loop lock for the time of each poll.

    Only the kernel call runs unlocked: the selector maps the events it returns to
    its keys after the lock is taken back, so a caller holding the lock may register
    or modify a file descriptor (a transport that could not write everything) safely.
    """

    __slots__ = ("_epoll", "_lock")

    def __init__(self, epoll: Any, lock: OwnedLock) -> None:
        self._epoll = epoll
        self._lock = lock

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        deferred = _deferred
        if deferred:
            for wake, arg in deferred:
                wake(arg)
            deferred.clear()
        lock = self._lock
        lock.release()
        try:
            return self._epoll.poll(timeout, maxevents)  # type: ignore[no-any-return]
        finally:
            lock.acquire()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._epoll, name)  # register, modify, unregister, close, fileno


class PrivateLoop(asyncio.SelectorEventLoop):
    """The loop of the blocking facade's thread: its futures are :class:`EagerFuture`.

    With epoll (Linux), ``lock`` is held by the loop's thread except while it polls,
    and ``direct`` is True: a thread that holds the lock may use the loop's objects
    (then :meth:`wake_if_needed`). Elsewhere ``direct`` is False and nobody but the
    loop thread touches them.
    """

    _ready: Any
    _scheduled: list[Any]

    def __init__(self) -> None:
        self.lock = cast(OwnedLock, RLock())
        selector = selectors.DefaultSelector()
        inner = getattr(selector, "_selector", None)
        # Only where the selector's epoll object is where CPython keeps it (and the
        # loop keeps what wake_if_needed reads); elsewhere every call is queued.
        self.direct = isinstance(selector, getattr(selectors, "EpollSelector", ())) and (
            inner is not None and hasattr(asyncio.SelectorEventLoop, "_write_to_self")
        )
        if self.direct:
            selector._selector = _UnlockedPoll(inner, self.lock)  # type: ignore[attr-defined]
        super().__init__(selector)

    def create_future(self) -> asyncio.Future[Any]:
        return EagerFuture(loop=self)

    def next_timer(self) -> Any:
        scheduled = self._scheduled
        return scheduled[0] if scheduled else None

    def wake_if_needed(self, timer_before: Any) -> None:
        """After another thread used the loop under the lock: wake the loop if that
        queued a callback or armed an earlier timer than the one its poll waits for."""
        if self._ready or self.next_timer() is not timer_before:
            self._write_to_self()  # type: ignore[attr-defined]


class LoopThread:
    """An asyncio loop on a daemon thread, with an operation queue feeding it."""

    def __init__(self) -> None:
        self.loop = PrivateLoop()
        self._ops: deque[Callable[[], None]] = deque()
        self._scheduled = False
        self.ident = 0
        started = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(started,), name="txamqp091-blocking", daemon=True
        )
        self.thread.start()
        started.wait()

    def _run(self, started: threading.Event) -> None:
        # asyncio reads into a fresh 256 KiB buffer (then shrunk to what came). A new
        # thread's malloc arena has no room for it, and glibc's default 128 KiB mmap
        # threshold would make each read an mmap, an mremap and a munmap (three
        # system calls per broker reply); freeing one larger block raises the
        # threshold (glibc's own dynamic rule), so those reads stay on the heap.
        _heap_hint = bytes(1 << 20)
        del _heap_hint
        asyncio.set_event_loop(self.loop)  # this thread only
        self.ident = threading.get_ident()
        if self.loop.direct:
            global _deferring_ident
            self.loop.lock.acquire()  # released only while polling (_UnlockedPoll)
            _deferring_ident = self.ident
        started.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    @property
    def in_loop(self) -> bool:
        return threading.get_ident() == self.ident

    def submit(self, op: Callable[[], None]) -> None:
        """Run ``op()`` in the loop thread, after everything submitted before it."""
        self._ops.append(op)
        # A lost race here only costs a spare wake-up: _drain clears the flag before
        # it empties the queue, so an operation appended after the flag was read as
        # True is still taken by the drain that is running.
        if not self._scheduled:
            self._scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._drain)
            except BaseException:
                # Interrupted (Ctrl+C) before the drain was surely scheduled: the
                # flag left set would keep this and every later operation queued
                # for good. A drain scheduled twice finds an empty queue.
                self._scheduled = False
                raise

    def _drain(self) -> None:
        self._scheduled = False
        ops = self._ops
        while ops:
            op = ops.popleft()
            try:
                op()
            except Exception:
                logger.exception("blocking operation %r failed in the loop thread", op)

    def call(
        self,
        start: Callable[[], Any],
        timeout: float | None,
        what: str,
        direct: bool = False,
        reply_from: Callable[[], Any] | None = None,
    ) -> Any:
        """Run ``start()`` in the loop thread and wait for what it returns (a future's
        result, or a plain value); at most ``timeout`` seconds, then :class:`CallTimeout`.

        With ``direct``, ``start()`` runs in the calling thread instead when the loop
        is idle and nothing is queued before it (see :meth:`run_direct`); it must then
        use the loop only through explicit references (no "current loop" look-ups).
        ``reply_from()`` then names the transport the reply will come on: this thread
        reads it itself (see :meth:`_read_reply`).
        """
        if self.in_loop:
            raise RuntimeError(f"{what}: a blocking call from the event-loop thread would deadlock")
        waiter = Waiter()
        if direct:
            began = time.monotonic()
            if self.run_direct(start, waiter, reply_from, timeout):
                left = None if timeout is None else timeout - (time.monotonic() - began)
                return self.wait(waiter, timeout, what, left)

        def op() -> None:
            try:
                result = start()
            except BaseException as exc:
                waiter.fail(exc)
                return
            waiter.take(result)

        self.submit(op)
        return self.wait(waiter, timeout, what)

    def run_direct(
        self,
        start: Callable[[], Any],
        waiter: Waiter,
        reply_from: Callable[[], Any] | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Run ``start()`` here, holding the loop lock, and settle ``waiter`` from it;
        False (nothing run) when the loop is busy or operations are queued.

        An empty queue while we hold the lock means every operation submitted
        earlier (by this thread too) has run, so the order is kept. A busy loop is
        not waited for: the queue is as fast then, as the loop is awake anyway.
        """
        loop = self.loop
        if self._ops or not loop.direct:
            return False
        lock = loop.lock
        try:
            # A Ctrl+C may surface right after acquire() took the lock: hence the
            # owner test in ``finally``, not a release that assumes either way.
            if not lock.acquire(False) or self._ops:
                return False
            timer = loop.next_timer()
            try:
                result = start()
            except BaseException as exc:
                waiter.fail(exc)
            else:
                waiter.take(result)
            if reply_from is not None and waiter.lock.locked():
                limit = READ_REPLY_FOR if timeout is None else min(timeout, READ_REPLY_FOR)
                self._read_reply(waiter, reply_from(), limit)
            loop.wake_if_needed(timer)
            return True
        finally:
            if lock._is_owned():
                lock.release()

    def _read_reply(self, waiter: Waiter, transport: Any, limit: float) -> None:
        """Wait for ``waiter``'s reply by reading ``transport``'s socket in this thread.

        Called and returning with the loop lock held. While this thread polls the
        socket (lock released), the loop's epoll stops watching it for input, so
        the loop thread is not woken for the reply: the caller is the only thread
        that wakes, as with pika. Whatever arrives meanwhile (other channels'
        deliveries, heartbeats) is read and dispatched here the same way, under the
        lock; after ``limit`` seconds without the reply, or if anything is unusual
        (TLS, reading paused, the transport closing), the loop thread takes over.
        """
        loop = self.loop
        read_ready = getattr(transport, "_read_ready", None)
        fd = getattr(transport, "_sock_fd", None)
        if read_ready is None or fd is None or not loop.direct:
            return
        selector: Any = loop._selector  # type: ignore[attr-defined]
        epoll = selector._selector._epoll
        rfd, wfd = _thread_pipe()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(rfd, select.POLLIN)
        deadline = time.monotonic() + limit
        lock = loop.lock
        waiter.notify = wfd
        try:
            while waiter.lock.locked() and not transport.is_closing():
                # What asyncio wants watched now, less input (it may have changed it).
                events = selector.get_key(fd).events
                if not events & selectors.EVENT_READ:
                    return  # reading is paused: not ours to resume
                epoll.modify(fd, select.EPOLLOUT if events & selectors.EVENT_WRITE else 0)
                lock.release()
                try:
                    remaining = deadline - time.monotonic()
                    # The loop thread may still read the reply (an event it took
                    # before the mask, or asyncio re-arming input for a write): it
                    # then writes to our pipe. Slices only as a safety net.
                    ready = poller.poll(max(0.0, min(remaining, POLL_SLICE)) * 1000)
                finally:
                    lock.acquire()  # if a Ctrl+C interrupts it: see the outer finally
                if ready:
                    for ready_fd, _ in ready:
                        if ready_fd == rfd:
                            _drain(rfd)
                        else:
                            read_ready()  # recv and data_received, as the loop would
                elif remaining <= POLL_SLICE:
                    return
        except (KeyError, OSError):
            return  # the transport is gone from the selector
        finally:
            # Held again even when an interrupt came between release() and the
            # inner try; then input is watched by the loop again, after what came
            # was read (else the loop thread would wake for bytes already taken,
            # or, interrupted, never read this connection again).
            interrupted = hold(lock)
            waiter.notify = -1
            try:
                events = selector.get_key(fd).events
                mask = select.EPOLLIN if events & selectors.EVENT_READ else 0
                if events & selectors.EVENT_WRITE:
                    mask |= select.EPOLLOUT
                epoll.modify(fd, mask)
            except (KeyError, OSError):
                pass
            if interrupted is not None:
                raise interrupted

    def wait(
        self, waiter: Waiter, timeout: float | None, what: str, left: float | None = None
    ) -> Any:
        """Wait for ``waiter`` at most ``left`` seconds (``timeout`` when not given);
        :class:`CallTimeout` names ``timeout``."""
        if left is None:
            left = timeout
        if not waiter.lock.acquire(True, -1 if left is None else max(left, 0.0)):
            self.submit(waiter.cancel)
            raise CallTimeout(what, timeout)
        if waiter.error is not None:
            raise waiter.error
        return waiter.value

    def barrier(self, timeout: float) -> bool:
        """Wait until everything submitted so far ran and its writes were flushed."""
        if self.in_loop:
            return True
        waiter = Waiter()

        # call_soon from inside the drain: after the flushes those operations scheduled.
        def op() -> None:
            self.loop.call_soon(waiter.succeed, None)

        self.submit(op)
        return waiter.lock.acquire(True, timeout)


_instance: LoopThread | None = None
_instance_lock = threading.Lock()


def loop_thread() -> LoopThread:
    """The process's loop thread, started on first use."""
    global _instance
    instance = _instance
    if instance is not None:
        return instance
    with _instance_lock:
        if _instance is None:
            _instance = LoopThread()
        return _instance


def _forget_after_fork() -> None:
    # The thread does not exist in a forked child: the child starts its own on first use
    # (the parent's connections are unusable there, as with any socket library).
    global _instance, _instance_lock, _deferring_ident
    _deferring_ident = 0
    _deferred.clear()
    _instance = None
    _instance_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
