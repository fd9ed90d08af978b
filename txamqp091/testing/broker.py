"""The public fake broker: one RabbitMQ virtual host in memory, sans-IO.

:class:`~txamqp091.testing.FakeBroker` holds the exchanges, queues and bindings
(:class:`~._state.VirtualHost`), the settings announced in the handshake, the
open connections, and the scripted faults new connections play. Each client
connection is a :class:`~._connection.BrokerConnection` made by :meth:`~txamqp091.testing.FakeBroker.connect`;
a shim carries its bytes (:mod:`txamqp091.testing.twisted`, :mod:`txamqp091.testing.asyncio`).

Where RabbitMQ has a documented behaviour (reply codes and texts, server-named
queues, ``x-max-length`` with ``x-overflow``, the default exchange, exclusive
queues, ``channel.flow`` and ``basic.recover`` limits), the fake follows it, so
that code tested against it meets no surprises against the real broker. Not
modelled: persistence, TTLs, dead-lettering, priorities, streams, and TCP
back-pressure from the broker side.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from ..core import spec
from ..core.codec import FieldTable
from ..core.testing import DEFAULT_SERVER_PROPERTIES
from ._connection import FAULTS, BrokerConnection
from ._model import EXCHANGE_TYPES, Binding, FakeExchange, StoredMessage
from ._state import FakeQueue, VirtualHost

__all__ = ["FakeBroker"]


class FakeBroker(VirtualHost):
    """One RabbitMQ virtual host in memory.

    :param users: ``{username: password}`` accepted with PLAIN; None accepts anyone.
    :param vhosts: the virtual host names a client may open.
    :param channel_max: proposed in Connection.Tune.
    :param frame_max: proposed in Connection.Tune.
    :param heartbeat: proposed in Connection.Tune; 0 (the default) turns
        heartbeats off unless the client asks for them.
    :param server_properties: the Connection.Start table.
    """

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        vhosts: Iterable[str] = ("/",),
        channel_max: int = 2047,
        frame_max: int = 131072,
        heartbeat: int = 0,
        server_properties: FieldTable | None = None,
    ) -> None:
        super().__init__()
        self.users = users
        self.vhosts = set(vhosts)
        self.channel_max = channel_max
        self.frame_max = frame_max
        self.heartbeat = heartbeat
        self.server_properties = (
            DEFAULT_SERVER_PROPERTIES if server_properties is None else server_properties
        )
        #: Open client connections, oldest first.
        self.connections: list[BrokerConnection] = []
        #: How many connections were ever made (the scripted faults count these).
        self.accepted = 0
        #: What the next connections do, one entry each, in order: None serves, a name from
        #: :data:`~._connection.FAULTS` plays that fault. Then :attr:`default_fault` applies.
        self.faults: deque[str | None] = deque()
        self.default_fault: str | None = None

    @property
    def vhost(self) -> VirtualHost:
        return self

    def connect(self) -> BrokerConnection:
        """The broker side of a new client connection (call its ``connection_made`` next)."""
        return BrokerConnection(self)

    def script(self, *faults: str | None, default: str | None = None) -> None:
        """Make the next connections play ``faults`` in order, then ``default`` (None serves)."""
        for fault in (*faults, default):
            if fault is not None and fault not in FAULTS:
                raise ValueError(f"fault must be None or one of {FAULTS}, not {fault!r}")
        self.faults = deque(faults)
        self.default_fault = default

    @property
    def current(self) -> BrokerConnection:
        """The newest connection that is open (handshake done).

        :raises LookupError: no connection is open.
        """
        for connection in reversed(self.connections):
            if connection.is_open:
                return connection
        raise LookupError("no open connection")

    # -- BrokerSide: connections come and go ------------------------------------------------

    def attach(self, connection: BrokerConnection) -> str | None:
        self.accepted += 1
        self.connections.append(connection)
        return self.faults.popleft() if self.faults else self.default_fault

    def detach(self, connection: BrokerConnection) -> None:
        if connection in self.connections:
            self.connections.remove(connection)

    # -- set-up and inspection for tests ----------------------------------------------------

    def declare_queue(
        self,
        name: str,
        durable: bool = False,
        auto_delete: bool = False,
        arguments: FieldTable | None = None,
    ) -> FakeQueue:
        """Create (or return) a queue, as another client would have."""
        queue = self.queues.get(name)
        if queue is None:
            queue = FakeQueue(name, durable, False, auto_delete, dict(arguments or {}))
            self.queues[name] = queue
        return queue

    def declare_exchange(
        self, name: str, exchange_type: str = "direct", durable: bool = False
    ) -> FakeExchange:
        """Create (or return) an exchange."""
        if exchange_type not in EXCHANGE_TYPES:
            raise ValueError(f"exchange_type must be one of {EXCHANGE_TYPES}")
        exchange = self.exchanges.get(name)
        if exchange is None:
            exchange = FakeExchange(name, exchange_type, durable)
            self.exchanges[name] = exchange
        return exchange

    def bind_queue(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: FieldTable | None = None,
    ) -> None:
        """Bind ``queue`` to ``exchange`` (both must exist)."""
        self.add_binding(
            self.exchanges[exchange], Binding(queue, True, routing_key, arguments or {})
        )

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.BasicProperties | None = None,
    ) -> int:
        """Route a message as if another client published it; return how many queues took it."""
        properties = properties if properties is not None else spec.BasicProperties()
        taken = 0
        for queue in self.route(exchange, routing_key, properties.headers):
            if self.enqueue(queue, StoredMessage(exchange, routing_key, body, properties)):
                taken += 1
        self.dispatch()
        return taken

    def messages(self, queue: str) -> list[StoredMessage]:
        """The ready (not delivered, or requeued) messages of ``queue``, oldest first."""
        return list(self.queues[queue].messages)

    def bodies(self, queue: str) -> list[bytes]:
        """The bodies of :meth:`messages`."""
        return [message.body for message in self.queues[queue].messages]
