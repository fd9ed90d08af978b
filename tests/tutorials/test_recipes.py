"""The recipes' programs (examples/recipes/), run against the real broker."""

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


@pytest.fixture(scope="module")
def vhost_url() -> Iterator[str]:
    yield from private_vhost()


def test_dead_letter_retry_delays_then_parks_a_failing_message(vhost_url: str) -> None:
    lines = run(EXAMPLES / "recipes" / "dead_letter_retry.py", [], vhost_url)
    assert lines == [
        "processed order 1",
        "attempt 1 failed (cannot process fail order 2); retrying in 200 ms",
        "attempt 2 failed (cannot process fail order 2); retrying in 200 ms",
        "parked fail order 2 after 3 attempts",
    ]


def queue_counts(url: str, queue: str) -> tuple[int, int]:
    """(ready, unacked) messages in ``queue``, from the broker's own count."""
    import subprocess
    from urllib.parse import unquote, urlsplit

    vhost = unquote(urlsplit(url).path[1:])
    out = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_queues",
            "-p",
            vhost,
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "--no-table-headers",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for line in out.splitlines():
        name, ready, unacked = line.split()
        if name == queue:
            return int(ready), int(unacked)
    raise AssertionError(f"no queue {queue!r} in {out!r}")


@pytest.mark.parametrize("adapter", ["twisted", "asyncio"])
def test_blocking_handlers_run_in_threads_and_every_message_is_acked(
    vhost_url: str, adapter: str
) -> None:
    import time

    import pika

    queue = f"jobs-{adapter}"
    consumer = Program(EXAMPLES / "recipes" / f"threads_{adapter}.py", [queue], vhost_url)
    try:
        consumer.expect(r"\[\*\] Waiting for messages")
        with pika.BlockingConnection(pika.URLParameters(vhost_url)) as connection:
            channel = connection.channel()
            for i in range(12):
                channel.basic_publish("", queue, f"job {i}".encode())
        handled = {consumer.expect(r"^job \d+ handled").group(0) for _ in range(12)}
        where = "reactor" if adapter == "twisted" else "loop"
        assert handled == {f"job {i} handled" for i in range(12)}
        assert all(f"(in the {where} thread: False)" in line for line in consumer.lines[1:])
        deadline = time.monotonic() + 30
        while queue_counts(vhost_url, queue) != (0, 0):  # every message acked
            assert time.monotonic() < deadline, queue_counts(vhost_url, queue)
            time.sleep(0.5)
    finally:
        consumer.interrupt()


@pytest.mark.parametrize("adapter", ["twisted", "asyncio"])
def test_tls_checks_the_broker_and_presents_a_client_certificate(
    tmp_path: Path, adapter: str
) -> None:
    from .tls import TlsFront, make_pki

    pki = make_pki(tmp_path)
    front = TlsFront(pki, ("127.0.0.1", 5672))
    program = EXAMPLES / "recipes" / f"tls_{adapter}.py"
    common = ["--host", "localhost", "--port", str(front.port), "--cafile", str(pki["ca"])]
    try:
        lines = run(
            program,
            [*common, "--certfile", str(pki["client_cert"]), "--keyfile", str(pki["client_key"])],
            "",
        )
        assert lines == [f"sent over TLS to localhost:{front.port}"]
        assert front.client_subjects == ["txamqp091-recipe-client"]
        # Without a client certificate the front refuses the handshake...
        refused = Program(program, common, "")
        assert refused.finish(60) != 0
        # ...and a certificate for another name than the one we dial is refused by us.
        wrong_name = Program(program, [*common[:1], "127.0.0.1", *common[2:]], "")
        assert wrong_name.finish(60) != 0
        output = "\n".join(wrong_name.lines)
        assert any(word in output.lower() for word in ("certificate", "mismatch")), output
    finally:
        front.close()


def test_heartbeat_is_negotiated_and_a_publish_confirmed(vhost_url: str) -> None:
    lines = run(EXAMPLES / "recipes" / "heartbeats_blocked.py", [], vhost_url)
    assert lines == ["heartbeat: 10 s", "published and confirmed (blocked now: False)"]


@pytest.mark.broker
def test_hooks_and_log_lines_tell_a_connection_loss_and_the_recovery() -> None:
    from tests.integration.faults import TcpProxy

    with TcpProxy() as proxy:
        program = Program(EXAMPLES / "recipes" / "hooks_and_logging.py", [], proxy.url())
        try:
            program.expect(r"^INFO txamqp091\.tornado: .*connected to .* \(connection 1\)$")
            program.expect(r"^hook: connected \(heartbeat \d+ s\)$")
            program.expect(r"^hook: channel 1 open$")
            program.expect(r"Ready")
            proxy.reset()
            program.expect(r"^WARNING txamqp091\.tornado: .*lost the connection to .*reconnecting")
            program.expect(r"^hook: disconnected \(\w+\)$")
            program.expect(r"^INFO txamqp091\.tornado: .*connected to .* \(connection 2\)$")
            program.expect(r"^hook: connected")
            program.expect(r"^hook: channel 1 recovered$")
            assert program.finish(30) == 0, program.lines
            assert program.lines[-2:] == [
                f"INFO txamqp091.tornado: txamqp091: disconnected from 127.0.0.1:{proxy.port}",
                "hook: disconnected (asked for)",
            ]
        finally:
            program.interrupt()


def test_streams_read_from_each_kind_of_offset(vhost_url: str) -> None:
    lines = run(EXAMPLES / "recipes" / "streams_asyncio.py", [], vhost_url)
    assert lines == [
        "refused: prefetch_count: a stream consumer (x-stream-offset) needs a prefetch; "
        "call basic_qos(prefetch_count=N) on the channel first",
        "from the first: 0:created 1:paid 2:packed 3:shipped",
        "from offset 2: 2:packed 3:shipped",
        "next: delivered",
    ]


def test_quorum_queue_counts_redeliveries_and_a_stream_reads_from_an_offset(
    vhost_url: str,
) -> None:
    lines = run(EXAMPLES / "recipes" / "quorum_and_streams.py", [], vhost_url)
    assert lines == [
        "order 1: delivery_count=None",
        "order 1: delivery_count=1",
        "from offset 'first': 0:event 0, 1:event 1, 2:event 2, 3:event 3, 4:event 4",
        "from offset 3: 3:event 3, 4:event 4",
    ]


def test_a_consumer_the_broker_cancelled_consumes_again_once_its_queue_is_back(
    vhost_url: str,
) -> None:
    lines = run(EXAMPLES / "recipes" / "reconsume_asyncio.py", [], vhost_url)
    printed = [line for line in lines if not line.startswith("txamqp091:")]
    assert printed == [
        "got order 1",
        "the broker cancelled the consumer",
        "got order 2 on the same consumer",
    ]
    logged = [line for line in lines if line.startswith("txamqp091:")]
    assert any("consuming again in 0.2 s (attempt 1 of 10)" in line for line in logged), logged


def test_quorum_single_active_consumer_and_priority_arguments_pass_through(
    vhost_url: str,
) -> None:
    lines = run(EXAMPLES / "recipes" / "quorum_arguments_twisted.py", [], vhost_url)
    assert lines == [
        "orders: delivery_count None then 1",
        "ledger: the active consumer got 3, the waiting one 0",
        "orders: the priority 10 consumer got order 2",
    ]


@pytest.fixture
def fresh_vhost_url() -> Iterator[str]:
    """A vhost of the test's own: the tutorial server's ``rpc_queue`` outlives it."""
    yield from private_vhost()


@pytest.mark.parametrize("adapter", ["twisted", "asyncio"])
def test_rpc_client_makes_many_calls_on_one_connection(fresh_vhost_url: str, adapter: str) -> None:
    client = EXAMPLES / "recipes" / f"rpc_client_{adapter}.py"
    assert run(client, ["10", "20"], fresh_vhost_url) == [
        "fib(10): no server consumes rpc_queue (312 NO_ROUTE)",
        "fib(20): no server consumes rpc_queue (312 NO_ROUTE)",
    ]
    server = Program(EXAMPLES / "tutorials" / adapter / "rpc_server.py", [], fresh_vhost_url)
    try:
        server.expect(r"Awaiting RPC requests")
        assert run(client, ["10", "20", "30"], fresh_vhost_url) == [
            "fib(10) = 55",
            "fib(20) = 6765",
            "fib(30) = 832040",
        ]
    finally:
        server.interrupt()
