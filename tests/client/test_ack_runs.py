"""Publisher acks that follow each other in one read, on both adapters.

The client settles a run of acks of one channel as the one ``multiple`` ack that
confirms the same publishes (``ConnectionLogic._dispatch_acks``). These reads are
the ones where merging them wrongly would show: a single ack after a gap, single
acks only, an ack of everything (tag 0) followed by another, acks of two channels
taking turns, and a Basic.Return or a delivery between two acks.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from tests.client.wires import WIRES, TwistedWire
from txamqp091.core import spec
from txamqp091.exceptions import ChannelClosedByBroker, UnroutableError

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(params=WIRES, ids=lambda w: w.name)
async def wire(request: pytest.FixtureRequest) -> TwistedWire:
    wire: TwistedWire = request.param()
    return wire


async def confirming_channel(wire: TwistedWire, conn: Any, channel_id: int) -> Any:
    d = conn.channel()
    await wire.raw()
    await wire.feed(wire.frames.channel_open_ok(channel_id))
    ch = await wire.result(d)
    d = ch.confirm_delivery()
    await wire.raw()
    await wire.feed(wire.frames.confirm_select_ok(channel_id))
    await wire.result(d)
    return ch


def record(wire: TwistedWire, waiter: Any, order: list[Any], name: Any) -> None:
    """Append ``name`` to ``order`` when ``waiter`` settles (ok or not)."""
    if wire.name == "twisted":
        waiter.addBoth(lambda result: order.append(name) or result)
    else:
        waiter.add_done_callback(lambda _: order.append(name))


async def publishes(
    wire: TwistedWire, ch: Any, n: int, order: list[Any], tag: str = ""
) -> list[Any]:
    waiters = []
    for seq in range(1, n + 1):
        waiter = ch.basic_publish("", "q", b"m%d" % seq)
        record(wire, waiter, order, f"{tag}{seq}")
        waiters.append(waiter)
    await wire.raw()
    return waiters


async def test_a_run_settles_what_each_of_its_acks_names_in_order(wire: TwistedWire) -> None:
    conn = await wire.open()
    ch = await confirming_channel(wire, conn, 1)
    order: list[Any] = []
    waiters = await publishes(wire, ch, 10, order)
    f = wire.frames
    await wire.feed(f.ack(1, 3, True) + f.ack(1, 4) + f.ack(1, 7, True))
    assert order == ["1", "2", "3", "4", "5", "6", "7"]
    assert not any(wire.done(w) for w in waiters[7:])
    await wire.feed(f.ack(1, 10, True))
    assert order == [str(n) for n in range(1, 11)]
    assert [await wire.result(w) for w in waiters] == [None] * 10


async def test_single_acks_settle_only_their_own_publishes(wire: TwistedWire) -> None:
    conn = await wire.open()
    ch = await confirming_channel(wire, conn, 1)
    order: list[Any] = []
    waiters = await publishes(wire, ch, 5, order)
    f = wire.frames
    await wire.feed(f.ack(1, 2) + f.ack(1, 3))
    assert order == ["2", "3"]
    assert [wire.done(w) for w in waiters] == [False, True, True, False, False]
    await wire.feed(f.ack(1, 5, True))
    assert order == ["2", "3", "1", "4", "5"]


async def test_a_single_ack_after_a_gap_leaves_the_gap_unconfirmed(wire: TwistedWire) -> None:
    conn = await wire.open()
    ch = await confirming_channel(wire, conn, 1)
    order: list[Any] = []
    waiters = await publishes(wire, ch, 6, order)
    f = wire.frames
    await wire.feed(f.ack(1, 2, True) + f.ack(1, 4) + f.ack(1, 6))
    assert order == ["1", "2", "4", "6"]
    assert [wire.done(w) for w in waiters] == [True, True, False, True, False, True]


async def test_an_ack_of_everything_is_not_cut_short_by_the_ack_after_it(
    wire: TwistedWire,
) -> None:
    conn = await wire.open()
    ch = await confirming_channel(wire, conn, 1)
    order: list[Any] = []
    waiters = await publishes(wire, ch, 5, order)
    f = wire.frames
    # Tag 0 with multiple: every unconfirmed publish (the spec's "all outstanding").
    await wire.feed(f.ack(1, 0, True) + f.ack(1, 2, True))
    assert order == ["1", "2", "3", "4", "5"]
    assert all(wire.done(w) for w in waiters)


async def test_acks_of_two_channels_taking_turns_settle_in_the_brokers_order(
    wire: TwistedWire,
) -> None:
    conn = await wire.open()
    one = await confirming_channel(wire, conn, 1)
    two = await confirming_channel(wire, conn, 2)
    order: list[Any] = []
    await publishes(wire, one, 4, order, "a")
    await publishes(wire, two, 4, order, "b")
    f = wire.frames
    await wire.feed(
        f.ack(1, 1, True) + f.ack(2, 2, True) + f.ack(2, 3) + f.ack(1, 3, True) + f.ack(1, 4)
    )
    assert order == ["a1", "b1", "b2", "b3", "a2", "a3", "a4"]


async def test_a_return_between_two_acks_fails_the_publish_it_returns(
    wire: TwistedWire,
) -> None:
    conn = await wire.open()
    ch = await confirming_channel(wire, conn, 1)
    kept = ch.basic_publish("", "q", b"kept", mandatory=True)
    lost = ch.basic_publish("", "nowhere", b"lost", mandatory=True)
    await wire.raw()
    f = wire.frames
    # The broker returns a mandatory message before it acks it: the return must be
    # matched before the ack after it settles that publish.
    await wire.feed(
        f.ack(1, 1, True) + f.basic_return(1, b"lost", routing_key="nowhere") + f.ack(1, 2)
    )
    assert await wire.result(kept) is None
    with pytest.raises(UnroutableError):
        await wire.result(lost)


async def test_acks_before_the_channel_closes_settle_before_it_fails_the_rest(
    wire: TwistedWire,
) -> None:
    conn = await wire.open()
    ch = await confirming_channel(wire, conn, 1)
    order: list[Any] = []
    waiters = await publishes(wire, ch, 4, order)
    f = wire.frames
    await wire.feed(
        f.ack(1, 1, True) + f.ack(1, 2) + f.channel_close(1, 406, "PRECONDITION_FAILED")
    )
    assert order == ["1", "2", "3", "4"]
    assert [await wire.result(w) for w in waiters[:2]] == [None, None]
    for waiter in waiters[2:]:
        with pytest.raises(ChannelClosedByBroker):
            await wire.result(waiter)


async def test_a_delivery_between_two_acks_reaches_its_consumer(wire: TwistedWire) -> None:
    conn = await wire.open()
    ch = await confirming_channel(wire, conn, 1)
    seen: list[bytes] = []
    d = ch.basic_consume("q", on_message_callback=lambda m: seen.append(m.body), consumer_tag="c")
    await wire.raw()
    await wire.feed(wire.frames.consume_ok(1, "c"))
    await wire.result(d)
    order: list[Any] = []
    await publishes(wire, ch, 4, order)
    f = wire.frames
    await wire.feed(f.ack(1, 2, True) + f.deliver(1, "c", 1, b"in between") + f.ack(1, 4, True))
    assert order == ["1", "2", "3", "4"]
    assert seen == [b"in between"]


async def test_an_ack_for_a_publish_never_sent_still_closes_the_connection(
    wire: TwistedWire,
) -> None:
    conn = await wire.open()
    ch = await confirming_channel(wire, conn, 1)
    order: list[Any] = []
    await publishes(wire, ch, 2, order)
    f = wire.frames
    # The second ack of the run names publish 9: the core refuses it (503) whatever
    # the client would have merged it into.
    await wire.feed(f.ack(1, 1, True) + f.ack(1, 9, True))
    close = [m for m in await wire.methods() if isinstance(m, spec.ConnectionClose)]
    assert [m.reply_code for m in close] == [spec.COMMAND_INVALID]
