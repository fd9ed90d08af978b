"""The sans-IO core alone, driven over a plain blocking socket against the real RabbitMQ.

No adapter is involved: this proves that the bytes the core writes and the
events it reports are right against a broker, not only against our own
frame factory.
"""

from __future__ import annotations

import datetime
import decimal
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from txamqp091.core import spec
from txamqp091.core.channel import Channel
from txamqp091.core.codec import encode_table
from txamqp091.core.connection import Connection
from txamqp091.core.events import (
    ChannelClosed,
    ChannelOpened,
    ConnectionClosed,
    ConnectionOpened,
    Delivery,
    Event,
    GetOk,
    MethodReply,
    PublishAcked,
    Returned,
)
from txamqp091.core.testing import StaticCredentials
from txamqp091.exceptions import ChannelClosedByBroker, ChannelClosedByClient
from txamqp091.types import Float32, Int8, Int16, Int64, LongStr, UInt8, UInt16, UInt32

pytestmark = pytest.mark.broker

URL = urlsplit(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
USER = unquote(URL.username or "guest")
PASSWORD = unquote(URL.password or "guest")
VHOST = unquote(URL.path[1:]) if len(URL.path) > 1 else "/"
TIMEOUT = 10.0


class Driver:
    """Pumps a core Connection over a blocking socket until an awaited event arrives."""

    def __init__(self, conn: Connection, sock: socket.socket) -> None:
        self.conn = conn
        self.sock = sock
        self.backlog: list[Event] = []

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def wait_for(self, match: Callable[[Event], bool], what: str) -> Event:
        deadline = time.monotonic() + TIMEOUT
        while True:
            for i, event in enumerate(self.backlog):
                if match(event):
                    del self.backlog[: i + 1]
                    return event
            self.flush()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; saw {self.backlog!r}")
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            now = time.monotonic()
            events = self.conn.receive_data(data, now) if data else self.conn.connection_lost()
            events += self.conn.tick(now)
            self.backlog.extend(events)
            closed = [e for e in events if isinstance(e, ConnectionClosed | ChannelClosed)]
            if closed and not any(match(e) for e in events):
                raise AssertionError(f"closed while waiting for {what}: {closed[0]!r}")

    def reply(self, channel: Channel, method: spec.Method) -> spec.Method:
        channel.send_method(method)
        event = self.wait_for(
            lambda e: isinstance(e, MethodReply) and e.channel_id == channel.channel_id,
            f"the reply to {method.NAME}",
        )
        assert isinstance(event, MethodReply)
        return event.method


def connect() -> Driver:
    host, port = URL.hostname or "127.0.0.1", URL.port or 5672
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    sock.settimeout(1.0)
    conn = Connection(
        credentials=StaticCredentials("PLAIN", f"\0{USER}\0{PASSWORD}".encode()),
        virtual_host=VHOST,
        client_properties={
            "product": "txamqp091 core socket test",
            "connection_name": f"core-socket-{uuid.uuid4()}",
            "capabilities": {
                "publisher_confirms": True,
                "basic.nack": True,
                "consumer_cancel_notify": True,
                "connection.blocked": True,
                "authentication_failure_close": True,
            },
        },
        heartbeat=30,
    )
    return Driver(conn, sock)


HEADERS: dict[str, Any] = {
    "S": "text \u00e9",
    "S-raw": LongStr(b"\xff\xfe"),
    "x": b"\x00bytes\xff",
    "t": True,
    "b": Int8(-3),
    "B": UInt8(250),
    "s": Int16(-300),
    "u": UInt16(65000),
    "I": -42,
    "i": UInt32(4_000_000_000),
    "l": 2**40,
    "l-small": Int64(7),
    "f": Float32(0.5),
    "d": 2.75,
    "D": decimal.Decimal("12.345"),
    "T": datetime.datetime(2024, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
    "F": {"nested": {"deep": [1, "two", None]}},
    "A": [1, "a", [True, None], {"k": 1.5}],
    "V": None,
}


def test_core_over_a_socket() -> None:
    driver = connect()
    conn = driver.conn
    try:
        opened = driver.wait_for(lambda e: isinstance(e, ConnectionOpened), "Open-Ok")
        assert isinstance(opened, ConnectionOpened)
        assert opened.server_properties["product"] == "RabbitMQ"
        assert opened.heartbeat == 30 and opened.frame_max >= 4096
        assert conn.is_open

        channel = conn.open_channel()
        driver.wait_for(lambda e: isinstance(e, ChannelOpened), "Channel.Open-Ok")

        declare_ok = driver.reply(channel, spec.QueueDeclare(queue="", exclusive=True))
        assert isinstance(declare_ok, spec.QueueDeclareOk)
        queue = declare_ok.queue
        assert queue.startswith("amq.gen-")
        assert isinstance(driver.reply(channel, spec.ConfirmSelect()), spec.ConfirmSelectOk)

        properties = spec.BasicProperties(
            content_type="application/octet-stream",
            content_encoding="identity",
            headers=HEADERS,
            delivery_mode=2,
            priority=5,
            correlation_id=str(uuid.uuid4()),
            reply_to="replies",
            expiration="60000",
            message_id="m-1",
            timestamp=1_700_000_000,
            type="test",
            user_id=USER,
            app_id="core-socket",
        )
        big = bytes(range(256)) * 1200  # 307200 bytes: several frames at frame_max 131072
        bodies = [b"first", big, b""]
        seqs = [channel.publish("", queue, body, properties) for body in bodies]
        assert seqs == [1, 2, 3]
        confirmed = 0
        while confirmed < 3:
            ack = driver.wait_for(lambda e: isinstance(e, PublishAcked), "publisher confirms")
            assert isinstance(ack, PublishAcked)
            confirmed = ack.delivery_tag if ack.multiple else max(confirmed, ack.delivery_tag)

        channel.send_method(spec.BasicGet(queue=queue))
        got = driver.wait_for(lambda e: isinstance(e, GetOk), "Get-Ok")
        assert isinstance(got, GetOk)
        assert got.body == b"first"
        assert got.message_count == 2
        assert got.properties == properties
        # The headers come back as the same wire bytes, field types and all.
        assert got.properties.headers is not None
        assert encode_table(got.properties.headers) == encode_table(HEADERS)
        channel.send_method(spec.BasicAck(delivery_tag=got.delivery_tag))

        tag = f"ctag-{uuid.uuid4()}"
        consume_ok = driver.reply(channel, spec.BasicConsume(queue=queue, consumer_tag=tag))
        assert consume_ok == spec.BasicConsumeOk(consumer_tag=tag)
        deliveries = []
        for _ in range(2):
            delivery = driver.wait_for(lambda e: isinstance(e, Delivery), "a delivery")
            assert isinstance(delivery, Delivery)
            deliveries.append(delivery)
        assert [d.body for d in deliveries] == bodies[1:]
        assert all(d.consumer_tag == tag and d.routing_key == queue for d in deliveries)
        assert deliveries[0].properties == properties
        channel.send_method(spec.BasicAck(delivery_tag=deliveries[-1].delivery_tag, multiple=True))
        assert driver.reply(channel, spec.BasicCancel(consumer_tag=tag)) == spec.BasicCancelOk(
            consumer_tag=tag
        )

        missing_key = f"no-such-queue-{uuid.uuid4()}"
        assert channel.publish("", missing_key, b"bounce", mandatory=True) == 4
        returned = driver.wait_for(lambda e: isinstance(e, Returned), "Basic.Return")
        assert isinstance(returned, Returned)
        assert (returned.reply_code, returned.routing_key, returned.body) == (
            312,
            missing_key,
            b"bounce",
        )
        driver.wait_for(lambda e: isinstance(e, PublishAcked) and e.delivery_tag == 4, "ack 4")

        missing = f"missing-{uuid.uuid4()}"
        channel.send_method(spec.QueueDeclare(queue=missing, passive=True))
        closed = driver.wait_for(lambda e: isinstance(e, ChannelClosed), "Channel.Close")
        assert isinstance(closed, ChannelClosed)
        assert closed.reply_code == 404
        assert isinstance(closed.error, ChannelClosedByBroker)
        assert missing in closed.reply_text

        second = conn.open_channel()
        assert second.channel_id == channel.channel_id  # released and reused
        driver.wait_for(lambda e: isinstance(e, ChannelOpened), "Channel.Open-Ok")
        delete_ok = driver.reply(second, spec.QueueDelete(queue=queue))
        assert delete_ok == spec.QueueDeleteOk(message_count=0)
        second.close()
        closed = driver.wait_for(lambda e: isinstance(e, ChannelClosed), "Channel.Close-Ok")
        assert isinstance(closed, ChannelClosed)
        assert isinstance(closed.error, ChannelClosedByClient)

        conn.close()
        end = driver.wait_for(lambda e: isinstance(e, ConnectionClosed), "Connection.Close-Ok")
        assert end == ConnectionClosed(reply_code=200, reply_text="closed by client", error=None)
    finally:
        driver.sock.close()


def test_wrong_password_is_refused() -> None:
    driver = connect()
    driver.conn.credentials = StaticCredentials("PLAIN", f"\0{USER}\0wrong-{uuid.uuid4()}".encode())
    try:
        closed = driver.wait_for(lambda e: isinstance(e, ConnectionClosed), "the refusal")
        assert isinstance(closed, ConnectionClosed)
        assert closed.reply_code in (403, 0)
        assert type(closed.error).__name__ == "ProbableAuthenticationError"
    finally:
        driver.sock.close()
