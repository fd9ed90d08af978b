"""Network faults through a loopback :class:`~tests.integration.faults.TcpProxy`: a stall
found by heartbeats, resets, a handshake cut short, and publishes made during an outage."""

from __future__ import annotations

import time

import pytest

from tests.integration.faults import TcpProxy
from tests.integration.recovery.support import (
    EXPIRES,
    Clients,
    Collector,
    Publisher,
    done,
    drain_check,
    metric,
    on_each_adapter,
    open_channel,
    queue_counts,
    sleep,
    unique,
    within,
)
from txamqp091.exceptions import AMQPHeartbeatTimeout, PublishTimeout, StreamLostError

pytestmark = pytest.mark.broker


@on_each_adapter
async def test_stall_is_detected_by_heartbeats_then_recovered(
    clients: Clients, proxy: TcpProxy
) -> None:
    queue = clients.delete_later(unique("q"))
    heartbeat = 2
    client, watch = await clients.start(
        proxy.url(f"heartbeat={heartbeat}&stack_timeout=5"), retry_policy=lambda a: 0.25
    )
    ch = await open_channel(client, queue, arguments=EXPIRES)
    consumer = await within(10, ch.basic_consume(queue), "consume")
    await within(10, ch.basic_publish("", queue, b"before"), "publish")
    (await within(10, consumer.get(), "get")).ack()
    recovered = len(watch.recovered)

    proxy.stall()
    stalled_at = time.monotonic()
    published = ch.basic_publish("", queue, b"during the stall")
    await watch.lost_after(0, timeout=4 * heartbeat + 5)
    detected = watch.lost[0][0] - stalled_at
    assert isinstance(watch.lost[0][1], AMQPHeartbeatTimeout)
    assert detected <= 2 * heartbeat + 1.5, detected
    proxy.resume()
    await watch.recovered_after(recovered)
    await within(20, published, "publish made during the stall")
    assert (await within(10, consumer.get(), "get")).body == b"during the stall"
    metric(f"stall detected after {detected:.2f} s (heartbeat={heartbeat})")


@on_each_adapter
async def test_reset_connection_recovers(clients: Clients, proxy: TcpProxy) -> None:
    queue = clients.delete_later(unique("q"))
    client, watch = await clients.start(proxy.url("heartbeat=10"), retry_policy=lambda a: 0.2)
    ch = await open_channel(client, queue, arguments=EXPIRES)
    consumer = await within(10, ch.basic_consume(queue), "consume")
    collector = Collector(consumer)
    publisher = Publisher(ch, "", queue, window=20)

    async def reset_at(i: int) -> None:
        if i in (300, 700):
            count = len(watch.recovered)
            proxy.reset()
            await watch.recovered_after(count)

    await within(60, publisher.run(range(1000), before=reset_at), "publishing")
    assert publisher.failed == [] and len(publisher.confirmed) == 1000
    assert [type(why) for _, why in watch.lost] == [StreamLostError, StreamLostError]
    await drain_check(collector, publisher.confirmed)
    assert consumer.is_active


@on_each_adapter
async def test_cut_mid_handshake_is_a_failed_attempt_then_retried(
    clients: Clients, proxy: TcpProxy
) -> None:
    queue = clients.delete_later(unique("q"))
    failed: list[BaseException] = []
    client, watch = await clients.start(proxy.url(), retry_policy=lambda a: 0.2)
    client.on_attempt_failed.append(lambda params, error: failed.append(error))
    ch = await open_channel(client, queue, arguments=EXPIRES)
    accepted = proxy.accepted
    recovered = len(watch.recovered)

    # The next two connections end 100 bytes in: inside Connection.Start, mid-handshake.
    proxy.cut_after(100, connections=2)
    proxy.reset()
    await watch.recovered_after(recovered)
    assert proxy.cut == 2
    assert proxy.accepted == accepted + 3
    assert [type(e) for e in failed] == [StreamLostError, StreamLostError]
    assert client.connections == 2 and client.failure is None
    await within(10, ch.basic_publish("", queue, b"after the cuts"), "publish")


@on_each_adapter
async def test_publish_during_outage_waits_for_the_next_connection(
    clients: Clients, proxy: TcpProxy
) -> None:
    queue = clients.delete_later(unique("q"))
    client, watch = await clients.start(proxy.url(), retry_policy=lambda a: 0.2, publish_timeout=10)
    ch = await open_channel(client, queue, arguments=EXPIRES)

    proxy.refuse()
    await watch.lost_after(0)
    waiting = ch.basic_publish("", queue, b"waited")
    await sleep(1.5)
    assert not done(waiting)  # parked, not failed
    proxy.resume()
    await within(15, waiting, "parked publish")
    assert await queue_counts(queue) == (1, 0)


@on_each_adapter
async def test_publish_fails_with_publish_timeout_when_no_connection_comes(
    clients: Clients, proxy: TcpProxy
) -> None:
    queue = clients.delete_later(unique("q"))
    publish_timeout = 1.5
    client, watch = await clients.start(
        proxy.url(), retry_policy=lambda a: 0.2, publish_timeout=publish_timeout
    )
    ch = await open_channel(client, queue, arguments=EXPIRES)

    proxy.refuse()
    await watch.lost_after(0)
    started = time.monotonic()
    with pytest.raises(PublishTimeout):
        await within(10, ch.basic_publish("", queue, b"too late"), "publish")
    elapsed = time.monotonic() - started
    assert publish_timeout - 0.1 <= elapsed <= publish_timeout + 1.5, elapsed

    # When the broker is back, the timed-out message is not sent after all.
    recovered = len(watch.recovered)
    proxy.resume()
    await watch.recovered_after(recovered)
    await within(10, ch.basic_publish("", queue, b"next"), "publish")
    assert await queue_counts(queue) == (1, 0)
    got = await within(10, ch.basic_get(queue, auto_ack=True), "basic_get")
    assert got is not None and got.body == b"next"
