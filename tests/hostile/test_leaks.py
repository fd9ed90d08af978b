"""Kill-and-reconnect cycles through each adapter's recovering client leave nothing behind.

Each cycle resets the client's TCP connection (an RST from a loopback
:class:`~tests.integration.faults.TcpProxy` in front of RabbitMQ), waits until
the surviving channel is recovered, then publishes one message and takes it
from the surviving consumer. After a few warm-up cycles a baseline is taken;
after the measured cycles these must be back at it (within 2): open file
descriptors, the broker's connections and channels for this client (by
``connection_name``), pending Deferreds or futures, and scheduled timers; and
resident memory may grow by less than 5 MB. The figures are printed (``-s``).

Not measured here: what the test harness itself keeps (pytest's captured log
records, so the client's warnings are turned off for the Tornado run; Twisted
buffers up to 65,536 log events until an application begins logging).

The suite runs 20 cycles; the issue's figure is 1,000::

    TXAMQP091_LEAK_CYCLES=1000 python -m pytest tests/hostile/test_leaks.py -s
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
import uuid
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from tests.hostile.drivers import AsyncioDriver, TwistedDriver
from tests.hostile.harness import Driver
from tests.integration.faults import TcpProxy, _erlang_binary, rabbitmqctl

pytestmark = pytest.mark.broker

CYCLES = int(os.environ.get("TXAMQP091_LEAK_CYCLES", "20"))
WARMUP = 5
TOLERANCE = 2
RSS_LIMIT_KB = 5 * 1024


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def broker_counts(name: str) -> tuple[int, int]:
    """(connections, channels) the broker has for connections named ``name``."""
    expr = (
        f"Name = {_erlang_binary(name)}, "
        "Ps = [P || P <- rabbit_networking:connections(), "
        "[{client_properties, Props}] <- "
        "[catch rabbit_networking:connection_info(P, [client_properties])], "
        "is_list(Props), "
        'lists:keyfind(<<"connection_name">>, 1, Props) =:= '
        '{<<"connection_name">>, longstr, Name}], '
        "Chs = lists:sum([C || P <- Ps, [{channels, C}] <- "
        "[catch rabbit_networking:connection_info(P, [channels])]]), "
        'io_lib:format("~b ~b", [length(Ps), Chs]).'
    )
    out = rabbitmqctl("eval", expr).stdout.strip().splitlines()[-1].strip('"')
    connections, channels = out.split()
    return int(connections), int(channels)


def pending_deferreds() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, defer.Deferred) and not o.called)


def pending_futures() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, asyncio.Future) and not o.done())


async def snapshot(driver: Driver, name: str, pending: Any) -> dict[str, int]:
    await driver.sleep(0.2)  # let closed transports and their callbacks finish
    gc.collect()
    connections, channels = await driver.in_thread(broker_counts, name)
    if os.environ.get("TXAMQP091_LEAK_TYPES"):  # which types grew: for finding a leak
        from collections import Counter

        counts = Counter(type(o).__qualname__ for o in gc.get_objects())
        previous = getattr(snapshot, "counts", None)
        if previous is not None:
            print("growth:", (counts - previous).most_common(15))
        snapshot.counts = counts  # type: ignore[attr-defined]
    return {
        "fds": open_fds(),
        "broker_connections": connections,
        "broker_channels": channels,
        "pending": pending(),
        "timers": len(driver.timers()),
        "rss_kb": rss_kb(),
        "objects": len(gc.get_objects()),
    }


async def eventually(driver: Driver, predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await driver.sleep(0.002)


async def cycles(
    driver: Driver, proxy: TcpProxy, ch: Any, consumer: Any, queue: str, recovered: list[Any]
) -> None:
    before = len(recovered)
    proxy.reset()
    await eventually(driver, lambda: len(recovered) > before, 15, "channel recovery")
    await driver.wait(ch.basic_publish("", queue, b"ping"), 15)
    message = await driver.wait(consumer.get(), 15)
    assert message.body == b"ping"


async def leak_run(
    driver: Driver, proxy: TcpProxy, name: str, ch: Any, recovered: list[Any], pending: Any
) -> dict[str, dict[str, int]]:
    queue = f"txamqp091-leak-{driver.name}-{uuid.uuid4().hex[:8]}"
    await driver.wait(ch.queue_declare(queue, arguments={"x-expires": 600_000}), 15)
    # auto_ack: an ack still in flight when the connection is reset would make the broker
    # redeliver the message, and the consumer would rightly buffer it.
    consumer = await driver.wait(ch.basic_consume(queue, auto_ack=True), 15)
    for _ in range(WARMUP):
        await cycles(driver, proxy, ch, consumer, queue, recovered)
    start = await snapshot(driver, name, pending)
    started = time.monotonic()
    accepted = proxy.accepted
    for _ in range(CYCLES):
        await cycles(driver, proxy, ch, consumer, queue, recovered)
    elapsed = time.monotonic() - started
    # Every cycle was a new TCP connection through the proxy (and so a new AMQP one).
    assert proxy.accepted - accepted == CYCLES
    end = await snapshot(driver, name, pending)
    await driver.wait(ch.queue_delete(queue), 15)
    deltas = {key: end[key] - start[key] for key in start}
    print(
        f"\n{driver.name}: {CYCLES} kill-and-reconnect cycles in {elapsed:.1f} s; "
        f"baseline {start}; deltas {deltas}"
    )
    for key in ("fds", "broker_connections", "broker_channels", "pending", "timers"):
        assert abs(deltas[key]) <= TOLERANCE, (key, start, end)
    assert start["broker_connections"] == 1 and start["broker_channels"] == 1, start
    assert deltas["rss_kb"] < RSS_LIMIT_KB, deltas
    return {"start": start, "end": end, "deltas": deltas}


@pytest_twisted.ensureDeferred
async def test_twisted_service_cycles_leave_nothing_behind() -> None:
    from txamqp091.twisted import AMQPClientService

    name = f"txamqp091-leak-tw-{uuid.uuid4().hex[:8]}"
    with TcpProxy() as proxy:
        service = AMQPClientService(
            reactor, proxy.url(f"connection_name={name}"), retry_policy=lambda attempt: 0.0
        )
        recovered: list[Any] = []
        service.on_recovered.append(recovered.append)
        service.startService()
        try:
            driver = TwistedDriver()
            ch = await driver.wait(service.channel(), 15)
            await leak_run(driver, proxy, name, ch, recovered, pending_deferreds)
        finally:
            await service.stopService()


@pytest.mark.asyncio
async def test_tornado_client_cycles_leave_nothing_behind() -> None:
    from txamqp091.tornado import AMQPClient

    name = f"txamqp091-leak-tor-{uuid.uuid4().hex[:8]}"
    # One warning per lost connection: pytest's log capture would keep every record.
    logger = logging.getLogger("txamqp091")
    level = logger.level
    logger.setLevel(logging.ERROR)
    with TcpProxy() as proxy:
        client = AMQPClient(proxy.url(f"connection_name={name}"), retry_policy=lambda a: 0.0)
        recovered: list[Any] = []
        client.on_recovered.append(recovered.append)
        await asyncio.wait_for(client.start(), 15)
        try:
            driver = AsyncioDriver()
            ch = await driver.wait(client.channel(), 15)
            await leak_run(driver, proxy, name, ch, recovered, pending_futures)
        finally:
            await asyncio.wait_for(client.stop(), 15)
            logger.setLevel(level)
