"""Many threads on one connection: no message lost or duplicated, no exception."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import Counter
from typing import Any

import pytest

from tests.blocking_adapter.support import AMQP_URL, Names, message_count
from txamqp091 import blocking

pytestmark = [pytest.mark.broker, pytest.mark.slow]

THREADS = 8
PER_THREAD = 10_000


def test_eight_threads_publish_confirmed_while_a_pool_acks(names: Names) -> None:
    queue = names.queue()
    total = THREADS * PER_THREAD
    with blocking.BlockingConnection(AMQP_URL, timeout=60) as consumer_conn:
        consumer_ch = consumer_conn.channel()
        consumer_ch.queue_declare(queue)
        consumer_ch.basic_qos(prefetch_count=500)
        seen: Counter[bytes] = Counter()
        redelivered = 0
        pool = concurrent.futures.ThreadPoolExecutor(4)
        acked = 0
        acked_lock = threading.Lock()
        all_acked = threading.Event()

        def work(tag: int) -> None:
            nonlocal acked
            consumer_ch.basic_ack(tag)  # straight from a worker thread
            with acked_lock:
                acked += 1
                if acked == total:
                    all_acked.set()

        received = 0

        def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            nonlocal redelivered, received
            seen[body] += 1
            received += 1
            redelivered += method.redelivered
            pool.submit(work, method.delivery_tag)
            if received == total:
                ch.stop_consuming()

        consumer_ch.basic_consume(queue, on_message)
        consumer = threading.Thread(target=consumer_ch.start_consuming)
        consumer.start()

        errors: list[BaseException] = []
        with blocking.BlockingConnection(AMQP_URL, timeout=60) as publisher_conn:
            shared = publisher_conn.channel()
            shared.confirm_delivery()

            def publish(worker: int) -> None:
                try:
                    for i in range(PER_THREAD):
                        shared.basic_publish("", queue, f"{worker}:{i}".encode())
                except BaseException as exc:  # reported below
                    errors.append(exc)

            publishers = [threading.Thread(target=publish, args=(w,)) for w in range(THREADS)]
            start = time.monotonic()
            for thread in publishers:
                thread.start()
            for thread in publishers:
                thread.join(120)
            elapsed = time.monotonic() - start
        assert errors == []
        consumer.join(60)
        assert not consumer.is_alive()
        assert all_acked.wait(30)
        pool.shutdown()
        expected = {f"{w}:{i}".encode() for w in range(THREADS) for i in range(PER_THREAD)}
        assert set(seen) == expected
        assert max(seen.values()) == 1
        assert redelivered == 0
        assert message_count(consumer_ch, queue, 0) == 0
        print(f"{total} confirmed publishes from {THREADS} threads in {elapsed:.1f} s")


def test_threads_mixing_operations_on_one_connection(names: Names) -> None:
    """Declares, binds, publishes, gets and channel churn from many threads at once."""
    exchange = names.exchange()
    queues = [names.queue(f"t{i}") for i in range(6)]
    errors: list[BaseException] = []
    with blocking.BlockingConnection(AMQP_URL, timeout=30) as conn:
        conn.channel().exchange_declare(exchange, exchange_type="direct")

        def worker(queue: str) -> None:
            try:
                ch = conn.channel()
                ch.queue_declare(queue)
                ch.queue_bind(queue, exchange, routing_key=queue)
                for i in range(200):
                    ch.basic_publish(exchange, queue, f"{queue}:{i}".encode())
                got = []
                while len(got) < 200:
                    method, _, body = ch.basic_get(queue)
                    if method is None:
                        conn.sleep(0.005)
                        continue
                    got.append(body)
                    ch.basic_ack(method.delivery_tag)
                assert got == [f"{queue}:{i}".encode() for i in range(200)]
                for _ in range(5):  # channels opened and closed meanwhile
                    conn.channel().close()
                ch.close()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(q,)) for q in queues]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert errors == []
