"""What a core :class:`~txamqp091.core.channel.Channel` may touch of its connection, named in one place.

A channel reaches its :class:`~.connection.Connection` only through this protocol,
never through the connection's private fields, so what the two share is written
down and type-checked: mypy checks ``Connection`` against it where a channel is made.
:mod:`.channel` re-exports it.
"""

from __future__ import annotations

from typing import Protocol

from .events import Delivery
from .states import ConnectionState

__all__ = ["ChannelHost"]


class ChannelHost(Protocol):
    """What a :class:`Channel` needs of its connection, and all it may touch.

    :class:`~.connection.Connection` implements it. The output list is read once,
    when the channel is made, so the hot paths (publish, ack, answering the broker)
    append frames to it directly instead of calling a method per frame.
    """

    @property
    def state(self) -> ConnectionState:
        """The connection's state: a channel sends only while it is OPEN (nothing
        may follow Connection.Close, and nothing is read once the connection ended)."""

    @property
    def frame_max(self) -> int:
        """The negotiated maximum frame size, frame header and end octet included."""

    @property
    def delivery_class(self) -> type[Delivery]:
        """The class each delivered message is made as."""

    @property
    def max_message_size(self) -> int:
        """The largest message body accepted from the broker, in bytes: a content
        header announcing more ends the connection before any body is buffered."""

    @property
    def outgoing_frames(self) -> list[bytes]:
        """Encoded frames queued for the broker in order; ``data_to_send()`` joins them."""

    def fail_with_protocol_error(self, reply_code: int, reply_text: str) -> None:
        """The broker broke the protocol: queue Connection.Close with ``reply_code`` and
        end the connection with a ``ConnectionClosed`` event carrying a ProtocolError."""

    def release_channel(self, channel_id: int) -> None:
        """The channel is closed on both sides: its number may be opened again."""
