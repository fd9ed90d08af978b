"""What the benchmark tests share: the scripts' folder on ``sys.path`` and a look at the
broker's queues, so that each test can check it left nothing behind."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.conftest import broker_address

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def bench_module(name: str) -> Any:
    """Import ``benchmarks/<name>.py`` as the scripts import each other (by bare name)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return __import__(name)


class CountingMeter:
    """The client scripts' meter, reduced to what the timed loops call."""

    def __init__(self) -> None:
        self.started = self.stopped = 0

    def start(self) -> None:
        self.started += 1

    def stop(self) -> None:
        self.stopped += 1

    def result(self, n: int, **extra: Any) -> dict[str, Any]:
        return {"n": n, **extra}


def queue_exists(name: str) -> bool:
    """Whether the broker holds queue ``name`` (a passive declare on a fresh connection)."""
    from txamqp091.core import events as ev
    from txamqp091.core import spec

    floor = bench_module("_floor")
    host, port = broker_address()
    link = floor.Link(host, port, "guest", "guest", 10.0)
    try:
        channel = link.channel()
        channel.send_method(spec.QueueDeclare(queue=name, passive=True))
        event = link.pump(lambda e: isinstance(e, (ev.MethodReply, ev.ChannelClosed)))
        return isinstance(event, ev.MethodReply)
    except floor.FloorError:
        return False  # the passive declare closed the channel: 404, no such queue
    finally:
        link.close()
