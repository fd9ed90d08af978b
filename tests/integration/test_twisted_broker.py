"""Every channel operation of the Twisted adapter against the local RabbitMQ.

Each test declares uniquely named queues and exchanges (the ``names``
fixture deletes them afterwards) and runs on the reactor pytest-twisted
drives. Set ``AMQP_URL`` to use another broker.
"""

from __future__ import annotations

import datetime
import decimal
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pika
import pytest
import pytest_twisted
from twisted.internet import defer, reactor, threads
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from txamqp091 import BasicProperties, Message
from txamqp091.exceptions import (
    AMQPConnectionError,
    ChannelClosedByBroker,
    NackError,
    UnroutableError,
)
from txamqp091.twisted import Channel, Connection, connect
from txamqp091.types import (
    Float32,
    Float64,
    Int8,
    Int16,
    Int32,
    Int64,
    LongStr,
    Timestamp,
    UInt8,
    UInt16,
    UInt32,
)

pytestmark = pytest.mark.broker

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def url(**options: Any) -> str:
    query = "&".join(f"{key}={value}" for key, value in options.items())
    return f"{AMQP_URL}{'&' if '?' in AMQP_URL else '?'}{query}" if query else AMQP_URL


class Names:
    """Unique queue and exchange names, deleted after the test."""

    def __init__(self) -> None:
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, label: str = "q") -> str:
        name = f"txamqp091.test.twisted.{label}.{uuid.uuid4().hex}"
        self.queues.append(name)
        return name

    def exchange(self, label: str = "x") -> str:
        name = f"txamqp091.test.twisted.{label}.{uuid.uuid4().hex}"
        self.exchanges.append(name)
        return name

    async def delete_all(self) -> None:
        if not self.queues and not self.exchanges:
            return
        conn = await connect(reactor, AMQP_URL)
        try:
            ch = await conn.channel()
            for queue in self.queues:
                await ch.queue_delete(queue)
            for exchange in self.exchanges:
                await ch.exchange_delete(exchange)
        finally:
            await conn.close()


@pytest_twisted.async_yield_fixture
async def names() -> AsyncIterator[Names]:
    n = Names()
    yield n
    await n.delete_all()


@pytest_twisted.async_yield_fixture
async def conn() -> AsyncIterator[Connection]:
    c = await connect(reactor, url(connection_name="txamqp091-tests"))
    yield c
    if c.is_open:
        await c.close()


@pytest_twisted.async_fixture
async def ch(conn: Connection) -> Channel:
    channel: Channel = await conn.channel()
    return channel


async def drain(ch: Channel, queue: str) -> list[bytes]:
    bodies = []
    while True:
        message = await ch.basic_get(queue, auto_ack=True)
        if message is None:
            return bodies
        bodies.append(message.body)


async def sleep(seconds: float) -> None:
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)  # type: ignore[attr-defined]
    await d


# -- exchanges ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_exchange_declare_bind_unbind_delete(ch: Channel, names: Names) -> None:
    front, back = names.exchange("front"), names.exchange("back")
    queue = names.queue()
    assert await ch.exchange_declare(front, exchange_type="topic") is not None
    await ch.exchange_declare(back, exchange_type="fanout", auto_delete=False)
    await ch.exchange_declare(front, exchange_type="topic", passive=True)
    await ch.queue_declare(queue)
    await ch.queue_bind(queue, back)
    await ch.exchange_bind(back, front, routing_key="orders.*")

    await ch.confirm_delivery()
    await ch.basic_publish(front, "orders.new", b"routed through two exchanges")
    await ch.basic_publish(front, "invoices.new", b"no binding for this")
    assert await drain(ch, queue) == [b"routed through two exchanges"]

    await ch.exchange_unbind(back, front, routing_key="orders.*")
    await ch.basic_publish(front, "orders.new", b"after unbind")
    assert await drain(ch, queue) == []

    await ch.exchange_delete(front)
    await ch.exchange_delete(back, if_unused=False)
    with pytest.raises(ChannelClosedByBroker) as info:
        await ch.exchange_declare(front, passive=True)
    assert info.value.reply_code == 404


# -- queues ---------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_queue_declare_bind_unbind_purge_delete(ch: Channel, names: Names) -> None:
    queue, exchange = names.queue(), names.exchange()
    ok = await ch.queue_declare(queue, arguments={"x-message-ttl": 60000})
    assert (ok.queue, ok.message_count, ok.consumer_count) == (queue, 0, 0)
    server_named = await ch.queue_declare("", exclusive=True)
    assert server_named.queue.startswith("amq.gen-")
    await ch.exchange_declare(exchange)
    await ch.queue_bind(queue, exchange, routing_key="k")
    await ch.confirm_delivery()
    for i in range(3):
        await ch.basic_publish(exchange, "k", b"%d" % i)
    assert (await ch.queue_declare(queue, passive=True)).message_count == 3
    assert (await ch.queue_purge(queue)).message_count == 3
    await ch.queue_unbind(queue, exchange, routing_key="k")
    await ch.basic_publish(exchange, "k", b"unbound")
    await ch.basic_publish("", queue, b"direct")
    assert (await ch.queue_delete(queue)).message_count == 1
    with pytest.raises(ChannelClosedByBroker):
        await ch.queue_declare(queue, passive=True)


@pytest_twisted.ensureDeferred
async def test_passive_declare_of_a_missing_queue_closes_the_channel(
    conn: Connection, ch: Channel
) -> None:
    closed = ch.closed
    missing = f"txamqp091.test.missing.{uuid.uuid4().hex}"
    with pytest.raises(ChannelClosedByBroker) as info:
        await ch.queue_declare(missing, passive=True)
    error = info.value
    assert error.reply_code == 404 and missing in error.reply_text
    assert await closed is error
    assert not ch.is_open and conn.is_open
    assert (await conn.channel()).is_open


# -- publishing ---------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_publish_without_and_with_confirms(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    props = BasicProperties(content_type="text/plain", delivery_mode=2, message_id="m1")
    assert await ch.basic_publish("", queue, b"plain", props) is None
    await ch.confirm_delivery()
    results = await defer.gatherResults(
        [ch.basic_publish("", queue, b"%d" % i) for i in range(200)]
    )
    assert results == [None] * 200
    first = await ch.basic_get(queue, auto_ack=True)
    assert first.body == b"plain"
    assert (first.properties.content_type, first.properties.message_id) == ("text/plain", "m1")
    assert (await ch.queue_declare(queue, passive=True)).message_count == 200


@pytest_twisted.ensureDeferred
async def test_broker_nack_fails_the_publish(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    await ch.confirm_delivery()
    await ch.basic_publish("", queue, b"fits")
    with pytest.raises(NackError):
        await ch.basic_publish("", queue, b"rejected")
    assert await drain(ch, queue) == [b"fits"]


@pytest_twisted.ensureDeferred
async def test_mandatory_unroutable_fails_with_unroutable_error(ch: Channel, names: Names) -> None:
    await ch.confirm_delivery()
    returned: list[Message] = []
    ch.add_on_return_callback(returned.append)
    nowhere = f"txamqp091.test.nowhere.{uuid.uuid4().hex}"
    with pytest.raises(UnroutableError) as info:
        await ch.basic_publish("", nowhere, b"lost", mandatory=True)
    assert info.value.reply_code == 312
    assert [m.body for m in returned] == [b"lost"]


@pytest_twisted.ensureDeferred
async def test_returns_interleaved_with_routable_confirmed_publishes(
    ch: Channel, names: Names
) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    nowhere = f"txamqp091.test.nowhere.{uuid.uuid4().hex}"
    sent = [
        ch.basic_publish("", queue if i % 2 == 0 else nowhere, b"%d" % i, mandatory=True)
        for i in range(100)
    ]
    outcomes = await defer.DeferredList(sent, consumeErrors=True)
    for i, (ok, result) in enumerate(outcomes):
        if i % 2 == 0:
            assert ok and result is None, (i, result)
        else:
            assert not ok and isinstance(result, Failure)
            assert isinstance(result.value, UnroutableError), (i, result)
            assert result.value.message.body == b"%d" % i
    assert await drain(ch, queue) == [b"%d" % i for i in range(0, 100, 2)]


# -- getting and consuming -----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_basic_get_message_and_none(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    for body in (b"a", b"b"):
        await ch.basic_publish("", queue, body)
    message = await ch.basic_get(queue)
    assert isinstance(message, Message)
    assert (message.body, message.message_count, message.routing_key) == (b"a", 1, queue)
    message.ack()
    assert (await ch.basic_get(queue, auto_ack=True)).message_count == 0
    assert await ch.basic_get(queue) is None


@pytest_twisted.ensureDeferred
async def test_consume_with_a_callback(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    seen: list[bytes] = []
    done: defer.Deferred[None] = defer.Deferred()

    def on_message(message: Message) -> None:
        seen.append(message.body)
        message.ack()
        if len(seen) == 5:
            done.callback(None)

    consumer = await ch.basic_consume(queue, on_message_callback=on_message)
    for i in range(5):
        await ch.basic_publish("", queue, b"%d" % i)
    await done
    assert seen == [b"%d" % i for i in range(5)]
    assert await consumer.cancel() == 0


@pytest_twisted.ensureDeferred
async def test_consumer_async_for_get_timeout_and_cancel(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    for i in range(10):
        await ch.basic_publish("", queue, b"%d" % i)
    consumer = await ch.basic_consume(queue)
    assert consumer.queue == queue and consumer.consumer_tag
    got = []
    async for message in consumer:
        got.append(message.body)
        message.ack()
        if len(got) == 4:
            break
    assert got == [b"0", b"1", b"2", b"3"]
    await sleep(0.2)  # let the other six arrive in the consumer's buffer
    assert await consumer.cancel() == 6  # handed back, unacked
    assert (await ch.queue_declare(queue, passive=True)).message_count == 6

    empty_queue = names.queue()
    await ch.queue_declare(empty_queue)
    idle = await ch.basic_consume(empty_queue)
    started = time.monotonic()
    assert await idle.get(timeout=0.2) is None
    assert 0.15 <= time.monotonic() - started < 2
    assert await idle.cancel() == 0


@pytest_twisted.ensureDeferred
async def test_ack_nack_reject_by_message_and_by_channel(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    for i in range(6):
        await ch.basic_publish("", queue, b"%d" % i)
    messages = [await ch.basic_get(queue) for _ in range(6)]
    messages[0].ack()
    messages[1].nack(requeue=False)
    messages[2].reject(requeue=False)
    ch.basic_ack(messages[3].delivery_tag)
    ch.basic_nack(messages[4].delivery_tag, requeue=True)
    ch.basic_reject(messages[5].delivery_tag, requeue=True)
    requeued = [await ch.basic_get(queue) for _ in range(2)]
    assert sorted(m.body for m in requeued) == [b"4", b"5"]
    assert all(m.redelivered for m in requeued)
    requeued[1].ack(multiple=True)
    assert await ch.basic_get(queue) is None


@pytest_twisted.ensureDeferred
async def test_basic_qos_limits_unacked_deliveries(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    for i in range(5):
        await ch.basic_publish("", queue, b"%d" % i)
    await ch.basic_qos(prefetch_count=2)
    received: list[Message] = []
    await ch.basic_consume(queue, on_message_callback=received.append)
    await sleep(0.3)
    assert len(received) == 2
    received[1].ack(multiple=True)
    await sleep(0.3)
    assert len(received) == 4


@pytest_twisted.ensureDeferred
async def test_basic_recover_redelivers_unacked(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    await ch.basic_publish("", queue, b"again")
    first = await ch.basic_get(queue)
    assert not first.redelivered
    await ch.basic_recover(requeue=True)
    second = await ch.basic_get(queue)
    assert (second.body, second.redelivered) == (b"again", True)
    second.ack()


@pytest_twisted.ensureDeferred
async def test_tx_select_commit_rollback(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.tx_select()
    await ch.basic_publish("", queue, b"committed")
    await ch.tx_commit()
    await ch.basic_publish("", queue, b"rolled back")
    await ch.tx_rollback()
    assert await drain(ch, queue) == [b"committed"]


@pytest_twisted.ensureDeferred
async def test_flow(conn: Connection, ch: Channel) -> None:
    assert await ch.flow(True) is True
    assert ch.is_open and conn.is_open


@pytest_twisted.ensureDeferred
async def test_connection_close(conn: Connection, ch: Channel) -> None:
    closed = conn.closed
    assert await conn.close() is None
    assert await closed is None
    assert await ch.closed is None
    assert not conn.is_open and not ch.is_open


# -- big messages and field tables -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_16_mib_message_round_trip_with_small_frames(names: Names) -> None:
    conn = await connect(reactor, url(frame_max=4096))
    try:
        assert conn.negotiated.frame_max == 4096
        ch = await conn.channel()
        queue = names.queue()
        await ch.queue_declare(queue)
        await ch.confirm_delivery()
        body = os.urandom(1 << 20) * 16
        await ch.basic_publish("", queue, body)
        consumer = await ch.basic_consume(queue)
        message = await consumer.get()
        assert len(message.body) == len(body) and message.body == body
        message.ack()
    finally:
        await conn.close()


# Every value pika 1.4.4 can encode (it has no float encoding at all).
PIKA_HEADERS: dict[str, Any] = {
    "str": "text ünïcode",
    "bytes": b"\x00\xffraw",
    "true": True,
    "false": False,
    "int32": -123456,
    "int64": 2**40,
    "decimal": decimal.Decimal("-12.345"),
    "datetime": datetime.datetime(2024, 5, 17, 12, 30, 45, tzinfo=datetime.timezone.utc),
    "table": {"nested": {"deep": "value"}, "n": 1},
    "array": [1, "two", b"three", None, [4]],
    "void": None,
}

# Every wire type txamqp091 writes, and what pika 1.4.4 decodes it to.
TXAMQP_HEADERS: list[tuple[str, Any, Any]] = [
    ("int8", Int8(-8), -8),
    ("uint8", UInt8(200), 200),
    ("int16", Int16(-1600), -1600),
    ("uint16", UInt16(60000), 60000),
    ("int32", Int32(-320000), -320000),
    ("uint32", UInt32(4000000000), 4000000000),
    ("int64", Int64(-(2**60)), -(2**60)),
    ("float32", Float32(1.5), 1),  # pika 1.4.4 truncates floats to ints when decoding
    ("float64", Float64(-2.75), -2),
    ("decimal", decimal.Decimal("3.14159"), decimal.Decimal("3.14159")),
    ("str", "ünïcode", "ünïcode"),
    ("longstr", LongStr(b"\xff\xfe not utf-8"), b"\xff\xfe not utf-8"),
    ("bytes", b"\x00\x01", b"\x00\x01"),
    ("bool", True, True),
    (
        "datetime",
        datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    ),
    (
        "timestamp",
        Timestamp(1700000000),
        datetime.datetime.fromtimestamp(1700000000, datetime.timezone.utc),
    ),
    ("table", {"a": Int8(1), "b": {"c": "d"}}, {"a": 1, "b": {"c": "d"}}),
    ("array", [Int16(1), "x", [True]], [1, "x", [True]]),
    ("void", None, None),
]


def pika_publish(queue: str, headers: dict[str, Any]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("", queue, b"from pika", pika.BasicProperties(headers=headers))
    finally:
        connection.close()


def pika_get(queue: str) -> dict[str, Any]:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        assert method is not None and body == b"from txamqp091"
        headers: dict[str, Any] = properties.headers
        return headers
    finally:
        connection.close()


@pytest_twisted.ensureDeferred
async def test_headers_published_by_pika_read_by_txamqp091(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await threads.deferToThread(pika_publish, queue, PIKA_HEADERS)
    message = await ch.basic_get(queue, auto_ack=True)
    headers = message.properties.headers
    assert sorted(headers) == sorted(PIKA_HEADERS)
    for key, expected in PIKA_HEADERS.items():
        assert headers[key] == expected, key
        assert type(headers[key]) is type(expected), key  # no bool/int or bytes/str mix-ups


@pytest_twisted.ensureDeferred
async def test_headers_published_by_txamqp091_read_by_pika(ch: Channel, names: Names) -> None:
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    headers = {key: value for key, value, _ in TXAMQP_HEADERS}
    await ch.basic_publish("", queue, b"from txamqp091", BasicProperties(headers=headers))
    received = await threads.deferToThread(pika_get, queue)
    assert sorted(received) == sorted(headers)
    for key, _, expected in TXAMQP_HEADERS:
        assert received[key] == expected, key
        if not isinstance(expected, int) or isinstance(expected, bool):
            assert type(received[key]) is type(expected), key


# -- connections -------------------------------------------------------------------------------------


def list_connection_names() -> list[str]:
    output = subprocess.run(
        ["rabbitmqctl", "list_connections", "client_properties", "-q"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return [line for line in output.splitlines() if "connection_name" in line]


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="rabbitmqctl is not installed")
@pytest_twisted.ensureDeferred
async def test_connection_name_is_visible_to_rabbitmqctl() -> None:
    name = f"txamqp091-test-{uuid.uuid4().hex}"
    conn = await connect(reactor, url(connection_name=name))
    try:
        lines = await threads.deferToThread(list_connection_names)
        assert any(name in line for line in lines), lines
    finally:
        await conn.close()


class SilentServer(Protocol):
    """Accepts the TCP connection and never says a word."""

    lost: list[SilentServer] = []

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        SilentServer.lost.append(self)


@pytest_twisted.ensureDeferred
async def test_silent_peer_fails_within_stack_timeout() -> None:
    port = reactor.listenTCP(0, Factory.forProtocol(SilentServer), interface="127.0.0.1")  # type: ignore[attr-defined]
    try:
        number = port.getHost().port
        started = time.monotonic()
        with pytest.raises(AMQPConnectionError) as info:
            await connect(reactor, f"amqp://guest:guest@127.0.0.1:{number}/?stack_timeout=1")
        elapsed = time.monotonic() - started
        assert 0.9 <= elapsed < 3, elapsed
        assert "stack_timeout" in str(info.value)
        await sleep(0.1)
        assert SilentServer.lost  # the client dropped the connection
    finally:
        await port.stopListening()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest_twisted.ensureDeferred
async def test_url_list_falls_back_to_the_next_node() -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{closed_port()}/?retry_delay=0&connection_attempts=1"
    conn = await connect(reactor, [dead, url(retry_delay=0)])
    try:
        assert conn.is_open
        assert conn.params.port != int(dead.split(":")[3].split("/")[0])
    finally:
        await conn.close()


@pytest_twisted.ensureDeferred
async def test_ack_from_a_worker_thread(ch: Channel, names: Names) -> None:
    """Hand a message to a thread, then ack it back on the reactor thread.

    The pattern for blocking work: the consumer callback runs on the reactor
    thread and passes the message to ``deferToThread``; the worker does the
    slow part and schedules the ack with ``reactor.callFromThread(message.ack)``
    (Twisted objects are not thread-safe, so the ack itself runs on the
    reactor thread). The Deferred deferToThread returns reports the worker's
    failure, so nothing fails silently.
    """
    queue = names.queue()
    await ch.queue_declare(queue)
    await ch.confirm_delivery()
    await ch.basic_publish("", queue, b"work item")
    reactor_thread = threading.get_ident()
    worker_threads: list[int] = []
    acked: defer.Deferred[None] = defer.Deferred()

    def work(message: Message) -> None:
        worker_threads.append(threading.get_ident())
        time.sleep(0.05)  # the blocking part
        reactor.callFromThread(message.ack)  # type: ignore[attr-defined]
        reactor.callFromThread(acked.callback, None)  # type: ignore[attr-defined]

    def on_message(message: Message) -> None:
        d = threads.deferToThread(work, message)
        d.addErrback(acked.errback)

    await ch.basic_consume(queue, on_message_callback=on_message)
    await acked
    assert worker_threads and worker_threads[0] != reactor_thread
    await ch.close()
    # Nothing went back to the queue when the channel closed: the ack reached the broker.
    check = await ch._conn.channel()
    assert (await check.queue_declare(queue, passive=True)).message_count == 0
