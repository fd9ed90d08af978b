"""Broker-side kills (``rabbitmqctl close_connection``): nothing confirmed is lost, the
topology and the consumers come back, and a stale ack acks nothing.

The promise under test (docs: "Staying connected"): a surviving channel brings its
topology and consumers back on every new connection, and a publish in confirm mode
succeeds only once a broker has the message, so whatever the faults, every publish
that succeeded is in the queue (duplicates allowed, losses not). Every scenario runs
on both adapters; tests print their figures (``-s`` shows them).
"""

from __future__ import annotations

import pytest

from tests.integration.faults import BrokerKiller, TcpProxy
from tests.integration.recovery.support import (
    AMQP,
    EXPIRES,
    Clients,
    Collector,
    Publisher,
    drain_check,
    exists,
    kill,
    metric,
    on_each_adapter,
    open_channel,
    queue_counts,
    sleep,
    to_thread,
    unique,
    within,
)
from txamqp091.exceptions import ConnectionClosedByBroker, UnroutableError

pytestmark = pytest.mark.broker


@on_each_adapter
async def test_kills_during_confirmed_publishes_lose_nothing(clients: Clients) -> None:
    name = unique("kill")
    queue = clients.delete_later(unique("q"))
    client, watch = await clients.start(
        f"{AMQP}?connection_name={name}&heartbeat=10", retry_policy=lambda a: 0.2
    )
    channel = await open_channel(client, queue, prefetch=200, arguments=EXPIRES)
    consumer = await within(20, channel.basic_consume(queue), "basic_consume")
    collector = Collector(consumer)
    publisher = Publisher(channel, "", queue, window=10, client=client)
    at_loss: list[int] = []
    client.on_disconnected.append(lambda why: at_loss.append(publisher.unsettled()))
    # Each connection is closed by the broker once it has received 40 kB (about 500
    # publishes): three kills in the middle of the stream.
    killer = BrokerKiller(name, [40_000] * 3)
    await to_thread(killer.arm)

    await within(90, publisher.run(range(3000)), "publishing")
    assert await to_thread(killer.join, 60) == 3
    assert publisher.failed == []
    assert len(publisher.confirmed) == 3000
    assert len(watch.lost) == 3 and all(
        isinstance(why, ConnectionClosedByBroker) and why.reply_code == 320 for _, why in watch.lost
    )
    assert client.connections == 4
    # Every kill hit traffic: publishes of each killed connection were confirmed on a later
    # one. (How many were unconfirmed when the client saw the Close, ``at_loss``, varies:
    # the broker may have confirmed all it had received before closing.)
    assert sorted(publisher.carried) == [1, 2, 3], publisher.carried

    # One more after the last kill: the same consumer object delivers it.
    await within(20, channel.basic_publish("", queue, b"3000"), "last publish")
    await drain_check(collector, publisher.confirmed | {3000})
    assert collector.ended is None and consumer.is_active
    metric(
        f"kills: 3 mid-stream (unconfirmed at each kill: {at_loss}; carried over "
        f"per connection: {dict(sorted(publisher.carried.items()))}), 3000 confirmed, "
        f"0 lost, {collector.duplicates} duplicates delivered"
    )


@on_each_adapter
async def test_topology_is_back_after_a_kill(clients: Clients, proxy: TcpProxy) -> None:
    name = unique("topo")
    source, middle, queue = unique("src"), unique("mid"), unique("q")
    # Through the proxy, so that the test can hold the reconnect off and look at the broker
    # in between: with an exclusive queue at the end of auto-delete exchanges, the kill
    # takes the whole chain away, and only the replay can bring it back.
    client, watch = await clients.start(
        proxy.url(f"connection_name={name}"), retry_policy=lambda a: 0.2
    )
    ch = await within(20, client.channel(), "channel")
    await within(10, ch.exchange_declare(source, "direct", auto_delete=True), "x")
    await within(10, ch.exchange_declare(middle, "fanout", auto_delete=True), "x")
    await within(10, ch.exchange_bind(middle, source, routing_key="rk"), "x2x bind")
    await within(10, ch.queue_declare(queue, exclusive=True), "queue")
    await within(10, ch.queue_bind(queue, middle), "queue bind")
    await within(10, ch.basic_qos(prefetch_count=3), "qos")
    await within(10, ch.confirm_delivery(), "confirm")
    consumer = await within(10, ch.basic_consume(queue), "consume")
    recovered = len(watch.recovered)

    proxy.refuse(reset=False)  # new connections are refused until resume()
    await kill(name)
    await watch.lost_after(0)
    for what in ({"queue": queue}, {"exchange": middle}, {"exchange": source}):
        for _ in range(50):
            if not await exists(**what):
                break
            await sleep(0.1)
        assert not await exists(**what), f"{what} outlived the connection"

    proxy.resume()
    await watch.recovered_after(recovered)
    # A mandatory publish routed source -> middle -> queue proves both bindings are back.
    for i in range(5):
        await within(10, ch.basic_publish(source, "rk", b"%d" % i, mandatory=True), "publish")
    with pytest.raises(UnroutableError):
        await within(10, ch.basic_publish(source, "other-key", b"x", mandatory=True), "publish")
    # prefetch_count=3 is back: three deliveries, then nothing until one is acked.
    got = [await within(10, consumer.get(), "get") for _ in range(3)]
    assert [m.body for m in got] == [b"0", b"1", b"2"]
    assert await within(10, consumer.get(timeout=0.5), "get") is None
    got[0].ack()
    fourth = await within(10, consumer.get(timeout=5), "get")
    assert fourth is not None and fourth.body == b"3"
    # Confirm mode is back: the channel on the new connection has it selected.
    assert ch._inner is not None and ch._inner.publisher_confirms
    assert consumer.is_active and client.connections == 2


@on_each_adapter
async def test_server_named_queue_is_renamed_and_the_consumer_follows(clients: Clients) -> None:
    name = unique("named")
    exchange = unique("x")
    client, watch = await clients.start(
        f"{AMQP}?connection_name={name}", retry_policy=lambda a: 0.2
    )
    ch = await within(20, client.channel(), "channel")
    await within(10, ch.exchange_declare(exchange, "fanout", auto_delete=True), "x")
    ok = await within(10, ch.queue_declare("", exclusive=True), "queue")
    original = ok.queue
    await within(10, ch.queue_bind(original, exchange), "bind")
    consumer = await within(10, ch.basic_consume(original), "consume")
    await within(10, ch.basic_publish(exchange, "", b"before"), "publish")
    assert (await within(10, consumer.get(), "get")).body == b"before"
    recovered = len(watch.recovered)

    await kill(name)
    await watch.recovered_after(recovered)
    renamed = (await within(10, ch.queue_declare(original, passive=True), "passive")).queue
    assert renamed != original and renamed.startswith("amq.gen-")
    assert not await exists(queue=original)  # exclusive: it died with the old connection
    # Through the exchange, and through the default exchange by the name the user holds.
    await within(10, ch.basic_publish(exchange, "", b"via exchange"), "publish")
    await within(10, ch.basic_publish("", original, b"via default exchange"), "publish")
    bodies = [(await within(10, consumer.get(), "get")).body for _ in range(2)]
    assert sorted(bodies) == [b"via default exchange", b"via exchange"]


@on_each_adapter
async def test_deleted_entities_are_not_replayed(clients: Clients) -> None:
    name = unique("deleted")
    kept, dropped = clients.delete_later(unique("kept")), clients.delete_later(unique("gone"))
    exchange = unique("x")
    client, watch = await clients.start(
        f"{AMQP}?connection_name={name}", retry_policy=lambda a: 0.2
    )
    ch = await within(20, client.channel(), "channel")
    await within(10, ch.queue_declare(kept, arguments=EXPIRES), "queue")
    await within(10, ch.queue_declare(dropped, arguments=EXPIRES), "queue")
    await within(10, ch.exchange_declare(exchange, "fanout"), "exchange")
    await within(10, ch.queue_bind(kept, exchange), "bind")
    await within(10, ch.queue_delete(dropped), "queue_delete")
    await within(10, ch.exchange_delete(exchange), "exchange_delete")
    recovered = len(watch.recovered)

    await kill(name)
    await watch.recovered_after(recovered)
    assert await exists(queue=kept)
    assert not await exists(queue=dropped)
    assert not await exists(exchange=exchange)


@on_each_adapter
async def test_ack_of_a_message_from_a_dead_connection_is_dropped(clients: Clients) -> None:
    name = unique("ack")
    queue = clients.delete_later(unique("q"))
    client, watch = await clients.start(
        f"{AMQP}?connection_name={name}", retry_policy=lambda a: 0.2
    )
    ch = await open_channel(client, queue, arguments=EXPIRES)
    consumer = await within(10, ch.basic_consume(queue), "consume")
    await within(10, ch.basic_publish("", queue, b"only one"), "publish")
    stale = await within(10, consumer.get(), "get")
    assert not stale.redelivered
    recovered = len(watch.recovered)

    await kill(name)
    await watch.recovered_after(recovered)
    again = await within(10, consumer.get(), "redelivery")
    assert again.body == b"only one" and again.redelivered
    assert again.delivery_tag == stale.delivery_tag  # same tag, a different channel

    stale.ack()  # a no-op: it must not ack `again`, which reuses the tag
    await sleep(0.3)
    assert await queue_counts(queue) == (0, 1)
    again.ack()
    for _ in range(50):
        if await queue_counts(queue) == (0, 0):
            break
        await sleep(0.1)
    assert await queue_counts(queue) == (0, 0)
