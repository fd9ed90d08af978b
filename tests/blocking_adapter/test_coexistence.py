"""The facade's loop thread leaves the application's own event loop alone.

Each test runs a fresh interpreter, so that no earlier test has installed a
reactor or an event loop: what the process sees is what the facade did.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.blocking_adapter.support import AMQP_URL, Names, message_count
from txamqp091 import blocking

pytestmark = pytest.mark.broker


def run(script: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"AMQP_URL": AMQP_URL, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_and_use_install_no_reactor_and_no_loop_in_the_callers_thread() -> None:
    out = run(
        """
        import asyncio, os, sys, threading
        from txamqp091 import blocking
        conn = blocking.BlockingConnection(os.environ["AMQP_URL"])
        conn.channel().queue_declare("", exclusive=True)
        print("twisted" in sys.modules, "twisted.internet.reactor" in sys.modules)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            print("no running loop here")
        # asyncio.run would refuse if a loop ran in this thread, and works:
        print(asyncio.run(asyncio.sleep(0, "asyncio.run works")))
        print(sorted(t.name for t in threading.enumerate() if t.name.startswith("txamqp091")))
        conn.close()
        """
    )
    assert out.splitlines() == [
        "False False",
        "no running loop here",
        "asyncio.run works",
        "['txamqp091-blocking']",
    ]


def test_an_application_asyncio_loop_and_blocking_calls_together() -> None:
    out = run(
        """
        import asyncio, os
        from txamqp091 import blocking

        def roundtrip(conn, body):
            ch = conn.channel()
            queue = ch.queue_declare("", exclusive=True).method.queue
            ch.confirm_delivery()
            ch.basic_publish("", queue, body)
            method, _, got = ch.basic_get(queue, auto_ack=True)
            ch.close()
            return got

        async def main():
            app_loop = asyncio.get_running_loop()
            ticks = []
            ticker = app_loop.call_later(0.01, ticks.append, "tick")
            conn = await asyncio.to_thread(blocking.BlockingConnection, os.environ["AMQP_URL"])
            from txamqp091.blocking._loop import loop_thread
            assert loop_thread().loop is not app_loop
            # From worker threads of the application's loop...
            bodies = await asyncio.gather(
                *(asyncio.to_thread(roundtrip, conn, f"t{i}".encode()) for i in range(4))
            )
            # ...and straight from a coroutine (it blocks this loop a moment, nothing worse).
            direct = roundtrip(conn, b"direct")
            await asyncio.sleep(0.05)
            conn.close()
            return bodies, direct, ticks

        print(asyncio.run(main()))
        """
    )
    assert out.strip() == "([b't0', b't1', b't2', b't3'], b'direct', ['tick'])"


def test_a_twisted_reactor_and_blocking_calls_together() -> None:
    pytest.importorskip("twisted")
    out = run(
        """
        import os
        from twisted.internet import reactor, threads
        from txamqp091 import blocking

        def work():
            with blocking.BlockingConnection(os.environ["AMQP_URL"]) as conn:
                ch = conn.channel()
                queue = ch.queue_declare("", exclusive=True).method.queue
                ch.basic_publish("", queue, b"through the reactor's thread pool")
                while True:
                    method, _, body = ch.basic_get(queue, auto_ack=True)
                    if body is not None:
                        return body
                    conn.sleep(0.01)

        results = []
        d = threads.deferToThread(work)
        d.addBoth(results.append)
        d.addBoth(lambda _: reactor.stop())
        reactor.callLater(30, reactor.stop)
        reactor.run()
        print(results)
        """
    )
    assert out.strip() == '[b"through the reactor\'s thread pool"]'


def test_a_script_that_exits_without_close_still_delivers(names: Names) -> None:
    queue = names.queue()
    out = run(
        f"""
        import os
        from txamqp091 import blocking
        conn = blocking.BlockingConnection(os.environ["AMQP_URL"])
        ch = conn.channel()
        ch.queue_declare({queue!r})
        for i in range(1000):
            ch.basic_publish("", {queue!r}, b"%d" % i)
        print("exiting")
        """
    )
    assert out.strip() == "exiting"
    with blocking.BlockingConnection(AMQP_URL) as conn:
        assert message_count(conn.channel(), queue, 1000) == 1000
