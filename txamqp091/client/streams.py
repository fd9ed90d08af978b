"""Client-side checks for consuming a RabbitMQ stream (``x-stream-offset``).

A stream consumer that RabbitMQ would refuse is refused here first, with a
``ValueError`` naming what is wrong, before anything is sent: the broker's own
refusal closes the channel (406 PRECONDITION_FAILED, or 540 NOT_IMPLEMENTED for
``auto_ack``), taking every other consumer on it along.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

__all__ = ["STREAM_OFFSET", "check_stream_consume"]

#: The consume argument that makes a consumer a stream consumer.
STREAM_OFFSET = "x-stream-offset"

_NAMED_OFFSETS = frozenset({"first", "last", "next"})
#: A time interval back from now, as ``x-max-age`` spells it: ``7D``, ``12h``, ``30m``...
_INTERVAL = re.compile(r"[0-9]+(Y|M|D|h|m|s)")


def _offset_error(value: Any) -> str | None:
    """Why ``value`` is not an ``x-stream-offset`` RabbitMQ takes, or None."""
    if isinstance(value, bool):
        return f"{value!r} is not an offset"
    if isinstance(value, int):
        return None if value >= 0 else f"offset {value} is negative"
    if isinstance(value, datetime.datetime):
        return None
    if isinstance(value, str):
        if value in _NAMED_OFFSETS or _INTERVAL.fullmatch(value):
            return None
        return f"{value!r} is none of first, last, next or an interval such as 7D or 30m"
    return f"a {type(value).__name__} is not an offset"


def check_stream_consume(
    arguments: dict[str, Any] | None, auto_ack: bool, prefetch_count: int
) -> ValueError | None:
    """The error a stream consume (one with ``x-stream-offset``) must fail with, or None.

    :param prefetch_count: the channel's consumer prefetch (``basic_qos`` with
        ``global_qos=False``); RabbitMQ refuses a stream consumer without one.
    """
    if not arguments or STREAM_OFFSET not in arguments:
        return None
    why = _offset_error(arguments[STREAM_OFFSET])
    if why is not None:
        return ValueError(
            f"{STREAM_OFFSET}: {why}; use first, last, next, an offset (int >= 0), "
            "a datetime or an interval such as 7D"
        )
    if auto_ack:
        return ValueError(f"auto_ack: a stream consumer ({STREAM_OFFSET}) must ack its messages")
    if prefetch_count <= 0:
        return ValueError(
            f"prefetch_count: a stream consumer ({STREAM_OFFSET}) needs a prefetch; "
            "call basic_qos(prefetch_count=N) on the channel first"
        )
    return None
