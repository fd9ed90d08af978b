"""``--declare``: the queue, and optionally an exchange, its bindings and a
dead-letter exchange, declared on the service's surviving channel (which records
them, so they are declared again after every reconnect)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..service import RecoveringChannel

__all__ = ["Declaration", "declare"]


@dataclass
class Declaration:
    """What ``--declare`` declares: the queue, and optionally an exchange, its bindings
    and a dead-letter exchange."""

    queue_arguments: dict[str, Any] = field(default_factory=dict)
    exchange: str | None = None
    exchange_type: str = "direct"
    routing_keys: list[str] = field(default_factory=list)
    dead_letter_exchange: str | None = None


async def declare(channel: RecoveringChannel, queue: str, plan: Declaration) -> None:
    """Declare ``plan`` for ``queue`` (all durable); bind with each routing key, or the
    queue's own name when none is given."""
    if plan.dead_letter_exchange:
        await channel.exchange_declare(plan.dead_letter_exchange, "fanout", durable=True)
    if plan.exchange:
        await channel.exchange_declare(plan.exchange, plan.exchange_type, durable=True)
    await channel.queue_declare(queue, durable=True, arguments=plan.queue_arguments or None)
    if plan.exchange:
        for key in plan.routing_keys or [queue]:
            await channel.queue_bind(queue, plan.exchange, key)
