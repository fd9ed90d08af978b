"""Every blocking call has a deadline: a silent broker raises CallTimeout, never hangs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.blocking_adapter.support import Names, message_count
from tests.integration.faults import TcpProxy
from txamqp091 import blocking
from txamqp091.blocking import exceptions

pytestmark = pytest.mark.broker


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy() as p:
        yield p


def test_silent_broker_raises_call_timeout(proxy: TcpProxy, names: Names) -> None:
    conn = blocking.BlockingConnection(proxy.url("heartbeat=0"), timeout=0.5)
    try:
        ch = conn.channel()
        queue = names.queue()
        ch.queue_declare(queue)
        proxy.stall()
        start = time.monotonic()
        with pytest.raises(exceptions.CallTimeout) as info:
            ch.queue_declare(names.queue())
        assert 0.4 < time.monotonic() - start < 3.0
        assert info.value.operation == "queue_declare"
        assert isinstance(info.value, TimeoutError)
        # A per-call deadline overrides the connection's.
        start = time.monotonic()
        with pytest.raises(exceptions.CallTimeout):
            ch.basic_get(queue, timeout=0.1)
        assert time.monotonic() - start < 0.4
        # Once the broker answers again, the late replies are consumed in order and
        # the channel carries on in step.
        proxy.resume()
        frame = ch.queue_declare(queue, passive=True, timeout=10)
        assert frame.method.queue == queue
    finally:
        proxy.resume()
        conn.close(timeout=10)


def test_confirmed_publish_has_a_deadline(proxy: TcpProxy, names: Names) -> None:
    conn = blocking.BlockingConnection(proxy.url("heartbeat=0"), timeout=10)
    try:
        ch = conn.channel()
        queue = names.queue()
        ch.queue_declare(queue)
        ch.confirm_delivery()
        proxy.stall()
        with pytest.raises(exceptions.CallTimeout) as info:
            ch.basic_publish("", queue, b"late", timeout=0.3)
        assert info.value.operation == "basic_publish"
        proxy.resume()
        ch.basic_publish("", queue, b"next")
        # The timed-out publish was sent all the same: a timeout says "not known yet".
        assert message_count(ch, queue, 2) == 2
    finally:
        proxy.resume()
        conn.close(timeout=10)


def test_connect_to_a_silent_node_is_bounded(proxy: TcpProxy) -> None:
    proxy.stall()
    start = time.monotonic()
    with pytest.raises(exceptions.AMQPConnectionError):
        blocking.BlockingConnection(proxy.url("stack_timeout=0.5&connection_attempts=1"))
    assert time.monotonic() - start < 5.0


def test_a_lost_connection_ends_start_consuming_with_its_error(
    proxy: TcpProxy, names: Names
) -> None:
    conn = blocking.BlockingConnection(proxy.url(), timeout=10)
    ch = conn.channel()
    queue = names.queue()
    ch.queue_declare(queue)
    ch.basic_consume(queue, lambda c, m, p, b: None)
    threading.Timer(0.2, proxy.reset).start()
    with pytest.raises(exceptions.AMQPConnectionError):
        ch.start_consuming()
    assert conn.is_closed
    with pytest.raises(exceptions.AMQPConnectionError):
        conn.process_data_events(0)
    with pytest.raises(exceptions.ChannelWrongStateError):
        ch.basic_publish("", queue, b"x")
