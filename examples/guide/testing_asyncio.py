"""Testing asyncio and Tornado code against the fake broker, with no RabbitMQ.

``docs/testing.rst`` includes this file; ``tests/guide`` runs each coroutine.
"""

from __future__ import annotations

from txamqp091 import ConnectionParameters
from txamqp091.testing import FakeBroker
from txamqp091.testing.asyncio import MemoryEndpoint, serve
from txamqp091.tornado import AMQPClient, connect


async def test_round_trip() -> None:
    broker = FakeBroker()
    conn = await connect(ConnectionParameters(), endpoint=MemoryEndpoint(broker))
    ch = await conn.channel()
    await ch.queue_declare("q")
    await ch.confirm_delivery()  # so the publish returns once the broker has it
    await ch.basic_publish("", "q", b"hello")
    assert broker.bodies("q") == [b"hello"]
    await conn.close()


async def test_round_trip_over_a_socket() -> None:
    broker = FakeBroker()
    async with await serve(broker) as server:
        conn = await connect(server.url())
        ch = await conn.channel()
        await ch.basic_publish("", "", b"dropped: no queue is bound")
        await conn.close()
    assert len(broker.connections) == 0 and server.accepted_at


async def test_a_client_rides_out_failing_attempts() -> None:
    broker = FakeBroker()
    broker.script(None, "drop", "drop", "refuse-login")  # serve, then three failures
    client = AMQPClient(
        ConnectionParameters(), retry_policy=lambda attempt: 0.01, endpoint=MemoryEndpoint(broker)
    )
    async with client:
        ch = await client.channel()
        await ch.queue_declare("q")
        await ch.confirm_delivery()
        broker.current.drop()  # the served connection ends: three failed attempts follow
        await ch.basic_publish("", "q", b"after the outage")  # waits for the fifth
    assert broker.accepted == 5
    assert broker.bodies("q") == [b"after the outage"]
