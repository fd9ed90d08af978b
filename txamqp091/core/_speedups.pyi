"""Types of the optional C accelerator built from ``_speedups.c`` (see ``_accel.py``)."""

from collections.abc import Callable
from typing import Any

from .codec import Buffer, FieldTable
from .events import Event
from .spec import BasicProperties

ABI: int

def decode_table(buf: Buffer, offset: int, /) -> tuple[FieldTable, int]: ...
def encode_table(table: Any, /) -> bytes: ...
def take_delivery(
    buf: Buffer,
    start: int,
    end: int,
    channel_id: int,
    frame_max: int,
    delivery_class: Callable[..., Event],
    /,
) -> tuple[Event, int] | None: ...
def take_deliveries(
    buf: Buffer,
    start: int,
    end: int,
    channel_id: int,
    frame_max: int,
    delivery_class: Callable[..., Event],
    events: list[Event],
    /,
) -> int | None: ...
def take_acks(
    buf: Buffer,
    start: int,
    end: int,
    channel_id: int,
    next_seq: int,
    frame_max: int,
    event_class: Callable[..., Event],
    events: list[Event],
    /,
) -> int | None: ...
def install_acks(
    event_class: type, init: Callable[..., None], slot_descriptors: tuple[Any, ...], /
) -> bool: ...
def take_read(
    data: bytes,
    frame_max: int,
    max_message_size: int,
    delivery_class: Callable[..., Event],
    /,
) -> tuple[int, Event] | None: ...
def install(
    properties_class: type,
    decode_table: Callable[[Any, int], tuple[FieldTable, int]],
    encode_table: Callable[[Any], bytes],
    /,
) -> None: ...
def install_init(properties_class: type, fields: tuple[str, ...], /) -> bool: ...
def set_table_fallbacks(
    decode_table: Callable[[Any, int], tuple[FieldTable, int]],
    encode_table: Callable[[Any], bytes],
    /,
) -> None: ...
def encode_message(
    head: bytes,
    channel_id: int,
    body: bytes,
    properties: BasicProperties | None,
    frame_max: int,
    /,
) -> bytes: ...
def encode_content(
    channel_id: int,
    method_payload: bytes,
    body: bytes,
    properties: BasicProperties | None,
    frame_max: int,
    /,
) -> bytes: ...
def set_delivery_layout(
    cls: type,
    field_descriptors: tuple[Any, ...],
    extra_descriptors: tuple[Any, ...],
    extra_defaults: tuple[Any, ...],
    /,
) -> bool: ...
def plain_properties(properties: object, /) -> bool: ...
def set_message_fallbacks(
    encode_message: Callable[..., bytes], encode_content: Callable[..., bytes], /
) -> None: ...
def install_publish(
    channel_class: type,
    slot_descriptors: tuple[Any, ...],
    channel_open: object,
    connection_open: object,
    /,
) -> Callable[..., int]: ...
def client_publish(
    channel: Any,
    exchange: Any,
    routing_key: Any,
    body: Any,
    properties: Any,
    mandatory: Any,
    /,
) -> Any: ...
def install_client_publish(
    channel_class: type, slot_descriptors: tuple[Any, ...], basic_publish: Callable[..., Any], /
) -> None: ...
def install_bare_waiter(waiter_class: type, init: Callable[..., Any], /) -> None: ...
def new_bare_waiter() -> Any: ...
def install_bare_succeeded(value_class: type, fallback: Callable[[Any], Any], /) -> None: ...
def bare_succeeded(value: Any, /) -> Any: ...
def install_deferred_await(
    deferred_class: type, deferred_await: Callable[..., Any], failure_class: type, /
) -> Any: ...
def install_try_resolve(
    runtime_class: type,
    try_resolve: Callable[..., Any],
    waiter_class: type,
    deferred_class: type,
    message_class: type,
    got_result: Any,
    no_keywords: Any,
    runtime_globals: dict[str, Any],
    resume_yielded: Callable[..., Any],
    coroutine_raised: Callable[..., Any],
    resolve_raised: Callable[..., Any],
    /,
) -> Any: ...
def install_flush(
    connection_class: type,
    core_class: type,
    data_to_send: Callable[..., Any],
    heartbeat_frame: bytes,
    /,
) -> Any: ...
def install_client_connection(
    connection_class: type, slot_descriptors: tuple[Any, ...], /
) -> None: ...
def install_connection_layout(
    connection_class: type, slot_descriptors: tuple[Any, ...], /
) -> None: ...
def fire_each(deferreds: Any, result: Any, /) -> None: ...
def install_fire_each(
    waiter_class: type,
    continue_: object,
    got_result: object,
    passthru: object,
    deferred_types: list[type],
    failure_class: type,
    failure_of: Callable[[BaseException], Any],
    /,
) -> bool: ...
