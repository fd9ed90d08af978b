"""The base of every channel: its state, its request/reply pairing and its publish path.

Each operation builds its spec method, hands it to the core channel (which
keeps one synchronous request in flight and the rest in order) and, when a
reply is due, appends a waiter to ``_replies``. Replies arrive in request
order, so each :class:`~txamqp091.core.events.MethodReply` settles the oldest
waiter. A waiter the user cancelled still takes its reply, so cancelling never
desynchronises the channel.

Publishing lives here, not in a layer above, because the connection's publish
gate hands the publishes it held back to the channel (``_publish_now``): the
:class:`ConnectionHooks` it is typed against names this class. The declaring
methods are in :mod:`.declaring`, consuming, acknowledgements and closing in
:mod:`.channel`; each layer is a plain base class, so a publish or a delivery
costs no extra call.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sized
from typing import Any, Generic, Protocol

from .. import validation as validate
from ..core import spec
from ..core._accel import install_client_publish, plain_properties
from ..core.channel import Channel as CoreChannel
from ..core.connection import Connection as CoreConnection
from ..exceptions import ChannelClosedByClient, ChannelWrongStateError
from ..params import ConnectionParameters
from .api import ChannelAPI, documented_by
from .confirms import ConfirmTracker, PendingPublish
from .consumer import ConsumerLogic
from .runtime import Runtime, W

__all__ = ["PURE_BASIC_PUBLISH", "ChannelBase", "ConnectionHooks", "Transform"]

Transform = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


class ConnectionHooks(Protocol[W]):
    """What a channel needs of its connection (:class:`~.connection.ConnectionLogic`):
    named here so that this module does not import the connection that imports it."""

    _runtime: Runtime[W]
    params: ConnectionParameters
    # Read (and _unflushed written) by basic_publish's inline publish gate and flush count.
    flush_threshold: int
    _write_paused: bool
    _send_first: bool
    _receiving: bool
    _flush_scheduled: bool
    _unflushed: int
    # Read and written by ChannelLogic._on_delivery's inline buffering (the fast path of
    # _buffered_changed).
    max_buffered: int
    _buffered: int
    _reading_paused: bool

    @property
    def _held(self) -> Sized: ...

    @property
    def _core(self) -> CoreConnection: ...

    @property
    def is_open(self) -> bool: ...

    def _schedule_flush(self) -> None: ...

    def _published(self, size: int) -> None: ...

    def _flush(self) -> None: ...

    def _publish_gate_open(self) -> bool: ...

    def _hold_publish(
        self,
        channel: ChannelBase[W],
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.BasicProperties | None,
        mandatory: bool,
    ) -> W: ...

    def _drop_held_publishes(self, channel: ChannelBase[W], error: BaseException) -> None: ...

    def _buffered_changed(
        self, delta: int, consumer: object = None, consumer_full: bool = False
    ) -> None: ...

    def _forget_channel(self, channel: ChannelBase[W]) -> None: ...

    def channel(self) -> W: ...


@documented_by(ChannelAPI)
class ChannelBase(Generic[W]):
    """A channel's state, requests and publishing; :class:`~.channel.ChannelLogic` is the
    whole channel."""

    consumer_class: type[ConsumerLogic[Any]] = ConsumerLogic

    # Slots: the C accelerator's client_publish reads what basic_publish reads per message
    # at fixed offsets (_accel.CLIENT_PUBLISH_SLOTS) instead of by attribute lookup. The
    # subclasses (this class is never instantiated itself) keep an instance __dict__.
    __slots__ = (
        "_close_error",
        "_closed_waiters",
        "_closing",
        "_confirms",
        "_conn",
        "_consumer_prefetch",
        "_consumers",
        "_core",
        "_flow_active",
        "_flow_held",
        "_max_message_size",
        "_max_unconfirmed",
        "_new_waiter",
        "_on_cancel",
        "_on_close",
        "_on_return",
        "_replies",
        "_runtime",
        "_unconfirmed",
        "channel_number",
    )

    def __init__(self, conn: ConnectionHooks[W], core: CoreChannel) -> None:
        self._conn = conn
        self._runtime = conn._runtime
        self._core = core
        self.channel_number = core.channel_id
        self._replies: deque[tuple[W, Transform]] = deque()
        self._closing: W | None = None
        self._close_error: BaseException | None = None
        self._closed_waiters: list[W] = []
        self._confirms: ConfirmTracker[W] = ConfirmTracker(self._runtime, self._confirms_settled)
        #: The tracker's unconfirmed publishes by sequence number: ``basic_publish``
        #: stores a plain publish's waiter there itself, one call less per message.
        self._unconfirmed = self._confirms.pending
        #: Makes what ``create_waiter()`` makes, without its Python frame.
        self._new_waiter = self._runtime.waiter_factory()
        #: In confirm mode, the unconfirmed publishes allowed before ``basic_publish``
        #: waits (0: no limit); and the largest body ``basic_publish`` accepts.
        self._max_unconfirmed = conn.params.max_unconfirmed
        self._max_message_size = conn.params.max_message_size
        self._consumers: dict[str, ConsumerLogic[W]] = {}
        self._on_return: list[Callable[..., Any]] = []
        self._on_cancel: list[Callable[..., Any]] = []
        self._on_close: list[Callable[..., Any]] = []
        #: False while the broker has stopped our publishes (Channel.Flow active=False);
        #: publishes then wait in ``_flow_held`` (arguments, waiter) until it resumes them.
        #: They wait there too while the confirm window (``max_unconfirmed``) is full.
        self._flow_active = True
        self._flow_held: deque[tuple[tuple[Any, ...], W]] = deque()
        #: The last non-global ``basic_qos`` prefetch_count: a stream consumer needs one.
        self._consumer_prefetch = 0

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<{type(self).__name__} {self.channel_number} {state}>"

    # -- state ----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._close_error is None and self._closing is None

    @property
    def is_closed(self) -> bool:
        """Whether the channel has ended (the opposite of ``is_open`` once it was open)."""
        return self._close_error is not None

    @property
    def closed(self) -> W:
        """Fires once the channel has ended: with None after a close this client asked
        for, else with the exception that ended it. Never fails."""
        if self._close_error is not None:
            return self._runtime.succeeded(self._closed_value())
        waiter = self._runtime.create_waiter()
        self._closed_waiters.append(waiter)
        return waiter

    def _closed_value(self) -> BaseException | None:
        error = self._close_error
        if isinstance(error, ChannelClosedByClient) and error.reply_code in (0, 200):
            return None
        return error

    def _check_open(self) -> None:
        if self._close_error is not None or self._closing is not None:
            raise self._wrong_state()

    def _wrong_state(self) -> ChannelWrongStateError:
        """The error for an operation on a channel that is closed or closing, naming why
        it closed (the broker's 406 text, say), so a failed publish explains itself."""
        if self._close_error is not None:
            return ChannelWrongStateError(
                f"channel {self.channel_number} is closed: {self._close_error}"
            )
        return ChannelWrongStateError(f"channel {self.channel_number} is closing")

    # -- requests ---------------------------------------------------------------------------

    def _rpc(self, method: spec.Method, transform: Transform = _identity) -> W:
        """Send ``method``; the waiter fires with ``transform(reply)``."""
        try:
            self._check_open()
            self._core.send_method(method)
        except Exception as exc:
            return self._runtime.failed(exc)
        self._conn._schedule_flush()
        if not self._core.expects_reply(method):
            return self._runtime.succeeded(None)
        waiter = self._runtime.create_waiter()
        self._replies.append((waiter, transform))
        return waiter

    def _send_async(self, method: spec.Method) -> None:
        self._check_open()
        self._core.send_method(method)
        self._conn._schedule_flush()

    def _on_reply(self, value: Any) -> None:
        if not self._replies:
            return
        waiter, transform = self._replies.popleft()
        runtime = self._runtime
        if runtime.is_done(waiter):
            return  # cancelled by the user; the reply is consumed all the same
        try:
            result = transform(value)
        except Exception as exc:
            runtime.reject(waiter, exc)
        else:
            runtime.resolve(waiter, result)

    # -- publishing --------------------------------------------------------------------------

    @property
    def publisher_confirms(self) -> bool:
        return self._core.confirm_mode

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | bytearray | memoryview | str,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> W:
        """Publish a message.

        Outside confirm mode the waiter fires once the frames are handed to the
        transport (after waiting while the broker blocks the connection or the
        transport pushes back). In confirm mode it fires on the broker's ack,
        fails with ``NackError`` on a nack and ``UnroutableError`` when a
        mandatory message is returned.
        """
        if (  # the common cases accepted at once; anything else is checked in full
            type(exchange) is not str
            or type(routing_key) is not str
            or type(body) is not bytes
            # No properties, or (with the accelerator) the RPC shape: a few short strings.
            or (properties is not None and not plain_properties(properties))
            or mandatory is not False
            or len(exchange) > 63
            or len(routing_key) > 63
        ):
            validate.basic_publish(exchange, routing_key, body, properties, mandatory)
        if type(body) is not bytes:
            body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        size = len(body)
        if size > self._max_message_size:
            raise ValueError(
                f"body of {size} bytes exceeds max_message_size {self._max_message_size}"
            )
        if self._close_error is not None or self._closing is not None:
            return self._runtime.failed(self._wrong_state())
        limit = self._max_unconfirmed
        if not self._flow_active or self._flow_held or (limit and len(self._unconfirmed) >= limit):
            # Held in order behind anything already waiting: the broker stopped us
            # (Channel.Flow), or as many publishes as allowed wait for their confirms.
            waiter = self._runtime.create_waiter()
            self._flow_held.append(((exchange, routing_key, body, properties, mandatory), waiter))
            return waiter
        conn = self._conn
        # conn._publish_gate_open(), inline (one call less per message).
        if conn._held or conn._write_paused or conn._core.is_blocked:
            return conn._hold_publish(self, exchange, routing_key, body, properties, mandatory)
        # _publish_now inline, for a publish that has no waiter yet.
        try:
            seq = self._core.publish(exchange, routing_key, body, properties, mandatory)
        except Exception as exc:
            return self._runtime.failed(exc)
        # conn._published(size), inline for its two common cases: the answer to a lone
        # delivery (an RPC half), written now; and a flush already due (scheduled, or
        # the read's own) that this write leaves under the threshold. The rest (the
        # threshold, scheduling a flush) goes through it.
        if conn._send_first:
            conn._send_first = False
            conn._flush()
        elif conn._receiving or conn._flush_scheduled:
            unflushed = conn._unflushed + size + 64
            if unflushed < conn.flush_threshold:
                conn._unflushed = unflushed
            else:
                conn._published(size)
        else:
            conn._published(size)
        if not seq:
            return self._runtime.succeeded(None)
        waiter = self._new_waiter()
        if mandatory:
            self._confirms.add_mandatory(
                seq, PendingPublish(waiter, exchange, routing_key, body, mandatory)
            )
        else:
            self._unconfirmed[seq] = waiter
        return waiter

    def _on_flow(self, active: bool) -> None:
        """The broker's Channel.Flow: stop publishing, or resume and send what waited."""
        self._flow_active = active
        if active and self._flow_held:
            self._release_held_here()

    def _confirms_settled(self) -> None:
        """Acks or nacks made room in the confirm window: send what waited for it."""
        if self._flow_held and self._flow_active:
            self._release_held_here()

    def _release_held_here(self) -> None:
        """Send the publishes this channel held, in order, while the broker lets us
        (flow) and the confirm window has room."""
        runtime = self._runtime
        conn = self._conn
        held = self._flow_held
        limit = self._max_unconfirmed
        while held and self._flow_active and not (limit and len(self._unconfirmed) >= limit):
            args, waiter = held.popleft()
            if runtime.is_done(waiter):
                continue  # cancelled while it waited: never sent
            if not self.is_open:
                runtime.reject(waiter, ChannelWrongStateError("channel closed"))
                continue
            exchange, routing_key, body, properties, mandatory = args
            if conn._publish_gate_open():
                self._publish_now(exchange, routing_key, body, properties, mandatory, waiter)
            else:
                self._relay(conn._hold_publish(self, *args), waiter)

    def _relay(self, source: W, target: W) -> None:
        runtime = self._runtime
        runtime.on_result(
            source,
            lambda value: runtime.resolve(target, value),
            lambda error: runtime.reject(target, error),
        )

    def _publish_now(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.BasicProperties | None,
        mandatory: bool,
        waiter: W,
    ) -> None:
        """Send a publish that was held, settling the ``waiter`` it was given then
        (``basic_publish`` does the same inline for a publish sent at once)."""
        runtime = self._runtime
        try:
            seq = self._core.publish(exchange, routing_key, body, properties, mandatory)
        except Exception as exc:
            runtime.reject(waiter, exc)
            return
        self._conn._published(len(body))
        if not seq:
            runtime.resolve(waiter, None)
            return
        if mandatory:
            self._confirms.add_mandatory(
                seq, PendingPublish(waiter, exchange, routing_key, body, mandatory)
            )
        else:
            self._unconfirmed[seq] = waiter


#: The Python ``basic_publish``: the reference. With the C accelerator, the method is C
#: (``_speedups.c``, a method of the class): it does the common case (a publish accepted
#: without validation and sent at once: the RPC halves, a confirm window's publishes)
#: without a Python frame, and calls this one with the arguments as given for anything
#: else. Its doc is this one's, after the signature it binds (help(), Sphinx).
PURE_BASIC_PUBLISH = ChannelBase.basic_publish
_c_basic_publish = install_client_publish(ChannelBase, PURE_BASIC_PUBLISH)
if _c_basic_publish is not None:
    type.__setattr__(ChannelBase, "basic_publish", _c_basic_publish)
