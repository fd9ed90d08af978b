"""The guide pages' programs (examples/guide/), run against the real broker.

``docs/quickstart.rst``, ``twisted.rst``, ``tornado.rst``, ``blocking.rst`` and
``consumer-service.rst`` include these files with ``literalinclude``; each test
runs one as a user would and checks what it prints, in a private virtual host.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pika
import pytest

from tests.consumer_service.support import ConsumerProcess, wait_until
from tests.tutorials.programs import EXAMPLES, private_vhost, run

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl"),
]

GUIDE = EXAMPLES / "guide"
#: A node that refuses every connection: the cluster examples must move on to the next.
DEAD_NODE = "amqp://guest:guest@127.0.0.1:1/"


@pytest.fixture(scope="module")
def vhost_url() -> Iterator[str]:
    yield from private_vhost()


def test_quickstart_publishes_gets_and_acks(vhost_url: str) -> None:
    assert run(GUIDE / "quickstart.py", [], vhost_url) == ["b'Hello, world'"]


def test_twisted_publisher_confirms_and_consumes_through_a_fanout(vhost_url: str) -> None:
    assert run(GUIDE / "twisted_publish.py", [], vhost_url) == ["b'body' text/plain logs"]


def test_twisted_service_skips_a_dead_node(vhost_url: str) -> None:
    lines = run(GUIDE / "twisted_service.py", [DEAD_NODE, vhost_url], vhost_url)
    assert lines == ["the broker has order 1", "got b'order 1'"]


def test_asyncio_consumes_with_async_for(vhost_url: str) -> None:
    assert run(GUIDE / "tornado_consume.py", [], vhost_url) == ["b'body'"]


def test_asyncio_client_skips_a_dead_node(vhost_url: str) -> None:
    lines = run(GUIDE / "tornado_client.py", [DEAD_NODE, vhost_url], vhost_url)
    assert lines == ["the broker has the message", "got b'body'"]


@pytest.mark.parametrize("acks", ["direct", "threadsafe"])
def test_blocking_thread_pool_acks_every_task_from_the_workers(vhost_url: str, acks: str) -> None:
    lines = run(GUIDE / "blocking_thread_pool.py", ["16", acks], vhost_url)
    assert sorted(lines[:-1]) == sorted(f"handled task {n}" for n in range(16))
    assert lines[-1] == "16 handled, 0 left in the queue"


def test_the_consumer_service_runs_the_guide_handler(vhost_url: str) -> None:
    """``--handler myapp.consumers:handle``: JSON orders are saved and acked; a body
    that is no JSON fails, is requeued once, then dead-lettered."""
    args = [
        "--url", vhost_url, "--queue", "orders", "--handler", "myapp.consumers:handle",
        "--declare", "--queue-type", "quorum", "--dead-letter-exchange", "orders.dlx",
        "--max-redeliveries", "1", "--shutdown-grace", "5",
    ]  # fmt: skip
    service = ConsumerProcess(args, handler_dir=GUIDE)
    try:
        service.wait_for("consuming")
        with pika.BlockingConnection(pika.URLParameters(vhost_url)) as connection:
            channel = connection.channel()
            channel.queue_declare("orders.dead", durable=True)
            channel.queue_bind("orders.dead", "orders.dlx")
            for body in (b'{"id": 1}', b"not json", b'{"id": 2}'):
                channel.basic_publish("", "orders", body)
            service.wait_for("saved order 1")
            service.wait_for("saved order 2")

            def dead_lettered() -> int:
                ok = channel.queue_declare("orders.dead", durable=True, passive=True)
                return int(ok.method.message_count)

            wait_until(lambda: dead_lettered() == 1, 15, "the poison message dead-lettered")
            method, _, body = channel.basic_get("orders.dead", auto_ack=True)
            assert body == b"not json"
            ok = channel.queue_declare("orders", durable=True, passive=True)
            assert ok.method.message_count == 0
        code, _ = service.terminate()
        assert code == 0, service.output()
    finally:
        service.kill()


def test_a_tornado_consumer_serves_its_consumer_metrics(vhost_url: str) -> None:
    pytest.importorskip("prometheus_client")
    lines = run(GUIDE / "metrics_tornado.py", [], vhost_url)
    assert lines == [
        "txamqp091_consumer_acked_total 2.0",
        "txamqp091_consumer_rejected_total 1.0",
    ]
