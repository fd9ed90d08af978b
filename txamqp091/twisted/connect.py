"""``connect()``: TCP (and TLS), then the AMQP handshake, under one deadline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet import error as twisted_errors
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from ..client.reconnect import CONNECT_ERRORS, connect_first, describe
from ..exceptions import AMQPConnectionError
from ..params import ConnectionParameters, ParametersLike, normalize_parameters
from .channel import Connection
from .protocol import AMQPProtocol

__all__ = ["connect", "connect_once", "endpoint_for"]

#: Twisted's own ways for a connect to fail (they are not ``OSError``s): turned into
#: ``AMQPConnectionError`` so that both adapters retry the same set of errors.
_TWISTED_CONNECT_ERRORS = (
    twisted_errors.ConnectError,
    twisted_errors.ConnectionClosed,
    twisted_errors.ConnectingCancelledError,
)


def tls_options_for(params: ConnectionParameters) -> Any:
    """Twisted TLS client options for ``params.ssl_options``: the broker's name checked
    against its certificate (``optionsForClientTLS``), trusting ``cafile`` or the
    platform's roots, presenting ``certfile``/``keyfile`` when given (EXTERNAL auth)."""
    from twisted.internet import ssl as tssl

    opts = params.ssl_options
    assert opts is not None
    hostname = params.tls_server_hostname or params.host
    client_cert = None
    if opts.certfile:
        with open(opts.certfile, "rb") as f:
            pem = f.read()
        if opts.keyfile:
            with open(opts.keyfile, "rb") as f:
                pem += b"\n" + f.read()
        client_cert = tssl.PrivateCertificate.loadPEM(pem)  # type: ignore[no-untyped-call]
    if not opts.verify:
        extra: dict[str, Any] = {"verify": False}
        if client_cert is not None:
            extra.update(
                privateKey=client_cert.privateKey.original,
                certificate=client_cert.original,
            )
        return tssl.CertificateOptions(**extra)
    trust: Any = None
    if opts.cafile:
        with open(opts.cafile, "rb") as f:
            trust = tssl.Certificate.loadPEM(f.read())
    return tssl.optionsForClientTLS(hostname, trustRoot=trust, clientCertificate=client_cert)


def endpoint_for(
    reactor: Any, params: ConnectionParameters, tls_options: Any = None
) -> IStreamClientEndpoint:
    """The client endpoint for ``params``: TCP with ``socket_timeout``, wrapped in TLS for
    amqps (``tls_options``, a Twisted ``IOpenSSLClientConnectionCreator``, overrides
    what :func:`tls_options_for` builds)."""
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, params.host, params.port, timeout=params.socket_timeout
    )
    if params.is_tls or tls_options is not None:
        endpoint = wrapClientTLS(tls_options or tls_options_for(params), endpoint)
    return endpoint


def connect(
    reactor: Any,
    parameters: ParametersLike,
    tls_options: Any = None,
    *,
    endpoint: Callable[[ConnectionParameters], IStreamClientEndpoint] | None = None,
) -> Deferred[Connection]:
    """Connect to the first node that answers; fires with a :class:`Connection` after Open-Ok.

    ``parameters`` is a :class:`~txamqp091.ConnectionParameters`, a URL, or a
    list of either (cluster nodes: each tried once per round, for
    ``connection_attempts`` rounds ``retry_delay`` apart, as
    :func:`~txamqp091.client.reconnect.connect_first` says). Each attempt's TCP,
    TLS and AMQP bring-up together must finish within ``stack_timeout``. A refused
    login is not retried; when every attempt fails, the error's ``__cause__`` is
    the last attempt's error. ``tls_options`` (Twisted's
    ``optionsForClientTLS(...)`` or ``CertificateOptions``) replaces the TLS
    settings derived from ``ssl_options``; ``endpoint`` (``params -> endpoint``)
    replaces the TCP/TLS endpoint altogether, for tests.
    """
    try:
        nodes = normalize_parameters(parameters)
    except (TypeError, ValueError) as exc:
        return defer.fail(exc)

    def attempt(params: ConnectionParameters) -> Deferred[Connection]:
        if endpoint is not None:
            return connect_once(reactor, params, endpoint(params))
        return connect_once(reactor, params, endpoint_for(reactor, params, tls_options))

    def sleep(seconds: float) -> Deferred[None]:
        return deferLater(reactor, seconds, lambda: None)

    return defer.ensureDeferred(connect_first(nodes, attempt, sleep))


def connect_once(
    reactor: Any, params: ConnectionParameters, endpoint: IStreamClientEndpoint | None = None
) -> Deferred[Connection]:
    """One attempt at one node, bounded by ``params.stack_timeout``."""
    protocol = AMQPProtocol(params, reactor)
    if endpoint is None:
        endpoint = endpoint_for(reactor, params)
    d: Deferred[Any] = endpoint.connect(_OneShotFactory(protocol))
    d.addCallback(lambda _: protocol.ready)
    timed_out = []

    def on_timeout(result: Any, timeout: float) -> Any:
        timed_out.append(True)
        return result

    d.addTimeout(params.stack_timeout, _as_clock(reactor), onTimeoutCancel=on_timeout)

    def failed(failure: Failure) -> Failure:
        transport = protocol.transport
        # A connection that ended has closed its transport itself, after writing any
        # Connection.Close it owed the peer: aborting now would discard that Close.
        if transport is not None and not protocol.connection.is_closed:
            transport.abortConnection()  # type: ignore[attr-defined]
        if timed_out:
            raise AMQPConnectionError(
                f"no AMQP connection to {describe(params)} within "
                f"stack_timeout={params.stack_timeout} s (TCP, TLS and handshake)"
            )
        error = failure.value
        if isinstance(error, _TWISTED_CONNECT_ERRORS) and not isinstance(error, CONNECT_ERRORS):
            raise AMQPConnectionError(f"{describe(params)}: {error}") from error
        return failure

    d.addErrback(failed)
    return d


class _OneShotFactory(Factory):
    """``connectProtocol``'s factory, but quiet: a noisy factory logs "Starting factory"
    and "Stopping factory" on every (re)connect, and until an application begins
    logging, Twisted keeps those events (and through them each dead connection)."""

    noisy = False

    def __init__(self, protocol: AMQPProtocol) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> AMQPProtocol:
        return self._protocol


def _as_clock(reactor: Any) -> IReactorTime:
    clock: IReactorTime = reactor
    return clock
