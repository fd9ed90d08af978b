"""A Tornado consumer counting with ``ConsumerMetrics`` and serving ``/metrics``.

``txamqp091.metrics`` has no tie to Twisted: the counters the ``amqp-consumer``
service exports are plain attributes any consumer can bump, and ``exposition()``
gives the Prometheus text for any web handler. ``docs/consumer-service.rst``
includes this file; ``tests/guide`` runs it (it needs ``txamqp091[metrics]``).
"""

from __future__ import annotations

import asyncio
import os
import time

import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web

from txamqp091 import Message
from txamqp091.metrics import ConsumerMetrics
from txamqp091.tornado import connect

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")

metrics = ConsumerMetrics()


async def handle(message: Message) -> None:
    if message.body == b"bad":
        raise ValueError("cannot handle it")


async def on_message(message: Message) -> None:
    metrics.received += 1
    started = time.monotonic()
    try:
        await handle(message)
    except Exception:
        metrics.handler_errors += 1
        message.reject(requeue=False)
        metrics.rejected += 1
    else:
        message.ack()
        metrics.acked += 1
    finally:
        metrics.observe_duration(time.monotonic() - started)


class MetricsHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        body, content_type = metrics.exposition()
        self.set_header("Content-Type", content_type)
        self.write(body)


async def main() -> None:
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    server = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/metrics", MetricsHandler)]))
    server.add_sockets(sockets)
    conn = await connect(URL)
    channel = await conn.channel()
    ok = await channel.queue_declare("", exclusive=True)
    await channel.basic_consume(ok.queue, on_message)
    for body in (b"order 1", b"order 2", b"bad"):
        await channel.basic_publish("", ok.queue, body)
    while metrics.received < 3:
        await asyncio.sleep(0.01)

    client = tornado.httpclient.AsyncHTTPClient()
    response = await client.fetch(f"http://127.0.0.1:{port}/metrics")
    for line in response.body.decode().splitlines():
        if line.startswith(("txamqp091_consumer_acked", "txamqp091_consumer_rejected")):
            print(line)
    server.stop()
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
