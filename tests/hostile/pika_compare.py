"""The hostile scenarios against pika 1.4.4's BlockingConnection, for comparison.

``python -m tests.hostile.pika_compare`` plays every scenario of
:mod:`tests.hostile.scenarios` to pika doing the same client step (connect;
a channel and a Queue.Declare; a consumer; confirm mode) and prints, per
scenario, what pika raised and how fast, and whether it sent Connection.Close
before closing. A scenario counts as handled when pika raised one of its own
``pika.exceptions`` within the scenario's deadline (plus a second) that does
not merely wrap a raw internal exception (``KeyError``, ``AttributeError``...);
the server hangs up on a client still waiting after 5 seconds.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from tests.hostile.scenarios import (
    CTAG,
    SCENARIOS,
    Scenario,
    confirm_pending,
    consume_pending,
    declare_pending,
)
from tests.hostile.server import HostileServer

HANG = 5.0
#: A pika error whose text names one of these wraps a raw internal exception: not handled.
RAW = ("AttributeError", "KeyError", "TypeError", "IndexError", "struct.error", "UnicodeDecode")


def pika_step(scenario: Scenario, url: str) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        if scenario.handshake:
            return
        ch = conn.channel()
        if scenario.client is consume_pending:
            ch.basic_consume("hostile-q", lambda *args: None, consumer_tag=CTAG)
        elif scenario.client is confirm_pending:
            ch.confirm_delivery()
        if scenario.client in (declare_pending, consume_pending, confirm_pending):
            ch.queue_declare("hostile-q2")
        conn.process_data_events(time_limit=HANG)
        conn.sleep(HANG)
    finally:
        if conn.is_open:
            conn.close()


def run(scenario: Scenario) -> dict[str, Any]:
    import pika.exceptions

    outcome: dict[str, Any] = {"error": None, "at": None}

    def client(url: str) -> None:
        try:
            pika_step(scenario, url)
        except BaseException as exc:
            outcome["error"] = exc
        outcome["at"] = time.monotonic()

    with HostileServer(scenario.server, drain_timeout=HANG) as server:
        thread = threading.Thread(target=client, args=(server.url(),), daemon=True)
        thread.start()
        thread.join(HANG + 3)
        server.done.wait(HANG + 3)
    peer = server.peer
    error = outcome["error"]
    hostile_at = peer.hostile_at if peer is not None else None
    elapsed = (
        outcome["at"] - hostile_at if outcome["at"] is not None and hostile_at is not None else None
    )
    handled = (
        isinstance(error, pika.exceptions.AMQPError)
        and not any(raw in str(error) for raw in RAW)
        and elapsed is not None
        and elapsed <= scenario.deadline + 1.0
    )
    closes = [c.reply_code for c in peer.connection_closes()] if peer is not None else []
    return {
        "name": scenario.name,
        "error": "hangs" if thread.is_alive() else f"{type(error).__name__}: {error}"[:90],
        "elapsed": elapsed,
        "handled": handled,
        "closes": closes,
    }


def main() -> int:
    results = [run(scenario) for scenario in SCENARIOS]
    for r in results:
        took = "   -   " if r["elapsed"] is None else f"{r['elapsed'] * 1000:7.1f}"
        mark = "ok " if r["handled"] else "NO "
        print(f"{mark} {r['name']:32} {took} ms  Close {r['closes'] or '-'}  {r['error']}")
    handled = sum(r["handled"] for r in results)
    closes = sum(bool(r["closes"]) for r in results)
    print(
        f"pika 1.4.4: {handled} of {len(results)} scenarios end in a pika.exceptions error "
        f"in time; Connection.Close sent in {closes}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
