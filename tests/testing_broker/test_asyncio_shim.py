"""The fake broker's asyncio shim, reached by the asyncio client: served on loopback, and
in memory through ``MemoryEndpoint``."""

from __future__ import annotations

import asyncio

import pytest

from txamqp091.exceptions import (
    AMQPConnectionError,
    ChannelClosedByBroker,
    ConnectionClosedByBroker,
    StreamLostError,
)
from txamqp091.params import ConnectionParameters
from txamqp091.testing import FakeBroker
from txamqp091.testing.asyncio import MemoryEndpoint, serve
from txamqp091.tornado import connect

pytestmark = pytest.mark.asyncio


async def test_a_round_trip_and_a_clean_close() -> None:
    broker = FakeBroker()
    async with await serve(broker) as server:
        conn = await asyncio.wait_for(connect(server.url("connection_name=shim")), 5)
        assert broker.current.client_properties["connection_name"] == "shim"
        ch = await conn.channel()
        ok = await ch.queue_declare("", exclusive=True)
        await ch.confirm_delivery()
        await ch.basic_publish("", ok.queue, b"over loopback")
        consumer = await ch.basic_consume(ok.queue)
        message = await asyncio.wait_for(consumer.get(), 5)
        assert message.body == b"over loopback"
        message.ack()
        assert await asyncio.wait_for(conn.close(), 5) is None
        for _ in range(200):
            if not broker.connections:
                break
            await asyncio.sleep(0.01)
        assert broker.connections == [] and broker.queues.keys().isdisjoint({ok.queue})
        assert len(server.connections) == 1 and server.connections[0].state == "lost"


async def test_the_broker_closing_and_scripted_faults_reach_the_client() -> None:
    broker = FakeBroker()
    broker.script("drop", "refuse-login")
    async with await serve(broker) as server:
        for _ in range(2):
            with pytest.raises(AMQPConnectionError):
                await asyncio.wait_for(connect(server.url()), 5)
        conn = await asyncio.wait_for(connect(server.url()), 5)
        assert broker.accepted == 3 and len(server.accepted_at) == 3
        broker.current.close(320, "CONNECTION_FORCED - test")
        reason = await asyncio.wait_for(conn.closed, 5)
        assert isinstance(reason, ConnectionClosedByBroker) and reason.reply_code == 320


async def test_close_drops_what_is_still_connected() -> None:
    broker = FakeBroker()
    server = await serve(broker)
    conn = await asyncio.wait_for(connect(server.url()), 5)
    await server.close()
    reason = await asyncio.wait_for(conn.closed, 5)
    assert reason is not None and not conn.is_open


# -- in memory: MemoryEndpoint -------------------------------------------------------------------


async def test_in_memory_round_trip_without_a_socket() -> None:
    broker = FakeBroker()
    endpoint = MemoryEndpoint(broker)
    conn = await asyncio.wait_for(connect(ConnectionParameters(), endpoint=endpoint), 5)
    (transport,) = endpoint.transports
    assert broker.current is transport.connection
    ch = await conn.channel()
    ok = await ch.queue_declare("", exclusive=True)
    await ch.confirm_delivery()
    for n in range(3):
        await ch.basic_publish("", ok.queue, b"%d" % n)
    consumer = await ch.basic_consume(ok.queue)
    bodies = []
    for _ in range(3):
        message = await asyncio.wait_for(consumer.get(), 5)
        bodies.append(message.body)
        message.ack()
    assert bodies == [b"0", b"1", b"2"]
    assert await asyncio.wait_for(conn.close(), 5) is None
    assert broker.connections == [] and ok.queue not in broker.queues
    assert transport.is_closing()


async def test_in_memory_faults_and_broker_actions_reach_the_client() -> None:
    broker = FakeBroker()
    broker.script("drop", "refuse-login")
    endpoint = MemoryEndpoint(broker)
    for _ in range(2):
        with pytest.raises(AMQPConnectionError):
            await asyncio.wait_for(connect(ConnectionParameters(), endpoint=endpoint), 5)
    conn = await asyncio.wait_for(connect(ConnectionParameters(), endpoint=endpoint), 5)
    assert broker.accepted == 3 and len(endpoint.transports) == 3
    ch = await conn.channel()
    await ch.queue_declare("q")
    broker.current.close_channel(1, 406, "PRECONDITION_FAILED - test")
    reason = await asyncio.wait_for(ch.closed, 5)
    assert isinstance(reason, ChannelClosedByBroker) and reason.reply_code == 406
    broker.current.drop()
    lost = await asyncio.wait_for(conn.closed, 5)
    assert isinstance(lost, StreamLostError)
    assert broker.connections == []
