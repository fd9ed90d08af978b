"""AMQPProtocol (asyncio) feeds a large write to its transport a slice at a time.

asyncio's transports copy what they are given into their buffer; spooled, a big
message never sits there whole (issue 13: peak RSS for a 128 MiB message). Real
sockets and a real event loop, with a peer that reads slowly.
"""

from __future__ import annotations

import asyncio
import socket

from txamqp091.client.spool import SPOOL_ABOVE, SPOOL_SLICE
from txamqp091.params import ConnectionParameters
from txamqp091.tornado.protocol import AMQPProtocol


def test_large_writes_are_spooled_in_order_and_a_close_waits_for_them() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ours, peer = socket.socketpair()
        peer.setblocking(False)
        protocol = AMQPProtocol(ConnectionParameters(), loop)
        transport, _ = await loop.create_connection(lambda: protocol, sock=ours)
        await asyncio.sleep(0)
        peer_data = bytearray()
        while True:  # the protocol header, sent on connection_made
            try:
                peer_data += peer.recv(1 << 16)
                break
            except BlockingIOError:
                await asyncio.sleep(0.001)
        assert peer_data == b"AMQP\x00\x00\x09\x01"
        paused: list[bool] = []
        protocol.connection.pause_writing = lambda: paused.append(True)  # type: ignore[method-assign]
        big = bytes(range(256)) * (3 * SPOOL_ABOVE // 256)
        protocol.write(big)
        protocol.write(b"small, after it")
        protocol.close_transport()
        received = bytearray()
        most_buffered = 0
        while True:
            most_buffered = max(most_buffered, transport.get_write_buffer_size())
            try:
                chunk = peer.recv(1 << 18)
            except BlockingIOError:
                await asyncio.sleep(0)
                continue
            if not chunk:
                break
            received += chunk
            await asyncio.sleep(0)
        assert bytes(received) == big + b"small, after it"
        assert paused
        assert most_buffered <= 3 * SPOOL_SLICE
        peer.close()

    asyncio.run(main())
