"""A channel error fails only the call that caused it: the surviving channel reopens on
the same connection with its topology, and nothing else fails or is lost."""

from __future__ import annotations

import pytest

from tests.integration.recovery.support import (
    AMQP,
    EXPIRES,
    Clients,
    on_each_adapter,
    open_channel,
    outcomes,
    unique,
    within,
)
from txamqp091.exceptions import ChannelClosedByBroker

pytestmark = pytest.mark.broker


@on_each_adapter
async def test_channel_error_fails_only_that_call(clients: Clients) -> None:
    queue = clients.delete_later(unique("q"))
    client, watch = await clients.start(AMQP)
    ch = await open_channel(client, queue, arguments=EXPIRES)
    consumer = await within(10, ch.basic_consume(queue), "consume")
    missing = unique("missing")

    with pytest.raises(ChannelClosedByBroker) as info:
        await within(10, ch.queue_declare(missing, passive=True), "passive declare")
    assert info.value.reply_code == 404

    # The channel is back (a new incarnation on the same connection) with its topology.
    assert ch.is_open
    await within(10, ch.basic_publish("", queue, b"after the error"), "publish")
    assert (await within(10, ch.queue_declare(queue, arguments=EXPIRES), "declare")).queue == queue
    message = await within(10, consumer.get(), "get")
    assert message.body == b"after the error"
    message.ack()
    assert client.connections == 1 and watch.lost == []
    # The failed passive declare was not recorded: it is not replayed on the next channel.
    with pytest.raises(ChannelClosedByBroker):
        await within(10, ch.exchange_declare(unique("missing-x"), passive=True), "passive")
    await within(10, ch.basic_publish("", queue, b"still fine"), "publish")
    assert (await within(10, consumer.get(), "get")).body == b"still fine"


@on_each_adapter
async def test_publish_to_a_missing_exchange_fails_alone(clients: Clients) -> None:
    """Among unconfirmed publishes, the one to a missing exchange fails with 404 and the
    others go out again on the reopened channel: none lost, none failed for nothing."""
    queue = clients.delete_later(unique("q"))
    client, watch = await clients.start(AMQP)
    ch = await open_channel(client, queue, arguments=EXPIRES)
    ghost = unique("no-such-exchange")
    sent = [
        ch.basic_publish(ghost, "", b"bad") if i == 15 else ch.basic_publish("", queue, b"%d" % i)
        for i in range(30)
    ]
    errors = await within(20, outcomes(sent), "publishes")
    assert [i for i, error in enumerate(errors) if error is not None] == [15]
    error = errors[15]
    assert isinstance(error, ChannelClosedByBroker) and error.reply_code == 404
    assert ghost in error.reply_text
    got = []
    while (message := await within(10, ch.basic_get(queue, auto_ack=True), "get")) is not None:
        got.append(int(message.body))
    assert set(got) == set(range(30)) - {15}  # duplicates possible, losses not
    assert ch.is_open and client.connections == 1 and watch.lost == []


@on_each_adapter
async def test_unknown_delivery_tag_fails_no_operation(clients: Clients) -> None:
    queue = clients.delete_later(unique("q"))
    client, watch = await clients.start(AMQP)
    ch = await open_channel(client, queue, arguments=EXPIRES)
    ch.basic_ack(999)  # the broker closes the channel: 406 unknown delivery tag
    declared = ch.queue_declare(queue, arguments=EXPIRES)
    published = ch.basic_publish("", queue, b"fine")
    assert (await within(10, declared, "declare")).queue == queue
    await within(10, published, "publish")
    assert ch.is_open and watch.lost == []


@on_each_adapter
async def test_channel_error_keeps_the_server_named_queue(clients: Clients) -> None:
    """A reopen on the same connection must not declare a server-named queue again: it
    still exists, and a second one would take the messages away from the consumer."""
    client, watch = await clients.start(AMQP)
    ch = await within(20, client.channel(), "channel")
    original = (await within(10, ch.queue_declare("", exclusive=True), "declare")).queue
    consumer = await within(10, ch.basic_consume(original), "consume")
    await within(10, ch.confirm_delivery(), "confirm")
    await within(10, ch.basic_publish("", original, b"before"), "publish")
    with pytest.raises(ChannelClosedByBroker):
        await within(10, ch.queue_declare(unique("missing"), passive=True), "passive")
    await within(10, ch.basic_publish("", original, b"after"), "publish")
    bodies = [(await within(10, consumer.get(), "get")).body for _ in range(2)]
    assert bodies == [b"before", b"after"]
    renamed = (await within(10, ch.queue_declare(original, passive=True), "passive")).queue
    assert renamed == original
