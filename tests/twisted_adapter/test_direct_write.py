"""AMQPProtocol.write hands bytes to an idle socket at once, and queues behind pending ones.

A write that waits for the reactor's next turn costs an RPC a loop turn and two
epoll_ctl calls (issue 13); these tests use a real socket pair and a recording
reactor, so they show when the bytes reach the peer and whether the transport
asked to be polled for writability.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import time
from typing import Any

from twisted.internet import tcp
from twisted.internet.task import Clock

from txamqp091.params import ConnectionParameters
from txamqp091.twisted.protocol import AMQPProtocol


class RecordingReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.writers: list[Any] = []

    def addWriter(self, writer: Any) -> None:
        if writer not in self.writers:
            self.writers.append(writer)

    def removeWriter(self, writer: Any) -> None:
        if writer in self.writers:
            self.writers.remove(writer)

    def addReader(self, reader: Any) -> None:
        pass

    def removeReader(self, reader: Any) -> None:
        pass


def wired() -> tuple[AMQPProtocol, tcp.Connection, socket.socket, RecordingReactor]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(1)
    reactor = RecordingReactor()
    protocol = AMQPProtocol(ConnectionParameters(), reactor)
    transport = tcp.Connection(ours, protocol, reactor)  # type: ignore[arg-type]
    transport.connected = 1
    protocol.transport = transport
    protocol._socket_transport = transport
    return protocol, transport, peer, reactor


def test_an_idle_transport_sends_at_once_without_asking_to_be_polled() -> None:
    protocol, transport, peer, reactor = wired()
    protocol.write(b"frame one")
    assert peer.recv(100) == b"frame one"
    assert reactor.writers == []
    assert not transport._tempDataBuffer and not transport.dataBuffer


def test_bytes_queue_behind_what_the_transport_already_holds() -> None:
    protocol, transport, peer, reactor = wired()
    transport.write(b"first ")  # queued: the reactor would send it on its next turn
    protocol.write(b"second")
    assert reactor.writers == [transport]
    peer.setblocking(False)
    try:
        assert peer.recv(100) == b""
    except BlockingIOError:
        pass
    transport.doWrite()
    peer.setblocking(True)
    assert peer.recv(100) == b"first second"


def test_what_the_socket_does_not_take_is_queued_in_order() -> None:
    protocol, transport, peer, reactor = wired()
    big = bytes(range(256)) * 40_000  # 10 MB: more than a socket buffer takes at once
    protocol.write(big)
    protocol.write(b"tail")
    assert reactor.writers == [transport]
    received = bytearray()
    while len(received) < len(big) + 4:
        transport.doWrite()
        received += peer.recv(1 << 20)
    assert bytes(received) == big + b"tail"


def test_a_closed_peer_is_left_to_the_transport_to_report() -> None:
    protocol, transport, peer, reactor = wired()
    peer.close()
    protocol.write(b"x" * 100)  # EPIPE (or taken by the kernel): no exception here
    protocol.write(b"y" * 100)


def test_connection_made_turns_nagle_off_and_sends_the_header_at_once() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    ours = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    server.close()
    ours.setblocking(False)
    peer.settimeout(1)
    reactor = RecordingReactor()
    protocol = AMQPProtocol(ConnectionParameters(), reactor)
    transport = tcp.Connection(ours, protocol, reactor)  # type: ignore[arg-type]
    transport.connected = 1
    protocol.makeConnection(transport)
    assert ours.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert peer.recv(8) == b"AMQP\x00\x00\x09\x01"
    assert reactor.writers == []
    ours.close()
    peer.close()


def test_a_large_write_is_fed_to_the_transport_a_slice_at_a_time_in_order() -> None:
    from txamqp091.client.spool import SPOOL_ABOVE, SPOOL_SLICE

    protocol, transport, peer, reactor = wired()
    transport.bufferSize = SPOOL_SLICE
    transport.registerProducer(protocol, True)
    paused: list[bool] = []
    protocol.connection.pause_writing = lambda: paused.append(True)  # type: ignore[method-assign]
    big = bytes(range(256)) * (3 * SPOOL_ABOVE // 256)
    protocol.write(big)
    protocol.write(b"small, after it")
    protocol.close_transport()  # waits for the spooled bytes
    assert paused, "the transport pushed back while the message was spooled"
    received = bytearray()
    most_buffered = 0
    while len(received) < len(big) + 15:
        buffered = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        most_buffered = max(most_buffered, buffered)
        transport.doWrite()
        received += peer.recv(1 << 22)
    assert bytes(received) == big + b"small, after it"
    assert most_buffered <= 3 * SPOOL_SLICE
    assert transport.disconnecting


def connected_pair(
    protocol: AMQPProtocol,
) -> tuple[tcp.Connection, socket.socket]:
    server = socket.create_server(("127.0.0.1", 0))
    ours = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    server.close()
    ours.setblocking(False)
    peer.settimeout(1)
    transport = tcp.Connection(ours, protocol, protocol._clock)  # type: ignore[arg-type]
    transport.connected = 1
    protocol.makeConnection(transport)
    assert peer.recv(8) == b"AMQP\x00\x00\x09\x01"
    return transport, peer


def test_socket_reads_reach_the_connection_and_an_end_of_stream_is_reported() -> None:
    from twisted.internet import main

    from txamqp091.core.testing import ServerFrames

    protocol = AMQPProtocol(ConnectionParameters(heartbeat=0), RecordingReactor())
    transport, peer = connected_pair(protocol)
    assert transport.doRead == protocol._read_socket
    peer.sendall(ServerFrames().handshake(heartbeat=0))
    assert transport.doRead() is None
    assert protocol.ready.called and protocol.connection.is_open
    peer.recv(1 << 16)  # Start-Ok, Tune-Ok, Open: read, so that the close is not a reset
    peer.close()
    assert transport.doRead() is main.CONNECTION_DONE


def test_a_subclass_that_overrides_data_received_still_sees_every_read() -> None:
    from txamqp091.core.testing import ServerFrames

    seen: list[bytes] = []

    class Watching(AMQPProtocol):
        def dataReceived(self, data: bytes) -> None:
            seen.append(data)
            super().dataReceived(data)

    protocol = Watching(ConnectionParameters(heartbeat=0), RecordingReactor())
    transport, peer = connected_pair(protocol)
    handshake = ServerFrames().handshake(heartbeat=0)
    peer.sendall(handshake)
    transport.doRead()
    assert seen == [handshake]
    assert protocol.ready.called


def queued(sock: socket.socket) -> int:
    """Bytes waiting in ``sock``'s receive queue (FIONREAD)."""
    waiting: int = struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4))[0]
    return waiting


def test_a_full_read_makes_the_next_one_large_and_a_short_one_small_again() -> None:
    from txamqp091.core.testing import ServerFrames
    from txamqp091.twisted.protocol import LARGE_READ_SIZE, READ_SIZE

    frames = ServerFrames()
    protocol = AMQPProtocol(ConnectionParameters(heartbeat=0), RecordingReactor())
    transport, peer = connected_pair(protocol)
    peer.sendall(frames.handshake(heartbeat=0))
    transport.doRead()
    assert protocol._read_size == READ_SIZE
    ours = transport.socket
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    peer.sendall(frames.heartbeat() * (READ_SIZE // 8 + 1))  # more than one read holds
    deadline = time.monotonic() + 5
    while queued(ours) < READ_SIZE + 8 and time.monotonic() < deadline:
        time.sleep(0.001)
    transport.doRead()
    assert protocol._read_size == LARGE_READ_SIZE
    transport.doRead()  # the last 8 bytes
    assert protocol._read_size == READ_SIZE
    assert protocol.connection.is_open


def test_a_write_under_the_send_limit_that_the_socket_takes_in_part_keeps_its_order() -> None:
    # The direct send that write() makes itself: a part sent, the rest queued in the
    # transport, and what follows queued behind it.
    protocol, transport, peer, reactor = wired()
    transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    first = bytes(range(256)) * 400  # 100 KiB: under SEND_LIMIT, over the socket's buffer
    assert len(first) <= transport.SEND_LIMIT
    protocol.write(first)
    assert transport.dataBuffer or transport._tempDataLen, "the socket took it all"
    assert reactor.writers == [transport]
    protocol.write(b"then this")
    received = bytearray()
    while len(received) < len(first) + 9:
        transport.doWrite()
        received += peer.recv(1 << 20)
    assert bytes(received) == first + b"then this"
