"""Test-only helpers for the core tests (the reusable broker side is txamqp091.core.testing)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from txamqp091.core import spec
from txamqp091.core.connection import Connection
from txamqp091.core.events import ConnectionClosed, Event
from txamqp091.core.testing import StaticCredentials
from txamqp091.exceptions import ProtocolError


def describe(value: Any) -> Any:
    """A comparable form of an event (or of anything inside one).

    ``Delivery`` and ``PublishAcked`` are plain slotted classes and exceptions
    compare by identity, so event lists are compared through this.
    """
    if isinstance(value, BaseException):
        return (type(value).__name__, tuple(describe(a) for a in value.args))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return (type(value).__name__, *(describe(getattr(value, f.name)) for f in fields))
    if isinstance(value, Event):
        slots = [s for klass in type(value).__mro__ for s in getattr(klass, "__slots__", ())]
        return (type(value).__name__, *(describe(getattr(value, s)) for s in sorted(slots)))
    if isinstance(value, list | tuple):
        return type(value)(describe(v) for v in value)
    return value


def describe_all(events: Iterable[Event]) -> list[Any]:
    return [describe(e) for e in events]


def new_connection(**kwargs: Any) -> Connection:
    """A fresh connection (AWAIT_START) with the protocol header already taken."""
    kwargs.setdefault("credentials", StaticCredentials())
    conn = Connection(**kwargs)
    assert conn.data_to_send() == spec.PROTOCOL_HEADER
    return conn


def feed_bytewise(conn: Connection, data: bytes, now: float = 0.0) -> list[Event]:
    """Feed ``data`` one byte per ``receive_data`` call; all the events, in order."""
    events: list[Event] = []
    for i in range(len(data)):
        events.extend(conn.receive_data(data[i : i + 1], now))
    return events


def feed_chunks(conn: Connection, chunks: Iterable[bytes], now: float = 0.0) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events.extend(conn.receive_data(chunk, now))
    return events


def closed_with(events: list[Event]) -> ConnectionClosed:
    """The one ``ConnectionClosed`` that must end ``events``."""
    assert events, "no events"
    last = events[-1]
    assert isinstance(last, ConnectionClosed), events
    assert sum(isinstance(e, ConnectionClosed) for e in events) == 1, events
    return last


def protocol_error_code(events: list[Event]) -> int:
    """The reply code of the ProtocolError that ended the connection."""
    closed = closed_with(events)
    assert isinstance(closed.error, ProtocolError), closed
    assert closed.reply_code == closed.error.reply_code
    return closed.reply_code


#: A value of each Python field type that fits every AMQP width of that type.
_SMALL_SAMPLES: dict[str, Any] = {
    "int": 7,
    "str": "x",
    "bool": True,
    "bytes": b"\x00y",
    "FieldTable": {"k": 1},
}


def sample_method(method_class: type[spec.Method]) -> spec.Method:
    """An instance of ``method_class`` with a non-default value in every field."""
    values = {
        name: _SMALL_SAMPLES[method_class.__annotations__[name]] for name in method_class.FIELDS
    }
    method: spec.Method = method_class(**values)
    return method
