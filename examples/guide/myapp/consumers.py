"""A handler for ``twistd amqp-consumer --handler myapp.consumers:handle``.

``docs/consumer-service.rst`` includes it; ``tests/guide`` runs it under
``twistd amqp-consumer`` against the broker.
"""

from __future__ import annotations

import json
from typing import Any, cast

from twisted.internet import reactor, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from txamqp091 import Message

log = Logger()


async def save(order: dict[str, Any]) -> None:
    """Stands in for a database write: it completes on a later reactor turn."""
    await task.deferLater(cast(IReactorTime, reactor), 0, lambda: None)
    log.info("saved order {id}", id=order["id"])


async def handle(message: Message) -> None:
    order = json.loads(message.body)
    await save(order)  # returning (or the awaitable firing) acks
