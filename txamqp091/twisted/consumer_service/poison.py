"""How often a message has failed: so a poison message is requeued a bounded number of times.

A message that makes its handler fail every time would otherwise be requeued and
redelivered in a tight loop (thousands of times a second). The service asks
:class:`RedeliveryCounter` how many times this message has now failed, and rejects
it once that exceeds ``--max-redeliveries``.

Two sources, the larger wins:

* ``x-delivery-count``: quorum queues stamp every redelivery with the number of
  earlier failed deliveries. It is exact and survives restarts and other consumers.
* A local count of this process's failures, keyed by ``message_id`` when the
  publisher set one, else by the delivery's identity (exchange, routing key and a
  digest of the body). Its limits: it forgets on restart; each consumer process
  counts alone, so with N consumers a message may be tried up to N times the limit;
  messages without ``message_id`` and with the same body and routing share one
  count; and it holds at most ``max_entries`` messages, forgetting the least
  recently failed first.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from ...message import Message

__all__ = ["DELIVERY_COUNT_HEADER", "RedeliveryCounter", "message_key"]

DELIVERY_COUNT_HEADER = "x-delivery-count"


def message_key(message: Message) -> tuple[str, ...]:
    """The local count's key: the publisher's ``message_id``, else the delivery's identity."""
    message_id = message.properties.message_id
    if message_id:
        return ("id", message_id)
    digest = hashlib.blake2b(message.body, digest_size=16).hexdigest()
    return ("body", message.exchange, message.routing_key, digest)


def broker_delivery_count(message: Message) -> int | None:
    """Earlier failed deliveries according to the broker (quorum queues), if it says."""
    headers = message.properties.headers
    if not headers:
        return None
    count = headers.get(DELIVERY_COUNT_HEADER)
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    return None


class RedeliveryCounter:
    """Failures per message, from the broker's header or a bounded local count."""

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._failures: OrderedDict[tuple[str, ...], int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def failed(self, message: Message) -> int:
        """Count one more failure of ``message``; return how many it has had in all."""
        key = message_key(message)
        failures = self._failures
        local = failures.pop(key, 0) + 1
        failures[key] = local
        if len(failures) > self.max_entries:
            failures.popitem(last=False)
        from_broker = broker_delivery_count(message)
        return local if from_broker is None else max(local, from_broker + 1)

    def succeeded(self, message: Message) -> None:
        """The message is done with: forget it (cheap when nothing is being counted)."""
        if self._failures:
            self._failures.pop(message_key(message), None)

    def settled(self, message: Message) -> None:
        """The message left the queue for good (rejected): forget it."""
        self.succeeded(message)
