"""Reads and small writes on the socket of asyncio's own transport (tornado/_direct.py),
and the transport's path for everything else: the same bytes, in the same order, the
same end of the connection, either way (no broker: a socket pair)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from txamqp091 import ConnectionParameters
from txamqp091.core.testing import ServerFrames, parse_published_messages
from txamqp091.exceptions import AMQPConnectionError
from txamqp091.tornado import AMQPProtocol, Channel
from txamqp091.tornado import protocol as protocol_module
from txamqp091.tornado._direct import selector_socket

frames = ServerFrames()


class Peer:
    """The broker's end of the socket pair, read and written through the loop."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendall(self.sock, data)

    async def read_exactly(self, n: int) -> bytes:
        got = b""
        while len(got) < n:
            chunk = await asyncio.wait_for(self.loop.sock_recv(self.sock, n - len(got)), 5)
            assert chunk, "the client closed the socket"
            got += chunk
        return got

    async def read_available(self) -> bytes:
        await asyncio.sleep(0.01)
        got = b""
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except BlockingIOError:
                return got
            if not chunk:
                return got
            got += chunk


@pytest_asyncio.fixture(params=["direct", "transport"])
async def opened(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[AMQPProtocol, Peer, Channel]]:
    """A protocol on a real selector transport (one end of a socket pair), handshake
    done and channel 1 open; with the direct socket path, or with it refused."""
    if request.param == "transport":
        monkeypatch.setattr(protocol_module, "selector_socket", lambda transport: None)
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    peer = Peer(theirs)
    protocol = AMQPProtocol(ConnectionParameters(heartbeat=0))
    transport, _ = await loop.create_connection(lambda: protocol, sock=ours)
    assert (protocol._direct is transport) == (request.param == "direct")
    assert await peer.read_exactly(8) == b"AMQP\x00\x00\x09\x01"
    await peer.send(frames.handshake(heartbeat=0))
    conn = await asyncio.wait_for(protocol.ready, 5)
    opening = conn.channel()
    await peer.send(frames.channel_open_ok(1))
    ch = await asyncio.wait_for(opening, 5)
    await peer.read_available()  # Start-Ok, Tune-Ok, Open, Channel.Open
    yield protocol, peer, ch
    transport.abort()
    theirs.close()
    await asyncio.sleep(0)


def test_only_asyncio_s_own_socket_transport_is_read_directly() -> None:
    assert selector_socket(asyncio.Transport()) is None

    class Lookalike(asyncio.Transport):
        _sock = socket.socket()

    try:
        assert selector_socket(Lookalike()) is None
    finally:
        Lookalike._sock.close()


@pytest.mark.asyncio
async def test_a_buffered_protocol_reader_is_left_to_the_transport() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    try:
        transport, _ = await loop.create_connection(asyncio.BufferedProtocol, sock=ours)
        assert selector_socket(transport) is None  # it calls get_buffer, not recv
        transport.abort()
    finally:
        theirs.close()


@pytest.mark.asyncio
async def test_deliveries_in_and_publishes_out(opened: tuple[AMQPProtocol, Peer, Channel]) -> None:
    protocol, peer, ch = opened
    subscribing = ch.basic_consume("q", auto_ack=True, consumer_tag="c1")
    await peer.send(frames.consume_ok(1, "c1"))
    consumer = await asyncio.wait_for(subscribing, 5)
    await peer.read_available()
    for tag in (1, 2, 3):
        await peer.send(frames.deliver(1, "c1", tag, b"body %d" % tag))
        message: Any = await asyncio.wait_for(consumer.get(), 5)
        assert message.body == b"body %d" % tag
        await ch.basic_publish("", "replies", message.body)
    sent = parse_published_messages(await peer.read_available())
    assert [(m.method.routing_key, m.body) for m in sent] == [
        ("replies", b"body 1"),
        ("replies", b"body 2"),
        ("replies", b"body 3"),
    ]


@pytest.mark.asyncio
async def test_a_partly_sent_write_leaves_the_rest_in_order(
    opened: tuple[AMQPProtocol, Peer, Channel],
) -> None:
    from txamqp091.tornado.protocol import DIRECT_WRITE_MAX

    protocol, peer, ch = opened
    transport: Any = protocol.transport
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    # The rest stays in the transport's buffer without pausing publishes (pause_writing).
    transport.set_write_buffer_limits(high=16 << 20)
    body = bytes(range(256)) * ((DIRECT_WRITE_MAX - 512) // 256)  # one direct write...
    first = ch.basic_publish("", "first", body)
    await asyncio.sleep(0)  # ...sent in part (a small send buffer), the rest buffered
    assert transport.get_write_buffer_size() > 0
    second = ch.basic_publish("", "second", b"small")  # behind that rest
    await asyncio.sleep(0)
    assert transport.get_write_buffer_size() > len(body) // 2  # the transport appended it
    big = bytes(range(256)) * (1 << 12)  # 1 MiB: the transport's write, behind both
    third = ch.basic_publish("", "third", big)
    read = asyncio.ensure_future(peer.read_exactly(len(body) + len(big)))
    await asyncio.wait_for(asyncio.gather(first, second, third), 5)
    data = await read + await peer.read_available()
    sent = parse_published_messages(data)
    assert [(m.method.routing_key, m.body) for m in sent] == [
        ("first", body),
        ("second", b"small"),
        ("third", big),
    ]


@pytest.mark.asyncio
async def test_the_peer_closing_the_socket_ends_the_connection(
    opened: tuple[AMQPProtocol, Peer, Channel],
) -> None:
    protocol, peer, ch = opened
    waiting = ch.queue_declare("q")
    peer.sock.close()
    with pytest.raises(AMQPConnectionError):
        await asyncio.wait_for(waiting, 5)
    assert not protocol.connection.is_open
    assert protocol.transport is not None and protocol.transport.is_closing()
    await asyncio.sleep(0.01)  # connection_lost
    protocol._read_now()  # a reader run that was already due: nothing to read any more


class FailingSocket:
    def __init__(self, error: OSError) -> None:
        self.error = error

    def send(self, data: bytes) -> int:
        raise self.error

    def recv(self, size: int) -> bytes:
        raise self.error


@pytest.mark.asyncio
async def test_a_failed_send_ends_the_connection_with_its_error(
    opened: tuple[AMQPProtocol, Peer, Channel],
) -> None:
    protocol, peer, ch = opened
    if protocol._direct is None:
        pytest.skip("the transport's own write path")
    protocol._sock = FailingSocket(ConnectionResetError(104, "reset by peer"))  # type: ignore[assignment]
    waiting = ch.queue_declare("q")
    with pytest.raises(AMQPConnectionError, match="reset by peer"):
        await asyncio.wait_for(waiting, 5)
    assert not protocol.connection.is_open


@pytest.mark.asyncio
async def test_a_failed_read_ends_the_connection_with_its_error(
    opened: tuple[AMQPProtocol, Peer, Channel],
) -> None:
    protocol, peer, ch = opened
    if protocol._direct is None:
        pytest.skip("the transport's own read path")
    waiting = ch.queue_declare("q")
    await asyncio.sleep(0.01)
    protocol._sock = FailingSocket(ConnectionResetError(104, "reset on read"))  # type: ignore[assignment]
    await peer.send(frames.heartbeat())  # wakes the reader
    with pytest.raises(AMQPConnectionError, match="reset on read"):
        await asyncio.wait_for(waiting, 5)


class HeartbeatSocket:
    """Reads of heartbeat frames: the first fills the buffer asked for, later ones do not."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def recv(self, size: int) -> bytes:
        self.sizes.append(size)
        return frames.heartbeat() * (size // 8 if len(self.sizes) == 1 else 1)


@pytest.mark.asyncio
async def test_reads_grow_after_a_full_one_and_shrink_again(
    opened: tuple[AMQPProtocol, Peer, Channel],
) -> None:
    from txamqp091.tornado.protocol import LARGE_READ_SIZE, READ_SIZE

    protocol, peer, ch = opened
    if protocol._direct is None:
        pytest.skip("the transport's own read path (test_read_dispatch covers it)")
    fake = HeartbeatSocket()
    protocol._sock = fake  # type: ignore[assignment]
    for _ in range(3):
        protocol._read_now()
    assert fake.sizes == [READ_SIZE, LARGE_READ_SIZE, READ_SIZE]
    assert protocol.connection.is_open


def registered_reader(protocol: AMQPProtocol) -> Any:
    transport: Any = protocol.transport
    loop: Any = asyncio.get_running_loop()
    return loop._selector.get_key(transport._sock_fd).data[0]._callback


@pytest.mark.asyncio
async def test_reading_paused_and_resumed_still_reads_every_delivery(
    opened: tuple[AMQPProtocol, Peer, Channel],
) -> None:
    protocol, peer, ch = opened
    direct = protocol._direct is not None
    # The loop calls the protocol's reader itself, or the transport's.
    assert (registered_reader(protocol) == protocol._read_now) == direct
    subscribing = ch.basic_consume("q", auto_ack=True, consumer_tag="c1")
    await peer.send(frames.consume_ok(1, "c1"))
    consumer = await asyncio.wait_for(subscribing, 5)
    for round_ in range(2):
        protocol.pause_reading()
        await peer.send(frames.deliver(1, "c1", round_ + 1, b"while paused"))
        waiting = consumer.get()
        await asyncio.sleep(0.02)
        assert not waiting.done()  # not read while paused
        protocol.resume_reading()
        message: Any = await asyncio.wait_for(waiting, 5)
        assert message.delivery_tag == round_ + 1
        assert (registered_reader(protocol) == protocol._read_now) == direct


@pytest.mark.asyncio
async def test_the_reader_is_replaceable_only_while_it_is_the_class_s_own() -> None:
    """reader_replaceable: yes for asyncio's selector transport as it comes (its
    _read_ready the class's method, bound to it); no once something is set on the
    instance in its place, or for another transport's bound method."""
    from txamqp091.tornado._direct import reader_replaceable

    loop: Any = asyncio.get_running_loop()
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    try:
        transport = loop._make_socket_transport(a, asyncio.Protocol())
        other = loop._make_socket_transport(c, asyncio.Protocol())
        await asyncio.sleep(0)
        assert reader_replaceable(transport)
        transport._read_ready = other._read_ready
        assert not reader_replaceable(transport)
        transport._read_ready = lambda: None
        assert not reader_replaceable(transport)
        transport.close()
        other.close()
        await asyncio.sleep(0)
    finally:
        for s in (a, b, c, d):
            s.close()
