"""``BlockingConnection(..., recover=True)``: channels survive a lost connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.blocking_adapter.support import Names, message_count
from tests.integration.faults import TcpProxy
from txamqp091 import blocking
from txamqp091.retry import backoff_policy

pytestmark = pytest.mark.broker


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy() as p:
        yield p


def fast_retry(attempt: int) -> float:
    return 0.1


def test_confirmed_publishes_and_consumer_survive_a_reset(proxy: TcpProxy, names: Names) -> None:
    queue = names.queue()
    conn = blocking.BlockingConnection(
        proxy.url(), recover=True, retry_policy=fast_retry, timeout=20
    )
    try:
        ch = conn.channel()
        ch.queue_declare(queue)
        ch.confirm_delivery()
        ch.basic_publish("", queue, b"before")
        proxy.reset()  # every connection through the proxy dies with an RST
        ch.basic_publish("", queue, b"after")  # returns once a broker acked it
        assert conn.is_open

        got: list[bytes] = []

        def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
            got.append(body)
            channel.basic_ack(method.delivery_tag)
            if got == [b"before", b"after"]:
                channel.basic_qos(prefetch_count=0)  # a round trip: the broker has the acks
                proxy.reset()  # the consumer comes back by itself
                threading.Thread(target=publish_late).start()
            if len(got) == 3:
                channel.stop_consuming()

        def publish_late() -> None:
            ch.basic_publish("", queue, b"late")

        ch.basic_consume(queue, on_message)
        ch.start_consuming()
        assert got == [b"before", b"after", b"late"]
        assert proxy.accepted >= 3  # two reconnects
    finally:
        conn.close()
    check = blocking.BlockingConnection(proxy.url())
    try:
        assert message_count(check.channel(), queue, 0) == 0
    finally:
        check.close()


def test_default_retry_policy_is_accepted(proxy: TcpProxy) -> None:
    with blocking.BlockingConnection(
        proxy.url(), recover=True, retry_policy=backoff_policy()
    ) as conn:
        assert conn.channel().queue_declare("", exclusive=True).method.queue
