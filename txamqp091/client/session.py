"""The surviving channels of one reconnecting client, moved from connection to connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, Protocol

from .runtime import Runtime, W

if TYPE_CHECKING:
    from .connection import ConnectionLogic

__all__ = ["RecoverySession", "SessionChannel"]


class SessionChannel(Protocol[W]):
    """What the session does with a surviving channel (:class:`~.recovering.SurvivingChannel`)."""

    def _attach(self, conn: ConnectionLogic[W]) -> None: ...

    def _detach(self) -> None: ...

    def _end(self, error: BaseException) -> None: ...

    def _fail_waiting(self, error: BaseException) -> None: ...


class RecoverySession(Generic[W]):
    """The surviving channels of one reconnecting client, and the current connection."""

    def __init__(self, runtime: Runtime[W], publish_timeout: float | None = 30.0) -> None:
        self.runtime = runtime
        self.publish_timeout = publish_timeout
        self.connection: ConnectionLogic[W] | None = None
        self.channels: list[SessionChannel[W]] = []
        self.stopping = False
        #: Called with each channel once it is back in business on a new connection.
        self.on_channel_recovered: list[Callable[[SessionChannel[W]], None]] = []

    def channel(self, channel_class: Callable[[RecoverySession[W]], SessionChannel[W]]) -> W:
        channel = channel_class(self)
        self.channels.append(channel)
        if self.connection is not None and self.connection.is_open:
            channel._attach(self.connection)
        return self.runtime.succeeded(channel)

    def attach(self, conn: ConnectionLogic[W]) -> None:
        """A new connection is open: bring every surviving channel onto it."""
        self.connection = conn
        for channel in list(self.channels):
            channel._attach(conn)

    def detach(self) -> None:
        """The connection is gone; operations park until :meth:`attach`."""
        self.connection = None
        for channel in self.channels:
            channel._detach()

    def halt(self, error: BaseException) -> None:
        """The client was stopped, and may start again: what waits for a connection fails
        now with ``error`` (not at ``publish_timeout``), and so does what is asked before
        the next start; the channels stay, to come back on the next connection."""
        self.stopping = True
        for channel in self.channels:
            channel._fail_waiting(error)

    def stop(self, error: BaseException) -> None:
        self.stopping = True
        for channel in list(self.channels):
            channel._end(error)

    def _forget(self, channel: SessionChannel[W]) -> None:
        if channel in self.channels:
            self.channels.remove(channel)

    def _channel_recovered(self, channel: SessionChannel[W]) -> None:
        for callback in self.on_channel_recovered:
            self.runtime.run_user_callback(callback, channel)
