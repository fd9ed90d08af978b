"""Whether the optional C accelerator (``_speedups.c``) is used, and installing it.

The accelerator replaces the per-message functions with C versions that give
the same results: :func:`.codec.decode_table`, :func:`.codec.encode_table`,
:meth:`.spec.BasicProperties.decode` and ``.encode`` (and builds its instances), the decoding part of
:meth:`.channel.Channel.take_delivery`, the parser's loop over a run of publisher acks, the publish encoders
:func:`.frames.encode_message` and :func:`.frames.encode_content`, and the common
cases of :meth:`.channel.Channel.publish` and ``.send_ack``. The pure-Python code stays the reference
implementation; the C code calls it for anything it does not handle itself, so
errors are always Python's.

Environment (read once, at import):

``TXAMQP091_NO_EXTENSIONS=1``
    use pure Python even when the extension is built;
``TXAMQP091_REQUIRE_EXTENSIONS=1``
    fail at import when the extension is missing or stale (for CI, so that a
    build that silently broke is noticed).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, TypeVar, cast

__all__ = [
    "PURE_CHANNEL_PUBLISH",
    "PURE_CHANNEL_SEND_ACK",
    "PURE_MESSAGE_ACK",
    "PURE_PROPERTIES_DECODE",
    "PURE_PROPERTIES_ENCODE",
    "PURE_PROPERTIES_INIT",
    "bare_waiter_factory",
    "install_acks",
    "install_bare_succeeded",
    "install_bare_waiter",
    "install_channel_publish",
    "install_client_connection",
    "install_client_publish",
    "install_connection_layout",
    "install_deferred_await",
    "install_fire_each",
    "install_flush",
    "install_init",
    "install_message_ack",
    "install_message_encoders",
    "install_properties",
    "install_settle_all",
    "install_table_codecs",
    "install_try_resolve",
    "plain_properties",
    "register_delivery_class",
    "register_loop_thread",
    "speedups",
]

#: The ``ABI`` constant of the ``_speedups.c`` this Python code expects; an extension
#: built from an older source is ignored (or refused under REQUIRE_EXTENSIONS).
ABI = 17


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _load() -> ModuleType | None:
    if _flag("TXAMQP091_NO_EXTENSIONS"):
        return None
    problem: str
    try:
        from . import _speedups  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:
        problem = f"txamqp091.core._speedups is not built ({exc})"
    else:
        if getattr(_speedups, "ABI", None) == ABI:
            module: ModuleType = _speedups
            return module
        problem = "txamqp091.core._speedups is stale: rebuild it (scripts/bootstrap)"
    if _flag("TXAMQP091_REQUIRE_EXTENSIONS"):
        raise ImportError(f"{problem}, and TXAMQP091_REQUIRE_EXTENSIONS is set")
    return None


#: The C extension module, or None when pure Python is used.
speedups: ModuleType | None = _load()


def _never_plain(properties: object) -> bool:
    return False


#: ``plain_properties(p)``: True when ``validation.properties(p)`` certainly has nothing
#: to reject (exactly a ``BasicProperties`` of short strings and a delivery mode), so
#: that ``basic_publish`` may skip it; False means "check in full". Without the
#: accelerator it is always False: the pure-Python path always validates.
plain_properties: Callable[[object], bool] = (
    _never_plain if speedups is None else speedups.plain_properties
)

#: The pure-Python ``BasicProperties.decode`` / ``.encode`` / ``__init__``, kept for tests
#: and fallbacks (``__init__`` stays the class's own: the C construction is a type slot).
PURE_PROPERTIES_DECODE: Any = None
PURE_PROPERTIES_ENCODE: Any = None
PURE_PROPERTIES_INIT: Any = None

TableDecoder = Callable[[Any, int], "tuple[dict[str, Any], int]"]
TableEncoder = Callable[[Any], bytes]
_pure_tables: tuple[TableDecoder, TableEncoder] | None = None


_D = TypeVar("_D", bound=TableDecoder)
_E = TypeVar("_E", bound=TableEncoder)


def install_table_codecs(decode_table: _D, encode_table: _E) -> tuple[_D, _E]:
    """The field-table codecs to use: the C ones (falling back to these) or these."""
    global _pure_tables
    _pure_tables = (decode_table, encode_table)
    if speedups is None:
        return decode_table, encode_table
    speedups.set_table_fallbacks(decode_table, encode_table)
    # Same signatures and results; the C functions accept any buffer.
    return cast(_D, speedups.decode_table), cast(_E, speedups.encode_table)


_M = TypeVar("_M", bound=Callable[..., bytes])
_C = TypeVar("_C", bound=Callable[..., bytes])


def install_message_encoders(encode_message: _M, encode_content: _C) -> tuple[_M, _C]:
    """The publish encoders to use: the C ones (falling back to these) or these."""
    if speedups is None:
        return encode_message, encode_content
    speedups.set_message_fallbacks(encode_message, encode_content)
    # Same signatures and results (bytes-like bodies and unusual properties go to Python).
    return cast(_M, speedups.encode_message), cast(_C, speedups.encode_content)


#: The pure-Python ``core.channel.Channel.publish`` and ``.send_ack``, kept for tests.
PURE_CHANNEL_PUBLISH: Any = None
PURE_CHANNEL_SEND_ACK: Any = None

#: The ``core.channel.Channel`` slots the C ``publish`` reads, in its order.
CHANNEL_PUBLISH_SLOTS = (
    "state",
    "_host",
    "_publish_cache",
    "_queue",
    "_out",
    "channel_id",
    "_next_publish_seq",
)


def install_channel_publish(cls: type, channel_open: object, connection_open: object) -> None:
    """Put the C ``publish`` on ``core.channel.Channel`` (channel.py calls this): its
    common case (an open channel on an open connection, nothing queued, the method
    frame cached) without a Python frame; it calls the Python method for the rest."""
    global PURE_CHANNEL_PUBLISH
    PURE_CHANNEL_PUBLISH = cls.__dict__["publish"]
    if speedups is None:
        return
    descriptors = tuple(cls.__dict__[name] for name in CHANNEL_PUBLISH_SLOTS)
    method = speedups.install_publish(cls, descriptors, channel_open, connection_open)
    type.__setattr__(cls, "publish", method)


def install_channel_send_ack(cls: type) -> None:
    """Put the C ``send_ack`` on ``core.channel.Channel`` (after
    :func:`install_channel_publish`, whose slots it reads): a consumer's every ack
    without the Python method's frame and its ``struct`` call; anything unusual (a tag
    out of range, a ``multiple`` that is not a bool) goes to the Python method."""
    global PURE_CHANNEL_SEND_ACK
    PURE_CHANNEL_SEND_ACK = cls.__dict__["send_ack"]
    if speedups is None:
        return
    type.__setattr__(cls, "send_ack", speedups.install_send_ack(cls))


#: ``Message.ack`` as written in Python: the reference, and what the C ``ack`` calls for
#: anything it does not do itself (set by :func:`install_message_ack`).
PURE_MESSAGE_ACK: Callable[..., Any] | None = None

#: The ``message.Message`` slots the C ``ack`` reads, in its order.
MESSAGE_ACK_SLOTS = ("_channel", "_core_channel", "delivery_tag")


def install_message_ack(cls: type, channel_ack: Callable[..., Any]) -> None:
    """Put the C ``ack`` on ``cls`` (``message.Message``; ``client/channel.py`` calls this
    once ``ChannelLogic`` exists): a consumer's every ack without the three Python frames
    of ``Message.ack``, ``channel_ack`` (``ChannelLogic._ack``, which it stands in for)
    and the runtime's ``in_loop_thread``, when the ack goes straight into the core's
    output. Anything else, a channel whose ``_ack`` is another, goes to the Python
    ``ack``, kept as :data:`PURE_MESSAGE_ACK`."""
    global PURE_MESSAGE_ACK
    if PURE_MESSAGE_ACK is None:
        PURE_MESSAGE_ACK = cls.__dict__["ack"]
    if speedups is None:
        return
    descriptors = tuple(_slot_descriptor(cls, name) for name in MESSAGE_ACK_SLOTS)
    type.__setattr__(cls, "ack", PURE_MESSAGE_ACK)  # the installer keeps what it finds
    type.__setattr__(cls, "ack", speedups.install_message_ack(cls, descriptors, channel_ack))


def _slot_descriptor(cls: type, name: str) -> Any:
    """The member descriptor of ``cls``'s slot ``name``, from the class that defines it."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    raise AttributeError(name)


def install_settle_all(future_cls: type) -> Callable[..., Any] | None:
    """The C ``settle_all(waiters, value, calls, queue_calls)`` for the asyncio adapter's
    ``FutureRuntime.resolve_all`` (the loop over an ack's futures, see
    ``_speedups_settle.h``), or None without the accelerator or for a ``future_cls``
    (``asyncio.Future``) whose instances it cannot check (the pure-Python Future)."""
    if speedups is None or not speedups.install_settle_all(future_cls):
        return None
    fn: Callable[..., Any] = speedups.settle_all
    return fn


def register_loop_thread(
    in_loop_thread: Callable[..., Any], holder: object | None, name: str, none_is_any: bool
) -> None:
    """Tell the C ``Message.ack`` how a runtime whose ``in_loop_thread`` is this function
    (a runtime class's, inherited or not) answers, so that it reads the answer instead of
    calling it: ``getattr(holder, name)`` (``holder`` None: the runtime) is the loop
    thread's ``threading.get_ident()``, or None, which means any thread when
    ``none_is_any`` and none otherwise."""
    if speedups is not None:
        speedups.register_loop_thread(in_loop_thread, holder, name, none_is_any)


#: The ``client.channel_base.ChannelBase`` slots the C ``client_publish`` reads, in its order.
CLIENT_PUBLISH_SLOTS = (
    "_close_error",
    "_closing",
    "_max_message_size",
    "_max_unconfirmed",
    "_flow_active",
    "_flow_held",
    "_unconfirmed",
    "_conn",
    "_core",
    "_runtime",
    "_new_waiter",
)


def install_client_publish(
    cls: type, basic_publish: Callable[..., Any]
) -> Callable[..., Any] | None:
    """The C ``basic_publish``, a method of ``cls`` (``ChannelBase``) for
    ``client.channel_base`` to put on it, or None without the accelerator. It binds the
    Python method's arguments itself and does the publishes ``basic_publish`` accepts
    without validation and sends at once, reading ``cls``'s slots
    (``CLIENT_PUBLISH_SLOTS``) and its connection's attributes; anything else goes to
    ``basic_publish``, the Python method, with the arguments as given."""
    if speedups is None:
        return None
    descriptors = tuple(cls.__dict__[name] for name in CLIENT_PUBLISH_SLOTS)
    method: Callable[..., Any] = speedups.install_client_publish(cls, descriptors, basic_publish)
    return method


def install_bare_waiter(
    cls: type, init: Callable[..., Any], base_init: Callable[..., Any], slots: tuple[str, ...]
) -> bool:
    """Let the C ``client_publish`` build ``cls``'s instances, the waiter of every
    confirmed publish, without the Python frames of ``init`` and of the ``base_init`` it
    calls (``twisted.runtime`` calls this for LeanDeferred, with its own ``__init__``
    and ``Deferred.__init__``), and say whether it does; and let the C
    waiter code (``try_resolve``, ``await``, this construction) read and write
    ``slots`` (``_callbacks``, ``_canceller``, ``called``, ``paused``,
    ``_runningCallbacks``, ``result``, in that order) at fixed offsets on an instance of
    exactly ``cls``.

    The caller has checked that ``init`` sets the first five (an empty list, None,
    False, 0, False) and nothing else while Deferred debugging is off; C does the
    same, and calls ``cls()`` instead whenever the class's ``__init__`` is no longer
    ``init`` or its base's no longer ``base_init``, its ``__new__`` not
    ``object.__new__``, or its ``debug`` flag not False."""
    if speedups is None:
        return False
    descriptors = tuple(cls.__dict__[name] for name in slots)
    speedups.install_bare_waiter(cls, init, base_init, descriptors)
    return True


def _install_method(cls: type, name: str, installer: str, *args: Any) -> bool:
    """``cls.name = speedups.<installer>(cls, *args)`` (a C method descriptor for
    ``cls``), and whether it did: nothing without the accelerator."""
    if speedups is None:
        return False
    type.__setattr__(cls, name, getattr(speedups, installer)(cls, *args))
    return True


def install_deferred_await(cls: type, deferred_await: Callable[..., Any], failure: type) -> bool:
    """Give ``cls`` (LeanDeferred: ``twisted._deferred`` calls this) a C ``__await__``
    that does what ``deferred_await`` (Twisted's ``Deferred.__await__``, a generator)
    does, without its Python frame on each ``await`` and each resumption, and say
    whether it did. A ``failure`` result is left to ``deferred_await`` itself."""
    return _install_method(cls, "__await__", "install_deferred_await", deferred_await, failure)


def install_fire_each(*context: Any) -> Callable[[Iterable[Any], Any], None] | None:
    """The C ``fire_each`` (``twisted._deferred`` calls this): the same firing of a
    batch of Deferreds as the Python one, whose lone-plain-pair case it runs without
    Python frames; ``context`` is what it needs of Twisted and of that module, in the
    order ``_speedups_fire.h`` lists. None without the accelerator."""
    if speedups is None:
        return None
    speedups.install_fire_each(*context)
    fire: Callable[[Iterable[Any], Any], None] = speedups.fire_each
    return fire


def install_try_resolve(cls: type, try_resolve: Callable[..., Any], *context: Any) -> bool:
    """Give ``cls`` (DeferredRuntime: ``twisted.runtime`` calls this) a C ``try_resolve``
    for a getter's message to a coroutine waiting on the getter, which calls the
    Python ``try_resolve`` for everything else, and say whether it did. ``context``
    is what the C one needs of Twisted and of the runtime module, in the order
    ``_speedups_resume.h`` lists."""
    return _install_method(cls, "try_resolve", "install_try_resolve", try_resolve, *context)


def install_flush(cls: type, core: type, data_to_send: Callable[..., Any], frame: bytes) -> bool:
    """Give ``cls`` (ConnectionLogic: client/connection.py calls this) a C ``_flush``
    that does what its Python one does, and ``data_to_send`` (``core``'s) inline for a
    core of that class (``frame`` is the heartbeat frame, which alone is not traffic);
    say whether it did."""
    return _install_method(cls, "_flush", "install_flush", core, data_to_send, frame)


def bare_waiter_factory() -> Callable[[], Any] | None:
    """The C function that makes the class given to :func:`install_bare_waiter` as that
    function says (a getter's waiter, without ``__init__``'s frame), or None."""
    if speedups is None:
        return None
    factory: Callable[[], Any] = speedups.new_bare_waiter
    return factory


def install_bare_succeeded(
    value_class: type, fallback: Callable[[Any], Any]
) -> Callable[[Any], Any] | None:
    """The C function ``succeeded(value)``: a waiter of the :func:`install_bare_waiter`
    class already fired with ``value``, made without a Python frame for None or a
    ``value_class`` instance while that class allows it, else ``fallback(value)``; or
    None without the accelerator."""
    if speedups is None:
        return None
    speedups.install_bare_succeeded(value_class, fallback)
    succeeded: Callable[[Any], Any] = speedups.bare_succeeded
    return succeeded


#: The ``client.connection.ConnectionLogic`` slots the C ``client_publish`` reads (and
#: sets: ``_send_first``, ``_unflushed``) on the channel's connection, in its order.
CLIENT_CONNECTION_SLOTS = (
    "_held",
    "_write_paused",
    "_core",
    "_send_first",
    "_receiving",
    "_flush_scheduled",
    "_unflushed",
)


def install_client_connection(cls: type) -> None:
    """Let the C ``client_publish`` read ``cls``'s slots (``CLIENT_CONNECTION_SLOTS``,
    client/connection.py calls this) at fixed offsets on a connection of that class
    rather than look them up by name: a lookup from C costs more than the bytecode it
    replaces. A connection of another class is still read by name."""
    if speedups is None:
        return
    descriptors = tuple(cls.__dict__[name] for name in CLIENT_CONNECTION_SLOTS)
    speedups.install_client_connection(cls, descriptors)


def install_acks(cls: type) -> bool:
    """Let the C ``take_acks`` store ``cls``'s (``PublishAcked``'s) three slots itself
    instead of calling the class, while its ``__init__`` is the one it has now (which
    only stores them: core/connection.py calls this); say whether it may."""
    if speedups is None:
        return False
    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    names = ("channel_id", "delivery_tag", "multiple")
    if (
        code is None
        or code.co_varnames[: code.co_argcount] != ("self", *names)
        or cast(Any, cls).__new__ is not object.__new__
        or getattr(cls, "__dictoffset__", 1) != 0  # slots only: no instance __dict__
    ):
        return False
    installed: bool = speedups.install_acks(cls, init, tuple(cls.__dict__[n] for n in names))
    return installed


#: The ``core.connection.Connection`` slots the C publishes read, in their order.
CONNECTION_LAYOUT_SLOTS = ("state", "frame_max", "is_blocked")


def install_connection_layout(cls: type) -> None:
    """Let the C publishes (``Channel.publish``, ``client_publish``) read the core
    connection's ``state``, ``frame_max`` and ``is_blocked`` at fixed offsets
    (core/connection.py calls this); a host of another class is read by name."""
    if speedups is None:
        return
    descriptors = tuple(cls.__dict__[name] for name in CONNECTION_LAYOUT_SLOTS)
    speedups.install_connection_layout(cls, descriptors)


def install_properties(cls: type) -> None:
    """Put the C ``encode``/``decode`` on ``BasicProperties`` (spec.py calls this), and
    let C build its instances: ``BasicProperties(reply_to=..., correlation_id=...)``
    is built per publish, and the Python ``__init__``'s frame and keyword matching
    cost more than the rest of the call (see :func:`install_init`)."""
    global PURE_PROPERTIES_DECODE, PURE_PROPERTIES_ENCODE, PURE_PROPERTIES_INIT
    PURE_PROPERTIES_DECODE = cls.__dict__["decode"]
    PURE_PROPERTIES_ENCODE = cls.__dict__["encode"]
    PURE_PROPERTIES_INIT = cls.__dict__["__init__"]
    if speedups is None:
        return
    if _pure_tables is None:
        raise RuntimeError("codec.py installs the table codecs before spec.py is imported")
    speedups.install(cls, *_pure_tables)
    install_init(cls)


_CO_VARARGS = 0x04  # inspect.CO_VARARGS / CO_VARKEYWORDS, without importing inspect
_CO_VARKEYWORDS = 0x08


def install_init(cls: type) -> bool:
    """Let the C accelerator build ``cls``'s instances (after :func:`install_properties`
    installed the codecs on it), and say whether it does.

    Only when ``cls.__init__`` is a Python function taking exactly ``cls.FIELDS`` as
    keyword-only arguments that default to None, as the generated one does: the C
    construction sets every field, the given value or None, in ``FIELDS`` order, so that
    the instance is what that ``__init__`` makes, down to the order of its ``__dict__``
    and CPython's shared-key layout; a call it does not handle itself (a positional
    argument, a keyword that is not a field name) goes to the Python ``__init__``, so
    errors are Python's. The ``__init__`` stays in the class's dict: subclasses, and
    ``super().__init__`` from theirs, run it as before; assigning ``cls.__init__``
    makes CPython drop the C construction (call this again once it is put back)."""
    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    fields = tuple(getattr(cls, "FIELDS", ()))
    if (
        speedups is None
        or code is None
        or code.co_argcount != 1
        or code.co_posonlyargcount
        or code.co_kwonlyargcount != len(fields)
        or code.co_varnames[1 : 1 + len(fields)] != fields
        or code.co_flags & (_CO_VARARGS | _CO_VARKEYWORDS)
        or getattr(init, "__kwdefaults__", None) != dict.fromkeys(fields)
    ):
        return False
    return bool(speedups.install_init(cls, fields))


#: The delivery fields, in the order the decoder passes them (``Delivery``'s).
DELIVERY_FIELDS = (
    "channel_id",
    "consumer_tag",
    "delivery_tag",
    "redelivered",
    "exchange",
    "routing_key",
    "properties",
    "body",
)


def register_delivery_class(cls: type) -> bool:
    """Let the C decoder build ``cls``'s instances itself, storing the eight delivery
    fields and the other fields' defaults in their slots, instead of calling the
    class (one Python ``__init__`` frame less per delivery). Only for what that call
    would do exactly the same: a slots dataclass whose ``__init__`` is the one the
    decorator generated (no ``__post_init__``, no own ``__new__`` or
    ``__setattr__``), whose fields are the delivery fields in order followed by
    fields with plain defaults, every one an ``__init__`` argument. Returns whether
    it is registered; a class that is not is called as before."""
    known = _delivery_classes.get(cls)
    if known is None:
        known = _delivery_classes[cls] = _register(cls)
    return known


_delivery_classes: dict[type, bool] = {}


def _register(cls: type) -> bool:
    if speedups is None or not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
        return False
    init = cls.__dict__.get("__init__")
    if (
        init is None
        or getattr(getattr(init, "__code__", None), "co_filename", None) != "<string>"
        or cls.__new__ is not object.__new__
        or cls.__setattr__ is not object.__setattr__
        or hasattr(cls, "__post_init__")
        or getattr(cls, "__dictoffset__", 1) != 0  # slots only: no instance __dict__
    ):
        return False
    fields = dataclasses.fields(cls)
    code = init.__code__
    if code.co_argcount != 1 + len(fields) or code.co_kwonlyargcount:
        return False  # an InitVar, or keyword-only fields: not just the fields
    names = tuple(f.name for f in fields)
    if names[: len(DELIVERY_FIELDS)] != DELIVERY_FIELDS:
        return False
    if any(not f.init or f.kw_only for f in fields):
        return False
    extra = fields[len(DELIVERY_FIELDS) :]
    if any(
        f.default is dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in extra
    ):
        return False
    try:
        return bool(
            speedups.set_delivery_layout(
                cls,
                tuple(getattr(cls, name) for name in DELIVERY_FIELDS),
                tuple(getattr(cls, f.name) for f in extra),
                tuple(f.default for f in extra),
            )
        )
    except (TypeError, ValueError):
        return False
