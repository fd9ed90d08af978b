"""WriteSpool.spools_above is takes()'s rule as one number, through every change of the queue.

The adapters' direct-send paths compare a write's length against it instead of
calling takes(): if it fell out of step with the queue, a small write could pass a
spooled one and the stream would be out of order.
"""

from __future__ import annotations

from txamqp091.client.spool import WriteSpool

probe_sizes = [b"", b"x", b"x" * 10, b"x" * 11, b"x" * 100]


def test_spools_above_follows_the_queue_through_add_pump_full_and_clear() -> None:
    spool = WriteSpool(above=10, piece=4)
    written: list[bytes] = []

    def agrees() -> None:
        for data in probe_sizes:
            assert spool.takes(data) is (len(data) > spool.spools_above)

    assert spool.spools_above == 10  # empty: only a large write is spooled
    agrees()
    assert not spool.takes(b"x" * 10) and spool.takes(b"x" * 11)
    spool.add(b"a" * 11)
    assert spool.takes(b"") and spool.spools_above == -1  # all queue behind it
    agrees()
    spool.full = True
    assert not spool.pump(lambda piece: written.append(bytes(piece)))
    assert written == [] and spool.takes(b"")  # still waiting
    spool.full = False
    spool.add(b"b")
    assert spool.pump(lambda piece: written.append(bytes(piece)))
    assert b"".join(written) == b"a" * 11 + b"b" and written[0] == b"aaaa"
    assert spool.spools_above == 10 and not spool.takes(b"small")  # drained
    agrees()
    spool.add(b"c" * 20)
    spool.close_pending = True
    spool.clear()
    assert spool.spools_above == 10 and not spool and not spool.close_pending
    agrees()
