"""Every tutorial program under examples/tutorials/, run against the real broker.

The programs are the ones the docs include with ``literalinclude``; these tests
check what they print, the way the tutorial text says they behave. Each adapter
runs the same scenarios; the Twisted hello-world also runs in its
``inlineCallbacks`` spelling.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .programs import EXAMPLES, Program, private_vhost, run

pytestmark = [
    pytest.mark.broker,
    pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl"),
]

ADAPTERS = ["twisted", "asyncio"]


@pytest.fixture(scope="module")
def vhost_url() -> Iterator[str]:
    yield from private_vhost()


def program(adapter: str, name: str) -> Path:
    return EXAMPLES / "tutorials" / adapter / f"{name}.py"


@pytest.mark.parametrize(
    ("adapter", "sender", "receiver"),
    [
        ("twisted", "send", "receive"),
        ("twisted", "send_inline", "receive_inline"),
        ("asyncio", "send", "receive"),
    ],
)
def test_hello_world(vhost_url: str, adapter: str, sender: str, receiver: str) -> None:
    receiving = Program(program(adapter, receiver), [], vhost_url)
    try:
        receiving.expect(r"\[\*\] Waiting for messages")
        assert run(program(adapter, sender), [], vhost_url) == [" [x] Sent 'Hello World!'"]
        receiving.expect(r"^ \[x\] Received b'Hello World!'$")
    finally:
        receiving.interrupt()


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_work_queues(vhost_url: str, adapter: str) -> None:
    worker = Program(program(adapter, "worker"), [], vhost_url)
    try:
        worker.expect(r"\[\*\] Waiting for messages")
        for task in ("First message.", "Second message"):
            assert run(program(adapter, "new_task"), task.split(), vhost_url) == [
                f" [x] Sent {task}"
            ]
        worker.expect(r"^ \[x\] Received First message\.$")
        worker.expect(r"^ \[x\] Done$")
        worker.expect(r"^ \[x\] Received Second message$")
        worker.expect(r"^ \[x\] Done$")
    finally:
        worker.interrupt()


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_publish_subscribe(vhost_url: str, adapter: str) -> None:
    receivers = [Program(program(adapter, "receive_logs"), [], vhost_url) for _ in range(2)]
    try:
        for receiver in receivers:
            receiver.expect(r"\[\*\] Waiting for logs")
        run(program(adapter, "emit_log"), ["info:", "disk", "80%", "full"], vhost_url)
        for receiver in receivers:  # a fanout exchange: every receiver gets a copy
            receiver.expect(r"^ \[x\] info: disk 80% full$")
    finally:
        for receiver in receivers:
            receiver.interrupt()


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_routing(vhost_url: str, adapter: str) -> None:
    receiver = Program(program(adapter, "receive_logs_direct"), ["warning", "error"], vhost_url)
    try:
        receiver.expect(r"\[\*\] Waiting for logs")
        for severity, text in [("info", "not for me"), ("error", "boom"), ("warning", "hot")]:
            assert run(program(adapter, "emit_log_direct"), [severity, text], vhost_url) == [
                f" [x] Sent {severity}:{text}"
            ]
        # each sender closed its connection after its publish, so the broker routed them in
        # order: once "hot" is here, "not for me" would have arrived before it.
        receiver.expect(r"^ \[x\] error:boom$")
        receiver.expect(r"^ \[x\] warning:hot$")
        assert not any("not for me" in line for line in receiver.lines)
    finally:
        receiver.interrupt()


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_topics(vhost_url: str, adapter: str) -> None:
    receiver = Program(program(adapter, "receive_logs_topic"), ["kern.*", "*.critical"], vhost_url)
    try:
        receiver.expect(r"\[\*\] Waiting for logs")
        for key in ["kern.critical", "anonymous.info", "app.critical", "kern.disk.full"]:
            run(program(adapter, "emit_log_topic"), [key, f"from {key}"], vhost_url)
        receiver.expect(r"^ \[x\] kern\.critical:from kern\.critical$")
        receiver.expect(r"^ \[x\] app\.critical:from app\.critical$")
        # "kern.*" is exactly one word after kern.; the last key has two. Close the
        # receiver to read everything it printed.
        receiver.interrupt()
        printed = [line for line in receiver.lines if line.startswith(" [x]")]
        assert printed == [
            " [x] kern.critical:from kern.critical",
            " [x] app.critical:from app.critical",
        ]
    finally:
        receiver.interrupt()


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_rpc(vhost_url: str, adapter: str) -> None:
    server = Program(program(adapter, "rpc_server"), [], vhost_url)
    try:
        server.expect(r"\[x\] Awaiting RPC requests")
        assert run(program(adapter, "rpc_client"), ["10"], vhost_url) == [
            " [x] Requesting fib(10)",
            " [.] Got 55",
        ]
        server.expect(r"^ \[\.\] fib\(10\)$")
        assert run(program(adapter, "rpc_client"), ["30"], vhost_url)[-1] == " [.] Got 832040"
    finally:
        server.interrupt()


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_publisher_confirms(vhost_url: str, adapter: str) -> None:
    lines = run(program(adapter, "publisher_confirms"), [], vhost_url)
    assert len(lines) == 3, lines
    assert lines[0].startswith("Published 1,000 messages individually in ")
    assert lines[1].startswith("Published 1,000 messages in batches in ")
    assert lines[2].startswith("Published 1,000 messages and handled confirms asynchronously")
    assert lines[2].endswith("(0 nacked)")
