"""``txamqp091.handlers:http_forward``: ``twistd amqp-consumer`` POSTs each message to a
local twisted.web server; 2xx acks, 5xx requeues, 4xx rejects (into the DLQ)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pika
import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.consumer_service.support import (
    AMQP_URL,
    ConsumerProcess,
    dead_letter_queue,
    delete,
    drain,
    message_count,
    pika_channel,
    unique,
)
from txamqp091 import BasicProperties, Message
from txamqp091.handlers.http_forward import http_headers

pytestmark = pytest.mark.broker


class Hook(Resource):
    """Answers by body: ``ok`` 200; ``flaky`` 500 the first time, then 200; ``bad`` 400."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[bytes, dict[bytes, list[bytes]]]] = []

    def render_POST(self, request: Any) -> bytes:
        body = request.content.read()
        self.requests.append((body, dict(request.requestHeaders.getAllRawHeaders())))
        seen = sum(1 for b, _ in self.requests if b == body)
        if body == b"bad":
            request.setResponseCode(400)
        elif body == b"flaky" and seen == 1:
            request.setResponseCode(500)
        return b"thanks"

    def calls(self, body: bytes) -> int:
        return sum(1 for b, _ in self.requests if b == body)


async def eventually(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await task.deferLater(reactor, 0.1, lambda: None)


@pytest_twisted.ensureDeferred
async def test_http_forward_acks_requeues_and_rejects(tmp_path: Path) -> None:
    hook = Hook()
    port = reactor.listenTCP(0, Site(hook), interface="127.0.0.1")
    url = f"http://127.0.0.1:{port.getHost().port}/hook"
    queue, dlx, dlq = unique("hook"), unique("hook-dlx"), unique("hook-dlq")
    dead_letter_queue(dlx, dlq)
    process = ConsumerProcess(
        ["--url", AMQP_URL, "--queue", queue, "--handler", "txamqp091.handlers:http_forward",
         "--forward-url", url, "--forward-timeout", "5", "--forward-concurrency", "2",
         "--declare", "--dead-letter-exchange", dlx, "--max-redeliveries", "3"],
        tmp_path,
    )  # fmt: skip
    try:
        await eventually(lambda: "consuming" in process.output(), 30, "the consumer")
        with pika_channel() as channel:
            for body in (b"ok", b"flaky", b"bad"):
                channel.basic_publish(
                    "", queue, body,
                    pika.BasicProperties(
                        content_type="application/json", message_id=body.decode(),
                        headers={"tenant": "acme", "attempt": 1},
                    ),
                )  # fmt: skip
        await eventually(lambda: message_count(dlq) == 1, 30, "the 400 in the DLQ")
        await eventually(lambda: hook.calls(b"flaky") == 2, 30, "the retried 500")
        await eventually(lambda: message_count(queue) == 0, 30, "an empty queue")
        assert hook.calls(b"ok") == 1 and hook.calls(b"bad") == 1
        assert drain(dlq) == [b"bad"]
        _, headers = hook.requests[0]
        assert headers[b"Content-Type"] == [b"application/json"]
        assert headers[b"Tenant"] == [b"acme"] and headers[b"Attempt"] == [b"1"]
        assert headers[b"X-Amqp-Message-Id"] in ([b"ok"], [b"flaky"], [b"bad"])
        assert headers[b"X-Amqp-Routing-Key"] == [queue.encode()]
        code, _ = process.terminate()
        assert code == 0, process.output()
    finally:
        process.kill()
        await port.stopListening()
        delete([queue, dlq], [dlx])
    out = process.output()
    assert "answered 500" in out and "answered 400: not retried" in out, out


def test_headers_are_mapped() -> None:
    props = BasicProperties(
        content_type="text/plain", content_encoding="gzip", correlation_id="c-1",
        headers={"x-trace": b"abc", "ok": True, "nested": {"a": [1, 2]}, "bad name": "x",
                 "content-length": "9", "evil": "a\r\nInjected: yes"},
    )  # fmt: skip
    headers = http_headers(Message(1, "t", 1, True, "ex", "rk", props, b"body"))
    assert headers[b"Content-Type"] == [b"text/plain"]
    assert headers[b"Content-Encoding"] == [b"gzip"]
    assert headers[b"x-trace"] == [b"abc"] and headers[b"ok"] == [b"true"]
    assert headers[b"nested"] == [b'{"a":[1,2]}']
    assert b"bad name" not in headers and b"content-length" not in headers
    assert headers[b"evil"] == [b"a  Injected: yes"]
    assert headers[b"X-AMQP-Redelivered"] == [b"true"]
    assert headers[b"X-AMQP-Correlation-Id"] == [b"c-1"]
    assert b"X-AMQP-Message-Id" not in headers
