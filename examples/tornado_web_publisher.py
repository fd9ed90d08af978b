"""A Tornado web app that turns ``POST /orders`` into confirmed RabbitMQ messages.

Each request body is published to ``--queue`` (persistent, mandatory) with
publisher confirms through ONE connection and ONE channel shared by every
request of the process. The handler answers:

- ``202 Accepted`` with ``{"status": "accepted", "message_id": ...}`` once the
  broker has confirmed the message (it is in the queue);
- ``503 Service Unavailable`` with ``{"error": ..., "detail": ...}`` when the
  broker cannot be reached, refuses the message, or does not confirm it within
  ``--deadline`` seconds (for example while a resource alarm blocks publishers:
  the connection's ``blocked_connection_timeout`` is the same deadline);
- ``400 Bad Request`` for an empty body.

The connection belongs to one ``AMQPClient`` per process, started with the server
(after any fork, so each process of a forking server has its own). The client
reconnects by itself with backoff and replays the channel's confirm mode and queue
declaration; a request that arrives during an outage waits for the reconnect, up to
``--deadline``, and gets a 503 only if the broker is still away by then.

    python examples/tornado_web_publisher.py --port 8888 \\
        --url amqp://guest:guest@127.0.0.1:5672/ --queue orders

    curl -i -X POST --data '{"sku": "A-1", "qty": 2}' http://127.0.0.1:8888/orders
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import uuid
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import tornado.web  # noqa: E402
from tornado.httpserver import HTTPServer  # noqa: E402

from txamqp091 import BasicProperties, DeliveryMode  # noqa: E402
from txamqp091.exceptions import (  # noqa: E402
    AMQPError,
    ConnectionBlockedTimeout,
    PublishTimeout,
)
from txamqp091.params import ParametersLike, normalize_parameters  # noqa: E402
from txamqp091.tornado import AMQPClient, RecoveringChannel  # noqa: E402

log = logging.getLogger("tornado_web_publisher")


class OrderPublisher:
    """One ``AMQPClient`` per process, and one surviving confirm-mode channel on it.

    The client reconnects with backoff (moving to another node when given several) and
    replays the channel's confirm mode and queue declaration on every new connection,
    so this class holds no reconnect logic of its own. A publish made while the broker
    is away waits for the next connection, up to ``deadline``.

    :param parameters: a URL, ``ConnectionParameters`` or a list of either (cluster nodes).
    :param queue: the queue the orders go to (declared durable).
    :param deadline: seconds a publish may take, waiting for a connection included,
        before it counts as failed; also the ``blocked_connection_timeout`` unless one
        is given.
    """

    def __init__(self, parameters: ParametersLike, queue: str, deadline: float = 5.0) -> None:
        nodes = [
            p
            if p.blocked_connection_timeout is not None
            else p.replace(blocked_connection_timeout=deadline)
            for p in normalize_parameters(parameters)
        ]
        self.client = AMQPClient(nodes, publish_timeout=deadline)
        self.queue = queue
        self.deadline = deadline
        self._channel: asyncio.Future[RecoveringChannel] | None = None

    @property
    def is_blocked(self) -> bool:
        conn = self.client.connection
        return conn is not None and conn.is_open and conn.is_blocked

    async def start(self) -> None:
        """Start the client: returns after the first connection attempt, made or not."""
        await self.client.start()

    def channel(self) -> asyncio.Future[RecoveringChannel]:
        """The shared channel, set up once; a failed set-up is tried again by the next caller."""
        channel = self._channel
        if channel is None or (channel.done() and channel.exception() is not None):
            channel = self._channel = asyncio.ensure_future(self._set_up())
            # A request that gave up must not cancel the set-up the others wait for, and
            # a failure nobody is left to see must not be logged as unretrieved.
            channel.add_done_callback(lambda f: f.cancelled() or f.exception())
        return channel

    async def _set_up(self) -> RecoveringChannel:
        channel = await self.client.channel()
        await channel.confirm_delivery()
        await channel.queue_declare(self.queue, durable=True)
        return channel

    async def publish(self, body: bytes, message_id: str) -> None:
        """Publish ``body``; returns once the broker confirmed it, within ``deadline``."""

        async def publish_confirmed() -> None:
            channel = await asyncio.shield(self.channel())
            properties = BasicProperties(
                content_type="application/json",
                delivery_mode=DeliveryMode.Persistent,
                message_id=message_id,
            )
            await channel.basic_publish("", self.queue, body, properties, mandatory=True)

        await asyncio.wait_for(publish_confirmed(), self.deadline)

    async def close(self) -> None:
        await self.client.stop()


class OrdersHandler(tornado.web.RequestHandler):
    def initialize(self, publisher: OrderPublisher) -> None:
        self.publisher = publisher

    async def post(self) -> None:
        body = self.request.body
        if not body:
            self.reply(400, {"error": "empty order", "detail": "POST the order as the body"})
            return
        message_id = uuid.uuid4().hex
        try:
            await self.publisher.publish(body, message_id)
        except (asyncio.TimeoutError, PublishTimeout):
            detail = (
                "the broker is blocking publishers (resource alarm)"
                if self.publisher.is_blocked
                else "the broker is unreachable or slow"
            )
            self.unavailable(f"not confirmed within {self.publisher.deadline} s: {detail}")
        except ConnectionBlockedTimeout as exc:
            self.unavailable(f"the broker is blocking publishers: {exc}")
        except (AMQPError, OSError) as exc:
            self.unavailable(f"{type(exc).__name__}: {exc}")
        else:
            self.reply(202, {"status": "accepted", "message_id": message_id})

    def unavailable(self, detail: str) -> None:
        log.warning("order not accepted: %s", detail)
        self.set_header("Retry-After", "5")
        self.reply(
            503, {"error": "the order queue is unavailable, try again later", "detail": detail}
        )

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        self.set_status(status)
        self.write(payload)  # a dict is sent as application/json


def make_app(publisher: OrderPublisher) -> tornado.web.Application:
    return tornado.web.Application([(r"/orders", OrdersHandler, {"publisher": publisher})])


async def serve(args: argparse.Namespace) -> None:
    publisher = OrderPublisher(args.url, args.queue, deadline=args.deadline)
    server: HTTPServer = make_app(publisher).listen(args.port, args.address)
    log.info("listening on http://%s:%d/orders", args.address, args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await publisher.start()
    if not publisher.client.is_connected:  # keep serving: requests wait or answer 503
        log.warning("broker not reachable yet; the client keeps trying")
    await stop.wait()
    log.info("shutting down")
    server.stop()
    await server.close_all_connections()
    await publisher.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--queue", default="orders")
    parser.add_argument(
        "--deadline", type=float, default=5.0, help="seconds to get a confirm before a 503"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
