"""What to connect to and how: connection parameters, credentials and TLS options.

:class:`ConnectionParameters` and :class:`URLParameters` follow pika 1.4's
names, defaults and URL query options, so that parameters port unchanged. Unlike
pika's, instances are immutable (use :meth:`ConnectionParameters.replace`) and
every bad option raises :class:`ValueError` naming the option.

Adapters call :func:`normalize_parameters` on whatever the user passed (a
parameters object, a URL, or a list of either for a cluster) and the core calls
:func:`client_properties` to build the Connection.StartOk table. Only the
standard library is imported here.
"""

from __future__ import annotations

import copy
import dataclasses
import platform
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NoReturn, TypeAlias

from txamqp091._credentials import Credentials, ExternalCredentials, PlainCredentials
from txamqp091._tls import SSLOptions, default_ssl_context
from txamqp091._url import _parse_url
from txamqp091._validation import (
    _check_int,
    _check_mechanism,
    _check_number,
    _check_str,
)
from txamqp091._version import __version__

__all__ = [
    "ConnectionParameters",
    "Credentials",
    "ExternalCredentials",
    "Heartbeat",
    "HeartbeatCallback",
    "ParametersLike",
    "PlainCredentials",
    "SSLOptions",
    "URLParameters",
    "apply_tcp_options",
    "client_properties",
    "default_ssl_context",
    "normalize_parameters",
]

PRODUCT = "txamqp091"
FRAME_MIN_SIZE = 4096  # spec: frame-min-size
FRAME_MAX_LIMIT = 2**31 - 1  # frame_max is a long; RabbitMQ caps it at 2**31 - 1
MAX_CHANNELS = 65535  # channel_max is a short
MAX_HEARTBEAT = 65535  # heartbeat is a short in Connection.TuneOk

#: TCP options that :func:`apply_tcp_options` knows, as pika's ``tcp_options``.
TCP_OPTIONS = ("TCP_KEEPCNT", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_USER_TIMEOUT")
_TCP_KEEPALIVE_OPTIONS = frozenset({"TCP_KEEPCNT", "TCP_KEEPIDLE", "TCP_KEEPINTVL"})

_CAPABILITIES: dict[str, bool] = {
    "authentication_failure_close": True,
    "basic.nack": True,
    "connection.blocked": True,
    "consumer_cancel_notify": True,
    "exchange_exchange_bindings": True,
    "per_consumer_qos": True,
    "publisher_confirms": True,
}


# -- connection parameters ---------------------------------------------------------

HeartbeatCallback: TypeAlias = Callable[["ConnectionParameters", int], int]
Heartbeat: TypeAlias = int | HeartbeatCallback | None


# Not slots=True: on Python < 3.12 a frozen slots dataclass raises TypeError instead of
# AttributeError for an unknown attribute (gh-90562); the slots are declared by hand.
@dataclasses.dataclass(frozen=True, init=False, repr=False, eq=False)
class ConnectionParameters:
    """Everything needed to open one connection; immutable.

    Every argument is keyword-only and validated; a bad type or value, or an
    unknown keyword, raises :class:`ValueError` naming the option.

    :param host: the broker's host name or IP address (an IPv6 literal may be bracketed).
    :param port: 5672, or 5671 when ``ssl_options`` is given.
    :param virtual_host: the RabbitMQ virtual host.
    :param credentials: :class:`PlainCredentials` (``guest``/``guest`` by default)
        or :class:`ExternalCredentials`.
    :param channel_max: the most channels to ask for, 1..65535.
    :param frame_max: the largest frame to ask for, 4096..2**31-1 bytes.
    :param heartbeat: ``None`` accepts the broker's proposal, ``0`` turns
        heartbeats off, an int (seconds) overrides the broker, and a callable
        ``(params, broker_value) -> int`` decides during tuning.
    :param ssl_options: :class:`SSLOptions` (or a bare :class:`ssl.SSLContext`) for TLS.
    :param connection_attempts: how many times to try each connect, at least 1.
    :param retry_delay: seconds to wait between attempts, >= 0.
    :param socket_timeout: seconds allowed for the TCP connect, > 0.
    :param stack_timeout: seconds allowed for TCP, TLS and the AMQP handshake, > 0.
    :param locale: sent in Connection.StartOk.
    :param blocked_connection_timeout: tear the connection down when the broker
        keeps it blocked longer than this many seconds; ``None`` waits forever.
    :param client_properties: merged over the default client-properties table.
    :param connection_name: shown in the management UI (``client_properties["connection_name"]``).
    :param tcp_options: socket options such as ``{"TCP_KEEPIDLE": 60}``; see
        :func:`apply_tcp_options`.
    :param auth_mechanism: ``"PLAIN"`` or ``"EXTERNAL"``; taken from
        ``credentials`` when ``None``, and chooses them when ``credentials`` is not given.
    :param max_message_size: the largest message body accepted from the broker (a
        content header announcing more ends the connection with 501 FRAME_ERROR
        before any of it is buffered) and published (``basic_publish`` raises
        ``ValueError``); default 128 MiB, RabbitMQ's own default.
    :param max_unconfirmed: in confirm mode, how many publishes a channel may have
        waiting for the broker's ack; a further ``basic_publish`` waits (its
        Deferred/future stays pending, nothing is sent) until acks or nacks make
        room. Default 10,000; ``0`` means no limit.
    """

    __slots__ = (
        "auth_mechanism",
        "blocked_connection_timeout",
        "channel_max",
        "client_properties",
        "connection_attempts",
        "connection_name",
        "credentials",
        "frame_max",
        "heartbeat",
        "host",
        "locale",
        "max_message_size",
        "max_unconfirmed",
        "port",
        "retry_delay",
        "socket_timeout",
        "ssl_options",
        "stack_timeout",
        "tcp_options",
        "virtual_host",
    )

    host: str
    port: int
    virtual_host: str
    credentials: Credentials
    channel_max: int
    frame_max: int
    heartbeat: Heartbeat
    ssl_options: SSLOptions | None
    connection_attempts: int
    retry_delay: float
    socket_timeout: float
    stack_timeout: float
    locale: str
    blocked_connection_timeout: float | None
    client_properties: dict[str, Any] | None
    connection_name: str | None
    tcp_options: dict[str, int] | None
    auth_mechanism: str
    max_message_size: int
    max_unconfirmed: int

    DEFAULT_HOST: ClassVar[str] = "localhost"
    DEFAULT_PORT: ClassVar[int] = 5672
    DEFAULT_SSL_PORT: ClassVar[int] = 5671
    DEFAULT_VIRTUAL_HOST: ClassVar[str] = "/"
    DEFAULT_USERNAME: ClassVar[str] = "guest"
    DEFAULT_PASSWORD: ClassVar[str] = "guest"
    # RabbitMQ's own default; the client asks for at most this many channels.
    DEFAULT_CHANNEL_MAX: ClassVar[int] = 2047
    DEFAULT_FRAME_MAX: ClassVar[int] = 131072
    DEFAULT_CONNECTION_ATTEMPTS: ClassVar[int] = 1
    DEFAULT_RETRY_DELAY: ClassVar[float] = 2.0
    DEFAULT_SOCKET_TIMEOUT: ClassVar[float] = 10.0
    DEFAULT_STACK_TIMEOUT: ClassVar[float] = 15.0
    DEFAULT_LOCALE: ClassVar[str] = "en_US"
    #: RabbitMQ's default ``max_message_size``: 128 MiB.
    DEFAULT_MAX_MESSAGE_SIZE: ClassVar[int] = 128 * 1024 * 1024
    DEFAULT_MAX_UNCONFIRMED: ClassVar[int] = 10_000

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int | None = None,
        virtual_host: str = "/",
        credentials: Credentials | None = None,
        channel_max: int = 2047,
        frame_max: int = 131072,
        heartbeat: Heartbeat = None,
        ssl_options: SSLOptions | ssl.SSLContext | None = None,
        connection_attempts: int = 1,
        retry_delay: float = 2.0,
        socket_timeout: float = 10.0,
        stack_timeout: float = 15.0,
        locale: str = "en_US",
        blocked_connection_timeout: float | None = None,
        client_properties: Mapping[str, Any] | None = None,
        connection_name: str | None = None,
        tcp_options: Mapping[str, int] | None = None,
        auth_mechanism: str | None = None,
        max_message_size: int = 128 * 1024 * 1024,
        max_unconfirmed: int = 10_000,
        **unknown: NoReturn,
    ) -> None:
        if unknown:
            names = ", ".join(sorted(unknown))
            raise ValueError(f"unknown connection parameter(s): {names}")
        _check_str("host", host, empty=False)
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]  # "[::1]" as written in a URL
            _check_str("host", host, empty=False)

        if isinstance(ssl_options, ssl.SSLContext):
            ssl_options = SSLOptions(ssl_options)
        elif ssl_options is not None and not isinstance(ssl_options, SSLOptions):
            raise ValueError(f"ssl_options must be an SSLOptions or None, got {ssl_options!r}")
        if port is None:
            port = self.DEFAULT_PORT if ssl_options is None else self.DEFAULT_SSL_PORT
        port = _check_int("port", port, 1, 65535)

        mechanism = None if auth_mechanism is None else _check_mechanism(auth_mechanism)
        if credentials is None:
            if mechanism == "EXTERNAL":
                credentials = ExternalCredentials()
            else:
                credentials = PlainCredentials(self.DEFAULT_USERNAME, self.DEFAULT_PASSWORD)
        elif not isinstance(credentials, (PlainCredentials, ExternalCredentials)):
            raise ValueError(
                f"credentials must be PlainCredentials or ExternalCredentials, got {credentials!r}"
            )
        else:
            credentials = copy.copy(credentials)  # erase_credentials() must not touch the user's
        if mechanism is not None and mechanism != credentials.mechanism:
            raise ValueError(
                f"auth_mechanism {mechanism!r} does not match the credentials' "
                f"mechanism {credentials.mechanism!r}"
            )

        if heartbeat is not None and not callable(heartbeat):
            heartbeat = _check_int("heartbeat", heartbeat, 0, MAX_HEARTBEAT)
        if blocked_connection_timeout is not None:
            blocked_connection_timeout = _check_number(
                "blocked_connection_timeout", blocked_connection_timeout, 0, strict=True
            )

        props: dict[str, Any] | None = None
        if client_properties is not None:
            if not isinstance(client_properties, Mapping):
                raise ValueError(
                    f"client_properties must be a dict or None, got {client_properties!r}"
                )
            for key in client_properties:
                _check_str("client_properties key", key, shortstr=True)
            props = copy.deepcopy(dict(client_properties))
        if connection_name is not None:
            _check_str("connection_name", connection_name)
            if props is not None and props.get("connection_name", connection_name) != (
                connection_name
            ):
                raise ValueError(
                    "connection_name conflicts with client_properties['connection_name']"
                )

        tcp: dict[str, int] | None = None
        if tcp_options is not None:
            if not isinstance(tcp_options, Mapping):
                raise ValueError(f"tcp_options must be a dict or None, got {tcp_options!r}")
            tcp = {}
            for key, value in tcp_options.items():
                if key not in TCP_OPTIONS:
                    raise ValueError(f"tcp_options key {key!r} is not one of {list(TCP_OPTIONS)}")
                tcp[key] = _check_int(f"tcp_options {key}", value, 0, 2**31 - 1)

        values: dict[str, object] = {
            "host": host,
            "port": port,
            "virtual_host": _check_str("virtual_host", virtual_host, shortstr=True),
            "credentials": credentials,
            "channel_max": _check_int("channel_max", channel_max, 1, MAX_CHANNELS),
            "frame_max": _check_int("frame_max", frame_max, FRAME_MIN_SIZE, FRAME_MAX_LIMIT),
            "heartbeat": heartbeat,
            "ssl_options": ssl_options,
            "connection_attempts": _check_int(
                "connection_attempts", connection_attempts, 1, 2**31 - 1
            ),
            "retry_delay": _check_number("retry_delay", retry_delay, 0, strict=False),
            "socket_timeout": _check_number("socket_timeout", socket_timeout, 0, strict=True),
            "stack_timeout": _check_number("stack_timeout", stack_timeout, 0, strict=True),
            "locale": _check_str("locale", locale, empty=False, shortstr=True),
            "blocked_connection_timeout": blocked_connection_timeout,
            "client_properties": props,
            "connection_name": connection_name,
            "tcp_options": tcp,
            "auth_mechanism": credentials.mechanism,
            "max_message_size": _check_int("max_message_size", max_message_size, 1, 2**63 - 1),
            "max_unconfirmed": _check_int("max_unconfirmed", max_unconfirmed, 0, 2**31 - 1),
        }
        for field_name, field_value in values.items():
            object.__setattr__(self, field_name, field_value)

    @property
    def is_tls(self) -> bool:
        """True when the connection is wrapped in TLS."""
        return self.ssl_options is not None

    @property
    def tls_server_hostname(self) -> str | None:
        """The SNI / certificate name to use: ``ssl_options.server_hostname`` or ``host``."""
        if self.ssl_options is None:
            return None
        return self.ssl_options.server_hostname or self.host

    def heartbeat_for(self, server_value: int) -> int:
        """Return the heartbeat interval to send in Connection.TuneOk, as pika decides it.

        :param server_value: the broker's proposal from Connection.Tune (0 = off).
        :raises ValueError: a ``heartbeat`` callable returned something other
            than an int in 0..65535.
        """
        heartbeat = self.heartbeat
        if heartbeat is None:
            return server_value
        if isinstance(heartbeat, int):
            return heartbeat
        return _check_int("heartbeat (callable result)", heartbeat(self, server_value), 0, 65535)

    def replace(self, **changes: Any) -> ConnectionParameters:
        """Return a validated copy with ``changes`` applied.

        A derived port (5672/5671) follows a change of ``ssl_options``; changing
        ``credentials`` or ``auth_mechanism`` alone re-derives the other.
        """
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if "ssl_options" in changes and "port" not in changes:
            if self.port == (self.DEFAULT_SSL_PORT if self.is_tls else self.DEFAULT_PORT):
                values["port"] = None
        if "credentials" in changes and "auth_mechanism" not in changes:
            values["auth_mechanism"] = None
        elif "auth_mechanism" in changes and "credentials" not in changes:
            wanted = changes["auth_mechanism"]
            if wanted is None or str(wanted).upper() != self.credentials.mechanism:
                values["credentials"] = None
        values.update(changes)
        return ConnectionParameters(**values)

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConnectionParameters):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # holds dicts

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))
        return f"{type(self).__name__}({shown})"

    def __getstate__(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def __copy__(self) -> ConnectionParameters:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> ConnectionParameters:
        # An SSLContext cannot be copied; share it (and the heartbeat callable).
        clone = object.__new__(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("credentials", "client_properties", "tcp_options"):
                value = copy.deepcopy(value, memo)
            object.__setattr__(clone, f.name, value)
        return clone


class URLParameters(ConnectionParameters):
    """Connection parameters read from an AMQP URI, as pika's ``URLParameters``::

        amqp[s]://[user[:password]@]host[:port][/vhost][?option=value&...]

    The user, password and vhost are percent-decoded; the vhost defaults to
    ``/`` (also written ``%2F``). ``amqps`` defaults to port 5671 and a
    verifying TLS context whose ``server_hostname`` is the host. Query options
    are the ConnectionParameters names (``heartbeat``, ``channel_max``,
    ``frame_max``, ``connection_attempts``, ``retry_delay``, ``socket_timeout``,
    ``stack_timeout``, ``blocked_connection_timeout``, ``locale``,
    ``connection_name``, ``auth_mechanism``); ``client_properties``,
    ``tcp_options`` and ``ssl_options`` take a Python literal dict. The
    ``ssl_options`` keys are pika's: ``ca_certs``/``cafile``, ``capath``,
    ``cadata``, ``certfile``, ``keyfile``, ``password``, ``ciphers``,
    ``server_hostname``, plus ``verify`` (bool, default True).

    :param url: the URL.
    :raises ValueError: an unknown scheme or option, a repeated option or a bad
        value, naming it.
    """

    __slots__ = ()

    def __init__(self, url: str) -> None:
        super().__init__(**_parse_url(url, ConnectionParameters.DEFAULT_HOST))


# -- helpers for the core and the adapters -----------------------------------------

ParametersLike: TypeAlias = ConnectionParameters | str | Sequence[ConnectionParameters | str]


def _one(value: object, where: str) -> ConnectionParameters:
    if isinstance(value, ConnectionParameters):
        return value
    if isinstance(value, str):
        return URLParameters(value)
    raise TypeError(f"{where} must be ConnectionParameters or an AMQP URL str, got {value!r}")


def normalize_parameters(parameters: ParametersLike) -> list[ConnectionParameters]:
    """Return the nodes to try, in order, from whatever the user passed.

    :param parameters: a :class:`ConnectionParameters`, a URL, or a non-empty
        list or tuple of either (cluster nodes, tried in order).
    :raises TypeError: something else was passed.
    :raises ValueError: an empty list, or a bad URL.
    """
    if isinstance(parameters, (ConnectionParameters, str)):
        return [_one(parameters, "parameters")]
    if isinstance(parameters, (bytes, bytearray)) or not isinstance(parameters, Sequence):
        raise TypeError(
            "parameters must be ConnectionParameters, an AMQP URL str, or a list of them, "
            f"got {parameters!r}"
        )
    if not parameters:
        raise ValueError("parameters must name at least one broker, got an empty list")
    nodes: list[ConnectionParameters] = []
    for index, item in enumerate(parameters):
        where = f"parameters[{index}]"
        try:
            nodes.append(_one(item, where))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
    return nodes


def client_properties(params: ConnectionParameters) -> dict[str, Any]:
    """Build the Connection.StartOk ``client-properties`` table.

    The user's ``client_properties`` are merged over the defaults; a user
    ``capabilities`` table is merged into ours rather than replacing it.
    """
    capabilities = dict(_CAPABILITIES)
    props: dict[str, Any] = {
        "product": PRODUCT,
        "version": __version__,
        "platform": f"Python {platform.python_version()}",
        "information": "txamqp091: AMQP 0-9-1 client for Twisted and Tornado",
        "capabilities": capabilities,
    }
    if params.connection_name is not None:
        props["connection_name"] = params.connection_name
    for key, value in (params.client_properties or {}).items():
        if key == "capabilities" and isinstance(value, Mapping):
            capabilities.update(copy.deepcopy(dict(value)))
        else:
            props[key] = copy.deepcopy(value)
    return props


def apply_tcp_options(sock: socket.socket, tcp_options: Mapping[str, int] | None) -> list[str]:
    """Set ``tcp_options`` on a connected socket, as pika does.

    Keep-alive options also switch ``SO_KEEPALIVE`` on.

    :returns: the option names this platform does not have (they are skipped).
    """
    if not tcp_options:
        return []
    if _TCP_KEEPALIVE_OPTIONS.intersection(tcp_options):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    skipped: list[str] = []
    for name, value in tcp_options.items():
        option = getattr(socket, name, None)
        if option is None:
            skipped.append(name)
        else:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
    return skipped
