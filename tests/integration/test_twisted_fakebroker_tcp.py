"""FakeBroker served over real loopback sockets: the client's TCP path, no RabbitMQ needed."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from txamqp091.twisted import connect
from txamqp091.twisted.testing import FakeBroker


@pytest_twisted.ensureDeferred
async def test_connect_to_a_fake_broker_listening_on_loopback() -> None:
    broker = FakeBroker(heartbeat=60, clock=reactor)  # type: ignore[arg-type]
    port = reactor.listenTCP(0, broker, interface="127.0.0.1")  # type: ignore[attr-defined]
    try:
        url = f"amqp://guest:guest@127.0.0.1:{port.getHost().port}/?connection_name=loopback"
        conn = await connect(reactor, url)
        assert conn.negotiated.heartbeat == 60
        (server,) = broker.connections
        assert server.client_properties["connection_name"] == "loopback"
        ch = await conn.channel()
        ok = await ch.queue_declare("", exclusive=True)
        await ch.confirm_delivery()
        await ch.basic_publish("", ok.queue, b"over TCP")
        message = await ch.basic_get(ok.queue)
        assert message.body == b"over TCP"
        message.ack()
        assert await conn.close() is None
        for _ in range(200):  # the broker side sees the socket close a moment later
            if not broker.connections:
                break
            await deferLater(reactor, 0.01, lambda: None)  # type: ignore[arg-type]
    finally:
        await port.stopListening()
    assert broker.connections == [] and broker.queues == {}  # exclusive queue gone with it
