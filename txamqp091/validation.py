"""Argument checks for every public channel and connection method, run before anything is sent.

A bad argument must fail at the call, naming the argument, not as a broker
error a round trip later (or, worse, as a malformed frame that costs the whole
connection: a 300-byte routing key, a priority of 256, a header value the codec
cannot encode). Each public method of the shared client layer (and of the
surviving channel) calls the function of the same name here first thing:

- ``TypeError`` when a value has the wrong type (``queue=None``, ``durable="yes"``);
- ``ValueError`` when it is out of range (a shortstr over 255 UTF-8 bytes, a
  negative prefetch, a delivery mode other than 1 or 2).

Both name the argument in their message. The checks are cheap (no encoding for
short strings, a type walk for header tables) because ``basic_publish`` runs
them once per message. Only the standard library and the core are imported.
"""

from __future__ import annotations

import datetime
import decimal
import operator
from collections.abc import Callable, Mapping
from typing import Any

from .core.codec import MAX_NESTING_DEPTH
from .core.spec import BasicProperties

__all__ = [
    "basic_ack",
    "basic_cancel",
    "basic_consume",
    "basic_get",
    "basic_nack",
    "basic_publish",
    "basic_qos",
    "basic_recover",
    "basic_reject",
    "callback",
    "close",
    "consumer_get",
    "exchange_bind",
    "exchange_declare",
    "exchange_delete",
    "exchange_unbind",
    "field_table",
    "flow",
    "properties",
    "queue_bind",
    "queue_declare",
    "queue_delete",
    "queue_purge",
    "queue_unbind",
    "shortstr",
    "update_secret",
]

_U8 = 0xFF
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
#: Field-table value types the codec encodes (their subclasses too: the ``types`` wrappers).
_FIELD_TYPES = (
    str,
    bytes,
    bytearray,
    bool,
    int,
    float,
    decimal.Decimal,
    datetime.datetime,
    type(None),
)


def _type_name(value: Any) -> str:
    return type(value).__name__


# -- primitives --------------------------------------------------------------------------------


def shortstr(name: str, value: Any) -> None:
    """A str of at most 255 bytes once UTF-8 encoded (queue, exchange, routing key, tag)."""
    if type(value) is not str and not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {_type_name(value)}")
    # 63 characters are at most 252 UTF-8 bytes: only longer strings need encoding.
    if len(value) > 63:
        size = len(value.encode("utf-8"))
        if size > 255:
            raise ValueError(f"{name} is longer than 255 bytes once UTF-8 encoded ({size})")


def _optional_shortstr(name: str, value: Any) -> None:
    if value is not None:
        shortstr(name, value)


def flag(name: str, value: Any) -> None:
    """A bool (AMQP bits are not truthy values: ``durable="no"`` is a mistake)."""
    if value is not True and value is not False:
        raise TypeError(f"{name} must be a bool, not {_type_name(value)}")


def integer(name: str, value: Any, low: int, high: int) -> None:
    """An int (not a bool) in ``low..high``."""
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, not {_type_name(value)}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def callback(name: str, value: Any, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not callable(value):
        raise TypeError(f"{name} must be callable, not {_type_name(value)}")


def field_table(name: str, value: Any, depth: int = 0) -> None:
    """None or a mapping of str keys (at most 255 bytes) to values the codec encodes."""
    if value is None and depth == 0:
        return
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict, not {_type_name(value)}")
    if depth >= MAX_NESTING_DEPTH:
        raise ValueError(f"{name} is nested deeper than {MAX_NESTING_DEPTH} levels")
    for key, item in value.items():
        if type(key) is not str or len(key) > 63:
            if not isinstance(key, str):
                raise TypeError(f"{name} keys must be str, not {_type_name(key)}: {key!r}")
            if len(key.encode("utf-8")) > 255:
                raise ValueError(f"{name} key longer than 255 bytes: {key[:40]!r}...")
        kind = type(item)
        if kind is str or kind is int or kind is bytes or kind is bool or item is None:
            continue  # the common cases, inline: this runs for every published header
        _field_value(f"{name}[{key!r}]", item, depth)


def _field_value(name: str, value: Any, depth: int) -> None:
    kind = type(value)
    if kind is str or kind is int or kind is bool or kind is bytes or value is None:
        return  # int range is checked by the codec's own encoder
    if isinstance(value, Mapping):
        field_table(name, value, depth + 1)
    elif isinstance(value, (list, tuple)):
        if depth + 1 >= MAX_NESTING_DEPTH:
            raise ValueError(f"{name} is nested deeper than {MAX_NESTING_DEPTH} levels")
        for i, item in enumerate(value):
            _field_value(f"{name}[{i}]", item, depth + 1)
    elif not isinstance(value, _FIELD_TYPES):
        raise TypeError(
            f"{name}: a field table cannot hold a {_type_name(value)} ({value!r}); "
            "use str, bytes, bool, int, float, Decimal, datetime, dict, list or None"
        )


#: The shortstr properties, read in one call per message.
_SHORTSTR_PROPERTIES = (
    "content_type",
    "content_encoding",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)
_shortstr_properties = operator.attrgetter(*_SHORTSTR_PROPERTIES)


def properties(value: Any) -> None:
    """None or a ``BasicProperties`` whose fields fit their wire types.

    Runs once per published message: the common case (short strings, a delivery
    mode of 1 or 2, no priority) is a handful of comparisons.
    """
    if value is None:
        return
    if type(value) is not BasicProperties and not isinstance(value, BasicProperties):
        raise TypeError(f"properties must be a BasicProperties, not {_type_name(value)}")
    mode = value.delivery_mode
    if mode is not None and ((mode != 1 and mode != 2) or type(mode) is bool):
        integer("properties.delivery_mode", mode, 1, 2)
    if value.priority is not None:
        integer("properties.priority", value.priority, 0, _U8)
    if value.timestamp is not None:
        integer("properties.timestamp", value.timestamp, 0, _U64)
    if value.headers is not None:
        field_table("properties.headers", value.headers)
    for field in _shortstr_properties(value):
        if field is not None and (type(field) is not str or len(field) > 63):
            for name in _SHORTSTR_PROPERTIES:
                if getattr(value, name) is not None:
                    shortstr(f"properties.{name}", getattr(value, name))


# -- one function per public method ---------------------------------------------------------------


def exchange_declare(
    exchange: Any,
    exchange_type: Any,
    passive: Any,
    durable: Any,
    auto_delete: Any,
    internal: Any,
    arguments: Any,
) -> None:
    shortstr("exchange", exchange)
    shortstr("exchange_type", exchange_type)
    flag("passive", passive)
    flag("durable", durable)
    flag("auto_delete", auto_delete)
    flag("internal", internal)
    field_table("arguments", arguments)


def exchange_delete(exchange: Any, if_unused: Any) -> None:
    shortstr("exchange", exchange)
    flag("if_unused", if_unused)


def exchange_bind(destination: Any, source: Any, routing_key: Any, arguments: Any) -> None:
    shortstr("destination", destination)
    shortstr("source", source)
    shortstr("routing_key", routing_key)
    field_table("arguments", arguments)


exchange_unbind = exchange_bind


def queue_declare(
    queue: Any, passive: Any, durable: Any, exclusive: Any, auto_delete: Any, arguments: Any
) -> None:
    shortstr("queue", queue)
    flag("passive", passive)
    flag("durable", durable)
    flag("exclusive", exclusive)
    flag("auto_delete", auto_delete)
    field_table("arguments", arguments)


def queue_bind(queue: Any, exchange: Any, routing_key: Any, arguments: Any) -> None:
    shortstr("queue", queue)
    shortstr("exchange", exchange)
    _optional_shortstr("routing_key", routing_key)
    field_table("arguments", arguments)


queue_unbind = queue_bind


def queue_purge(queue: Any) -> None:
    shortstr("queue", queue)


def queue_delete(queue: Any, if_unused: Any, if_empty: Any) -> None:
    shortstr("queue", queue)
    flag("if_unused", if_unused)
    flag("if_empty", if_empty)


def basic_qos(prefetch_size: Any, prefetch_count: Any, global_qos: Any) -> None:
    integer("prefetch_size", prefetch_size, 0, _U32)
    integer("prefetch_count", prefetch_count, 0, _U16)
    flag("global_qos", global_qos)


def basic_recover(requeue: Any) -> None:
    flag("requeue", requeue)


def flow(active: Any) -> None:
    flag("active", active)


def basic_publish(
    exchange: Any, routing_key: Any, body: Any, properties_: Any, mandatory: Any
) -> None:
    # Once per message: the common case is a few identity checks, inline.
    if type(exchange) is not str or len(exchange) > 63:
        shortstr("exchange", exchange)
    if type(routing_key) is not str or len(routing_key) > 63:
        shortstr("routing_key", routing_key)
    if type(body) is not bytes and not isinstance(body, (bytearray, memoryview, str)):
        raise TypeError(f"body must be bytes or str, not {_type_name(body)}")
    if properties_ is not None:
        properties(properties_)
    if mandatory is not False and mandatory is not True:
        flag("mandatory", mandatory)


def basic_consume(
    queue: Any,
    on_message_callback: Any,
    auto_ack: Any,
    exclusive: Any,
    consumer_tag: Any,
    arguments: Any,
    run_in_thread: Any = False,
) -> None:
    shortstr("queue", queue)
    callback("on_message_callback", on_message_callback, optional=True)
    flag("auto_ack", auto_ack)
    flag("run_in_thread", run_in_thread)
    flag("exclusive", exclusive)
    _optional_shortstr("consumer_tag", consumer_tag)
    field_table("arguments", arguments)


def basic_cancel(consumer_tag: Any) -> None:
    shortstr("consumer_tag", consumer_tag)


def basic_get(queue: Any, auto_ack: Any) -> None:
    shortstr("queue", queue)
    flag("auto_ack", auto_ack)


def basic_ack(delivery_tag: Any, multiple: Any) -> None:
    integer("delivery_tag", delivery_tag, 0, _U64)
    flag("multiple", multiple)


def basic_nack(delivery_tag: Any, multiple: Any, requeue: Any) -> None:
    integer("delivery_tag", delivery_tag, 0, _U64)
    flag("multiple", multiple)
    flag("requeue", requeue)


def basic_reject(delivery_tag: Any, requeue: Any) -> None:
    integer("delivery_tag", delivery_tag, 0, _U64)
    flag("requeue", requeue)


def close(reply_code: Any, reply_text: Any) -> None:
    """Channel.Close and Connection.Close: a reply code and a text (cut to 255 bytes)."""
    integer("reply_code", reply_code, 0, _U16)
    if not isinstance(reply_text, str):
        raise TypeError(f"reply_text must be a str, not {_type_name(reply_text)}")


def update_secret(new_secret: Any, reason: Any) -> None:
    if not isinstance(new_secret, (bytes, str)):
        raise TypeError(f"new_secret must be bytes or str, not {_type_name(new_secret)}")
    shortstr("reason", reason)


def consumer_get(timeout: Any) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {_type_name(timeout)}")
    if not timeout >= 0:
        raise ValueError(f"timeout must not be negative, got {timeout}")


def on_callback(name: str) -> Callable[[Any], None]:
    """A checker for ``add_on_*_callback(callback)``."""

    def check(value: Any) -> None:
        callback(name, value)

    return check
