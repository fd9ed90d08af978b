"""The opening handshake's rules, as pure functions: what the credentials must offer
(Connection.Start-Ok) and how channel_max, frame_max and the heartbeat are agreed
(Connection.Tune / Tune-Ok).

Kept apart from :mod:`.connection` so that they read, and are tested, without a
connection around them. :mod:`.connection` re-exports :class:`Credentials` and
:func:`negotiate`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["Credentials", "HeartbeatSetting", "negotiate", "negotiate_heartbeat"]


class Credentials(Protocol):
    """What the handshake needs of a credentials object (see :mod:`txamqp091.params`)."""

    @property
    def mechanism(self) -> str: ...

    def response_for(self, mechanisms: bytes) -> bytes: ...


HeartbeatSetting = int | None | Callable[[int], int]


def negotiate(client: int, server: int, limit: int) -> int:
    """channel_max/frame_max: 0 means "no limit"; otherwise the smaller value wins."""
    if client == 0 and server == 0:
        return limit
    if client == 0:
        return server
    if server == 0:
        return client
    return min(client, server)


def negotiate_heartbeat(client: HeartbeatSetting, server: int) -> int:
    """The heartbeat to put in Tune-Ok.

    ``None`` takes the broker's proposal; a callable is asked with it; ``0``
    turns heartbeats off (pika's semantics, which RabbitMQ honours); a positive
    value takes the smaller of the two when the broker proposes one (RabbitMQ's
    rule: "the smaller value of the two is used").
    """
    if client is None:
        return server
    if callable(client):
        return int(client(server))
    if client == 0 or server == 0:
        return client
    return min(client, server)
