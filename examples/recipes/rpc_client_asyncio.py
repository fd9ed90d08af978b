"""RPC with direct reply-to, many calls over one connection (asyncio or Tornado).

The tutorial's client connects once per call; a real client keeps one connection,
one channel and one reply consumer, and routes each answer to the call waiting for
it by ``correlation_id``. Confirm mode and ``mandatory=True`` make a request that no
server's queue takes fail at once with ``UnroutableError`` instead of timing out.

Run the tutorial's server (``examples/tutorials/asyncio/rpc_server.py``), then
``python examples/recipes/rpc_client_asyncio.py 10 20 30``: the calls run
concurrently and it prints ``fib(10) = 55`` and so on. ``docs/recipes/rpc.rst``
includes this file; ``tests/tutorials/test_recipes.py`` runs it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from txamqp091 import BasicProperties, Message
from txamqp091.exceptions import UnroutableError
from txamqp091.tornado import Channel, Connection, connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
REPLY_TO = "amq.rabbitmq.reply-to"


class RpcClient:
    """Calls over one channel; answers are matched to their calls by correlation id."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.waiting: dict[str, asyncio.Future[bytes]] = {}

    @classmethod
    async def open(cls, connection: Connection) -> RpcClient:
        client = cls(await connection.channel())
        # Direct reply-to: consume before the first request, on the publishing
        # channel, with auto_ack=True (the broker refuses anything else).
        await client.channel.basic_consume(
            REPLY_TO, on_message_callback=client._on_reply, auto_ack=True
        )
        await client.channel.confirm_delivery()
        return client

    def _on_reply(self, reply: Message) -> None:
        future = self.waiting.pop(reply.properties.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(reply.body)
        # An answer nobody waits for any more (its call timed out) is dropped.

    async def call(self, routing_key: str, body: bytes, timeout: float = 10.0) -> bytes:
        """The answer's body; raises ``UnroutableError`` (no server) or ``asyncio.TimeoutError``."""
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiting[correlation_id] = future
        try:
            await self.channel.basic_publish(
                "",
                routing_key,
                body,
                properties=BasicProperties(reply_to=REPLY_TO, correlation_id=correlation_id),
                mandatory=True,
            )
            return await asyncio.wait_for(future, timeout)
        finally:
            self.waiting.pop(correlation_id, None)


async def fib(client: RpcClient, n: int) -> str:
    try:
        answer = await client.call("rpc_queue", str(n).encode())
    except UnroutableError as error:
        return f"fib({n}): no server consumes rpc_queue ({error.reply_code} {error.reply_text})"
    return f"fib({n}) = {int(answer)}"


async def main(numbers: list[int]) -> None:
    connection = await connect(URL)
    try:
        client = await RpcClient.open(connection)
        for line in await asyncio.gather(*(fib(client, n) for n in numbers)):
            print(line)
    finally:
        await connection.close()


if __name__ == "__main__":
    asyncio.run(main([int(arg) for arg in sys.argv[1:]] or [30]))
