"""A read's deliveries, routed as runs (``ChannelLogic._on_deliveries``).

The connection hands a channel the deliveries of one read that follow each other on
it, and the channel buffers them for a consumer loop with its checks made once per
consumer and run. That must do exactly what delivering them one by one through
``_on_delivery`` does (the reference, ``one_by_one`` below), whatever the read holds:
several channels and consumers taking turns, a waiting ``get()``, a callback that
acks, a consumer being cancelled, an unknown consumer tag, the consumer's and the
connection's buffer bounds reached in the middle of a run, and other events between
deliveries. The Hypothesis test compares both on the same scripted reads (Twisted
adapter: the routing is shared code); the others check the cases by name on both
adapters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.client.wires import WIRES, TwistedWire
from txamqp091 import Message
from txamqp091.client.channel import ChannelLogic
from txamqp091.core import spec
from txamqp091.core.testing import parse_client_frames


def one_by_one(self: Any, message: Message, remaining: Iterator[Any]) -> Any:
    """The reference: each delivery of the run through _on_delivery, in order."""
    channel_id = message.channel_id
    while True:
        self._on_delivery(message)
        following = next(remaining, None)
        if type(following) is not Message or following.channel_id != channel_id:
            return following
        message = following


def run_sync(coro: Any) -> Any:
    """Run a coroutine that never suspends (the Twisted wire under a Clock)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine suspended")


#: Consumers per channel: a get() loop ("get"), a callback that acks ("cb"), one being
#: cancelled ("cancel": Basic.Cancel sent, no Cancel-Ok yet) and a tag nobody has ("x").
TAGS = ("get", "cb", "cancel", "x")

scenario = st.fixed_dictionaries(
    {
        "consumer_bound": st.integers(1, 6),
        "connection_bound": st.integers(2, 12),
        "waiting": st.lists(st.integers(0, 2), min_size=2, max_size=2),
        "reads": st.lists(
            st.tuples(
                st.lists(
                    st.one_of(
                        st.tuples(st.sampled_from([1, 2]), st.sampled_from(TAGS)),
                        st.just("heartbeat"),
                    ),
                    min_size=1,
                    max_size=20,
                ),
                # get() calls on each channel's "get" consumer after the read
                st.tuples(st.integers(0, 4), st.integers(0, 4)),
            ),
            min_size=1,
            max_size=3,
        ),
    }
)


def play(case: dict[str, Any], reference: bool) -> dict[str, Any]:
    """``case``'s read on a fresh Twisted wire; what the client did with it."""
    wire = TwistedWire()
    seen: list[Any] = []
    original = ChannelLogic._on_deliveries
    if reference:
        ChannelLogic._on_deliveries = one_by_one  # type: ignore[method-assign]
    try:
        return run_sync(_play(wire, case, seen))
    finally:
        ChannelLogic._on_deliveries = original  # type: ignore[method-assign]


async def _play(wire: TwistedWire, case: dict[str, Any], seen: list[Any]) -> dict[str, Any]:
    f = wire.frames
    conn = await wire.open()
    conn.max_buffered = case["connection_bound"]
    consumers: dict[tuple[int, str], Any] = {}
    for channel_id in (1, 2):
        d = conn.channel()
        await wire.raw()
        await wire.feed(f.channel_open_ok(channel_id))
        ch = await wire.result(d)
        for tag in TAGS[:3]:
            callback = None
            if tag == "cb":

                def callback(m: Message, ch_id: int = channel_id) -> None:
                    seen.append(("cb", ch_id, m.delivery_tag))
                    m.ack()

            d = ch.basic_consume("q", on_message_callback=callback, consumer_tag=tag)
            await wire.raw()
            await wire.feed(f.consume_ok(channel_id, tag))
            consumer = await wire.result(d)
            consumer.max_buffered = case["consumer_bound"]
            consumers[channel_id, tag] = consumer
        consumers[channel_id, "cancel"].cancel()
        for _ in range(case["waiting"][channel_id - 1]):
            consumers[channel_id, "get"].get().addCallback(
                lambda m, ch_id=channel_id: seen.append(("got", ch_id, m.delivery_tag))
            )
    await wire.raw()
    tags = {1: 0, 2: 0}
    written = []
    states = []
    for read, gets in case["reads"]:
        data = b""
        for item in read:
            if item == "heartbeat":
                data += f.heartbeat()
                continue
            channel_id, tag = item
            tags[channel_id] += 1
            data += f.deliver(channel_id, tag, tags[channel_id], b"m")
        wire.protocol.dataReceived(data)  # one read, not settled yet: the read's own write
        written += [
            (
                frame.channel_id,
                type(frame.payload).__name__,
                getattr(frame.payload, "delivery_tag", None),
            )
            for frame in parse_client_frames(wire.transport.value())
        ]
        wire.transport.clear()
        states.append((conn._buffered, conn._reading_paused, conn._paused_by_total))
        for channel_id, n in zip((1, 2), gets):
            for _ in range(n):
                consumers[channel_id, "get"].get().addCallback(
                    lambda m, ch_id=channel_id: seen.append(("got", ch_id, m.delivery_tag))
                )
    return {
        "states": states,
        "full_consumers": sorted(key for key, c in consumers.items() if c in conn._full_consumers),
        "seen": seen,
        "written": written,
        "buffers": {
            key: [m.delivery_tag for m in c._buffer] for key, c in sorted(consumers.items())
        },
        "full": {key: c._full for key, c in sorted(consumers.items())},
        "bound": {key: c._channel is not None for key, c in sorted(consumers.items())},
        "channels": {
            key: [
                m._channel is c._channel and m._core_channel is c._channel._core for m in c._buffer
            ]
            for key, c in sorted(consumers.items())
        },
        "buffered": conn._buffered,
        "paused": conn._reading_paused,
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario)
def test_runs_do_what_delivering_one_by_one_does(case: dict[str, Any]) -> None:
    assert play(case, reference=False) == play(case, reference=True)


# -- by name, both adapters --------------------------------------------------------------------


@pytest_asyncio.fixture(params=WIRES, ids=lambda w: w.name)
async def wire(request: pytest.FixtureRequest) -> TwistedWire:
    wire: TwistedWire = request.param()
    return wire


async def consuming(wire: TwistedWire, conn: Any, channel_id: int, tags: list[str]) -> list[Any]:
    d = conn.channel()
    await wire.raw()
    await wire.feed(wire.frames.channel_open_ok(channel_id))
    ch = await wire.result(d)
    consumers = []
    for tag in tags:
        d = ch.basic_consume("q", consumer_tag=tag)
        await wire.raw()
        await wire.feed(wire.frames.consume_ok(channel_id, tag))
        consumers.append(await wire.result(d))
    return consumers


def buffered(consumer: Any) -> list[int]:
    return [m.delivery_tag for m in consumer._buffer]


@pytest.mark.asyncio
async def test_two_channels_and_two_consumers_taking_turns_keep_each_ones_order(
    wire: TwistedWire,
) -> None:
    conn = await wire.open()
    a, b = await consuming(wire, conn, 1, ["a", "b"])
    (c,) = await consuming(wire, conn, 2, ["c"])
    f = wire.frames
    read = [(1, "a", 1), (1, "a", 2), (1, "b", 3), (2, "c", 1), (1, "a", 4), (2, "c", 2)]
    await wire.feed(b"".join(f.deliver(ch, tag, n, b"m") for ch, tag, n in read))
    assert (buffered(a), buffered(b), buffered(c)) == ([1, 2, 4], [3], [1, 2])
    assert conn._buffered == 6
    got = [await wire.result(a.get()) for _ in range(3)]
    assert [m.delivery_tag for m in got] == [1, 2, 4]
    got[2].ack()
    assert [(m.delivery_tag, m.multiple) for m in await wire.methods()] == [(4, False)]
    assert conn._buffered == 3


@pytest.mark.asyncio
async def test_a_consumer_over_its_bound_mid_run_stops_the_reading(wire: TwistedWire) -> None:
    conn = await wire.open()
    (a,) = await consuming(wire, conn, 1, ["a"])
    a.max_buffered = 3
    f = wire.frames
    await wire.feed(b"".join(f.deliver(1, "a", n, b"m") for n in range(1, 6)))
    assert buffered(a) == [1, 2, 3, 4, 5]  # nothing dropped: the reading stops
    assert a._full and conn._reading_paused
    for _ in range(4):
        await wire.result(a.get())
    assert not a._full and not conn._reading_paused


@pytest.mark.asyncio
async def test_the_connection_bound_mid_run_stops_the_reading(wire: TwistedWire) -> None:
    conn = await wire.open()
    a, b = await consuming(wire, conn, 1, ["a", "b"])
    conn.max_buffered = 4
    f = wire.frames
    await wire.feed(b"".join(f.deliver(1, "ab"[n % 2], n, b"m") for n in range(1, 7)))
    assert (buffered(a), buffered(b)) == ([2, 4, 6], [1, 3, 5])
    assert conn._buffered == 6 and conn._reading_paused


@pytest.mark.asyncio
async def test_a_waiting_get_takes_the_first_of_a_run_and_the_rest_wait(wire: TwistedWire) -> None:
    conn = await wire.open()
    (a,) = await consuming(wire, conn, 1, ["a"])
    waiting = a.get()
    f = wire.frames
    await wire.feed(b"".join(f.deliver(1, "a", n, b"m") for n in (1, 2, 3)))
    assert (await wire.result(waiting)).delivery_tag == 1
    assert buffered(a) == [2, 3] and conn._buffered == 2


@pytest.mark.asyncio
async def test_a_run_then_the_channels_close_in_one_read(wire: TwistedWire) -> None:
    conn = await wire.open()
    (a,) = await consuming(wire, conn, 1, ["a"])
    f = wire.frames
    close = f.method(1, spec.ChannelClose(404, "NOT_FOUND", 60, 20))
    await wire.feed(f.deliver(1, "a", 1, b"m") + f.deliver(1, "a", 2, b"m") + close)
    assert [m.delivery_tag for m in [await wire.result(a.get()) for _ in range(2)]] == [1, 2]
    with pytest.raises(Exception, match="NOT_FOUND"):
        await wire.result(a.get())
