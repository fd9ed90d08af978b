"""A client protocol on a ``StringTransport`` and a ``Clock``, scripted frame by frame.

:class:`Wire` is for tests that need exact control over what the broker says
and when (heartbeats, blocking, confirms, protocol errors); tests of ordinary
behaviour use :mod:`txamqp091.twisted.testing` instead.
"""

from __future__ import annotations

from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from txamqp091.core import spec
from txamqp091.core.testing import ClientFrame, ServerFrames, parse_client_frames
from txamqp091.params import ConnectionParameters
from txamqp091.twisted import AMQPProtocol, Channel, Connection

T = TypeVar("T")

_NO_RESULT = object()


def _outcome(d: Deferred[Any]) -> Any:
    result: list[Any] = []
    d.addBoth(result.append)
    return result[0] if result else _NO_RESULT


def result_of(d: Deferred[T]) -> T:
    """``successResultOf``: the value ``d`` fired with (it must have succeeded)."""
    outcome = _outcome(d)
    assert outcome is not _NO_RESULT, f"{d!r} has no result"
    if isinstance(outcome, Failure):
        raise AssertionError(f"{d!r} failed:\n{outcome.getTraceback()}")
    return outcome  # type: ignore[no-any-return]


def failure_of(d: Deferred[Any], *kinds: type[BaseException]) -> BaseException:
    """``failureResultOf``: the exception ``d`` failed with (one of ``kinds``, if given)."""
    outcome = _outcome(d)
    assert outcome is not _NO_RESULT, f"{d!r} has no result"
    assert isinstance(outcome, Failure), f"{d!r} succeeded with {outcome!r}"
    if kinds:
        assert isinstance(outcome.value, kinds), outcome.getTraceback()
    return outcome.value


def assert_no_result(d: Deferred[Any]) -> None:
    """``assertNoResult``: ``d`` has no result (checked without consuming it)."""
    seen: list[Any] = []

    def peek(result: Any) -> Any:
        seen.append(result)
        return result

    d.addBoth(peek)
    assert not seen, f"{d!r} has a result: {seen[0]!r}"


class Wire:
    """An :class:`AMQPProtocol` connected to a ``StringTransport`` with a ``Clock``."""

    def __init__(self, **params: Any) -> None:
        self.clock = Clock()
        self.frames = ServerFrames()
        self.params = ConnectionParameters(**params)
        self.protocol = AMQPProtocol(self.params, self.clock)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    # -- what the client wrote ------------------------------------------------------------

    def raw(self) -> bytes:
        """Run due zero-delay calls (flushes), then take everything written so far."""
        self.clock.advance(0)
        data = self.transport.value()
        self.transport.clear()
        return data

    def sent(self) -> list[ClientFrame]:
        data = self.raw()
        if data.startswith(spec.PROTOCOL_HEADER):
            data = data[len(spec.PROTOCOL_HEADER) :]
        return parse_client_frames(data)

    def methods(self) -> list[tuple[int, spec.Method]]:
        return [
            (f.channel_id, f.payload) for f in self.sent() if isinstance(f.payload, spec.Method)
        ]

    # -- what the broker says ---------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.protocol.dataReceived(data)
        self.clock.advance(0)

    def open(self, heartbeat: int = 0, frame_max: int = 131072) -> Connection:
        """Take the client through the handshake; return the open connection."""
        assert self.raw() == spec.PROTOCOL_HEADER
        self.feed(self.frames.handshake(heartbeat=heartbeat, frame_max=frame_max))
        self.frames.frame_max = frame_max
        conn = result_of(self.protocol.ready)
        self.raw()  # Start-Ok, Tune-Ok, Open
        return conn

    def channel(self, conn: Connection) -> Channel:
        d = conn.channel()
        ((channel_id, method),) = self.methods()
        assert isinstance(method, spec.ChannelOpen)
        self.feed(self.frames.channel_open_ok(channel_id))
        channel = result_of(d)
        assert isinstance(channel, Channel)
        return channel
