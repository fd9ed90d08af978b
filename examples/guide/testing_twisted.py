"""Testing Twisted code against the fake broker: no RabbitMQ, no reactor.

``docs/testing.rst`` includes this file; ``tests/guide`` runs its test case.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txamqp091.twisted.testing import FakeBroker, connected


class PublishTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        broker = FakeBroker()
        conn, pump = connected(broker)  # handshake done
        ch = pump.result(conn.channel())  # flush, then the Deferred's result
        ok = pump.result(ch.queue_declare("", exclusive=True))
        pump.result(ch.basic_publish("", ok.queue, b"hello"))
        assert broker.bodies(ok.queue) == [b"hello"]
