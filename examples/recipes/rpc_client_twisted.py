"""RPC with direct reply-to, many calls over one connection (Twisted).

The tutorial's client connects once per call; a real client keeps one connection,
one channel and one reply consumer, and routes each answer to the call waiting for
it by ``correlation_id``. Confirm mode and ``mandatory=True`` make a request that no
server's queue takes fail at once with ``UnroutableError`` instead of timing out.

Run the tutorial's server (``examples/tutorials/twisted/rpc_server.py``), then
``python examples/recipes/rpc_client_twisted.py 10 20 30``: the calls run
concurrently and it prints ``fib(10) = 55`` and so on. ``docs/recipes/rpc.rst``
includes this file; ``tests/tutorials/test_recipes.py`` runs it.
"""

from __future__ import annotations

import os
import sys
import uuid
from typing import Any

from twisted.internet import defer, task

from txamqp091 import BasicProperties, Message
from txamqp091.exceptions import UnroutableError
from txamqp091.twisted import Channel, Connection, connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
REPLY_TO = "amq.rabbitmq.reply-to"


class RpcClient:
    """Calls over one channel; answers are matched to their calls by correlation id."""

    def __init__(self, reactor: Any, channel: Channel) -> None:
        self.reactor = reactor
        self.channel = channel
        self.waiting: dict[str, defer.Deferred[bytes]] = {}

    @classmethod
    async def open(cls, reactor: Any, connection: Connection) -> RpcClient:
        client = cls(reactor, await connection.channel())
        # Direct reply-to: consume before the first request, on the publishing
        # channel, with auto_ack=True (the broker refuses anything else).
        await client.channel.basic_consume(
            REPLY_TO, on_message_callback=client._on_reply, auto_ack=True
        )
        await client.channel.confirm_delivery()
        return client

    def _on_reply(self, reply: Message) -> None:
        waiting = self.waiting.pop(reply.properties.correlation_id or "", None)
        if waiting is not None and not waiting.called:
            waiting.callback(reply.body)
        # An answer nobody waits for any more (its call timed out) is dropped.

    async def call(self, routing_key: str, body: bytes, timeout: float = 10.0) -> bytes:
        """The answer's body; raises ``UnroutableError`` (no server) or ``defer.TimeoutError``."""
        correlation_id = uuid.uuid4().hex
        answer: defer.Deferred[bytes] = defer.Deferred()
        self.waiting[correlation_id] = answer
        try:
            await self.channel.basic_publish(
                "",
                routing_key,
                body,
                properties=BasicProperties(reply_to=REPLY_TO, correlation_id=correlation_id),
                mandatory=True,
            )
            answer.addTimeout(timeout, self.reactor)  # errbacks with defer.TimeoutError
            return await answer
        finally:
            self.waiting.pop(correlation_id, None)


async def fib(client: RpcClient, n: int) -> str:
    try:
        answer = await client.call("rpc_queue", str(n).encode())
    except UnroutableError as error:
        return f"fib({n}): no server consumes rpc_queue ({error.reply_code} {error.reply_text})"
    return f"fib({n}) = {int(answer)}"


async def main(reactor: Any, numbers: list[int]) -> None:
    connection = await connect(reactor, URL)
    try:
        client = await RpcClient.open(reactor, connection)
        calls = [defer.ensureDeferred(fib(client, n)) for n in numbers]
        for line in await defer.gatherResults(calls):
            print(line)
    finally:
        await connection.close()


if __name__ == "__main__":
    numbers = [int(arg) for arg in sys.argv[1:]] or [30]
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, numbers)))
