"""examples/tornado_web_publisher.py end to end: 1,000 concurrent orders, all in the queue."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from txamqp091.tornado import connect

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def load_example() -> ModuleType:
    path = os.path.join(ROOT, "examples", "tornado_web_publisher.py")
    spec = importlib.util.spec_from_file_location("tornado_web_publisher", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = load_example()


@contextlib.asynccontextmanager
async def running_app(url: str, queue: str, deadline: float) -> AsyncIterator[tuple[Any, str]]:
    """The example app on a loopback port: yields its publisher and the orders URL."""
    publisher = example.OrderPublisher(url, queue, deadline=deadline)
    await publisher.start()
    server = HTTPServer(example.make_app(publisher))
    sock, port = bind_unused_port()
    server.add_sockets([sock])
    try:
        yield publisher, f"http://127.0.0.1:{port}/orders"
    finally:
        server.stop()
        await server.close_all_connections()
        await publisher.close()


@contextlib.asynccontextmanager
async def http_client(max_clients: int = 100) -> AsyncIterator[AsyncHTTPClient]:
    client = AsyncHTTPClient(force_instance=True, max_clients=max_clients)
    try:
        yield client
    finally:
        client.close()


async def post(client: AsyncHTTPClient, url: str, body: bytes) -> HTTPResponse:
    response: HTTPResponse = await client.fetch(
        url, method="POST", body=body, raise_error=False, request_timeout=30
    )
    return response


@pytest.mark.asyncio
@pytest.mark.broker
async def test_a_thousand_concurrent_orders_all_reach_the_queue_intact() -> None:
    queue = f"txamqp091.test.tornado.orders.{uuid.uuid4().hex}"
    orders = [
        json.dumps(
            {"order": i, "sku": f"SKU-{i % 17}", "note": "ünïcode ✓", "pad": "x" * (i % 300)}
        )
        for i in range(1000)
    ]
    try:
        async with running_app(AMQP_URL, queue, deadline=10.0) as (publisher, url):
            async with http_client(max_clients=100) as client:
                responses = await asyncio.gather(
                    *(post(client, url, order.encode()) for order in orders)
                )
            statuses = [r.code for r in responses]
            assert statuses == [202] * 1000, sorted(set(statuses))
            replies = [json.loads(r.body) for r in responses]
            assert all(reply["status"] == "accepted" for reply in replies)
            assert len({reply["message_id"] for reply in replies}) == 1000
            # One shared connection served every request.
            assert publisher.client.connections == 1 and publisher.client.is_connected

        conn = await connect(AMQP_URL)
        try:
            ch = await conn.channel()
            ok = await ch.queue_declare(queue, passive=True)
            assert ok.message_count == 1000
            consumer = await ch.basic_consume(queue)
            received: list[bytes] = []
            ids: set[str] = set()
            while len(received) < 1000:
                message = await consumer.get(timeout=5)
                assert message is not None, f"only {len(received)} of 1000 orders arrived"
                received.append(message.body)
                ids.add(message.properties.message_id)
                assert message.properties.delivery_mode == 2
                message.ack()
            assert await consumer.cancel() == 0
            assert sorted(received) == sorted(order.encode() for order in orders)
            assert ids == {reply["message_id"] for reply in replies}
        finally:
            await conn.close()
    finally:
        conn = await connect(AMQP_URL)
        try:
            ch = await conn.channel()
            await ch.queue_delete(queue)
        finally:
            await conn.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.asyncio
async def test_an_unreachable_broker_answers_503_with_a_clear_json_message() -> None:
    url = f"amqp://guest:guest@127.0.0.1:{closed_port()}/"
    async with running_app(url, "orders", deadline=2.0) as (_, orders_url):
        async with http_client() as client:
            response = await post(client, orders_url, b'{"order": 1}')
            empty = await post(client, orders_url, b"")
    assert response.code == 503
    assert response.headers["Content-Type"].startswith("application/json")
    reply = json.loads(response.body)
    assert reply["error"] == "the order queue is unavailable, try again later"
    assert "not confirmed within 2.0 s: the broker is unreachable" in reply["detail"]
    assert empty.code == 400


@pytest.mark.asyncio
async def test_a_broker_that_never_answers_gives_503_at_the_deadline() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        url = f"amqp://guest:guest@127.0.0.1:{port}/"
        async with running_app(url, "orders", deadline=0.5) as (_, orders_url):
            async with http_client() as client:
                start = loop.time()
                responses = await asyncio.gather(
                    *(post(client, orders_url, b'{"order": 1}') for _ in range(5))
                )
                elapsed = loop.time() - start
    finally:
        server.close()
        await server.wait_closed()
    assert [r.code for r in responses] == [503] * 5
    assert elapsed < 3.0
    assert "not confirmed within 0.5 s" in json.loads(responses[0].body)["detail"]


@pytest.mark.asyncio
@pytest.mark.broker
async def test_an_order_posted_during_an_outage_is_accepted_once_the_broker_is_back() -> None:
    from .faults import TcpProxy

    queue = f"txamqp091.test.tornado.orders.{uuid.uuid4().hex}"
    loop = asyncio.get_running_loop()
    try:
        with TcpProxy() as proxy:
            proxy.refuse()  # the broker is away when the server starts
            async with running_app(proxy.url(), queue, deadline=15.0) as (publisher, url):
                assert not publisher.client.is_connected
                async with http_client() as client:
                    posted = asyncio.ensure_future(post(client, url, b'{"order": "late"}'))
                    await asyncio.sleep(1.0)
                    assert not posted.done()  # waiting for the broker, not failed
                    await loop.run_in_executor(None, proxy.resume)
                    response = await posted
        assert response.code == 202, response.body
        conn = await connect(AMQP_URL)
        try:
            ch = await conn.channel()
            assert (await ch.queue_declare(queue, passive=True)).message_count == 1
        finally:
            await conn.close()
    finally:
        conn = await connect(AMQP_URL)
        try:
            ch = await conn.channel()
            await ch.queue_delete(queue)
        finally:
            await conn.close()
