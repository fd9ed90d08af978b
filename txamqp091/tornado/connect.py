"""``connect()``: TCP (and TLS), then the AMQP handshake, under one deadline."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

from ..client.reconnect import connect_first, describe
from ..exceptions import AMQPConnectionError
from ..params import ConnectionParameters, ParametersLike, apply_tcp_options, normalize_parameters
from .channel import Connection
from .protocol import AMQPProtocol
from .runtime import Clock

__all__ = ["Endpoint", "connect", "connect_once", "tcp_endpoint"]

logger = logging.getLogger("txamqp091.tornado")


#: Connects ``protocol`` to the node ``params`` names, returning once the transport is
#: made (``protocol.connection_made`` called): :func:`tcp_endpoint` by default, TCP and
#: TLS as ``params`` say. Tests inject their own.
Endpoint = Callable[[ConnectionParameters, AMQPProtocol], Awaitable[object]]


async def connect(
    parameters: ParametersLike, *, clock: Clock | None = None, endpoint: Endpoint | None = None
) -> Connection:
    """Connect to the first node that answers; returns a :class:`Connection` after Open-Ok.

    ``parameters`` is a :class:`~txamqp091.ConnectionParameters`, a URL, or a
    list of either (cluster nodes: each tried once per round, for
    ``connection_attempts`` rounds ``retry_delay`` apart, as
    :func:`~txamqp091.client.reconnect.connect_first` says). Each attempt's TCP
    connect is bounded by ``socket_timeout``, and its TCP, TLS and AMQP bring-up
    together by ``stack_timeout``. A refused login is not retried; when every
    attempt fails, the error's ``__cause__`` is the last attempt's error. Await it
    on a running asyncio loop (Tornado's IOLoop is one).

    ``clock`` (time and timers: ``time()``, ``call_later()``) and ``endpoint``
    replace the loop's clock and the TCP/TLS connect, for tests.
    """
    nodes = normalize_parameters(parameters)
    loop = asyncio.get_running_loop()

    async def sleep(seconds: float) -> None:
        waiter: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        (clock or loop).call_later(seconds, wake)
        await waiter

    def attempt(params: ConnectionParameters) -> Awaitable[Connection]:
        return connect_once(params, clock=clock, endpoint=endpoint)

    return await connect_first(nodes, attempt, sleep)


async def connect_once(
    params: ConnectionParameters, *, clock: Clock | None = None, endpoint: Endpoint | None = None
) -> Connection:
    """One attempt at one node, bounded by ``params.stack_timeout`` on ``clock``."""
    loop = asyncio.get_running_loop()
    protocol = AMQPProtocol(params, loop, clock)
    bring_up = asyncio.ensure_future(_bring_up(protocol, params, endpoint or tcp_endpoint))
    timed_out = False

    def expire() -> None:
        nonlocal timed_out
        timed_out = True
        bring_up.cancel()

    timer = (clock or loop).call_later(params.stack_timeout, expire)
    try:
        return await bring_up
    except asyncio.CancelledError:
        _abort(protocol)
        if timed_out:
            raise AMQPConnectionError(
                f"no AMQP connection to {describe(params)} within "
                f"stack_timeout={params.stack_timeout} s (TCP, TLS and handshake)"
            ) from None
        raise
    except BaseException:
        _abort(protocol)
        raise
    finally:
        timer.cancel()


def _abort(protocol: AMQPProtocol) -> None:
    # A connection that ended has closed its transport itself, after writing any
    # Connection.Close it owed the peer: aborting now would discard that Close.
    if protocol.transport is not None and not protocol.connection.is_closed:
        protocol.transport.abort()


async def _bring_up(
    protocol: AMQPProtocol, params: ConnectionParameters, endpoint: Endpoint
) -> Connection:
    await endpoint(params, protocol)
    return await protocol.ready


async def tcp_endpoint(params: ConnectionParameters, protocol: AMQPProtocol) -> None:
    """TCP (each address within ``socket_timeout``), ``tcp_options``, then TLS for amqps."""
    loop = asyncio.get_running_loop()
    sock = await _tcp_connect(loop, params)
    try:
        skipped = apply_tcp_options(sock, params.tcp_options)
        if skipped:
            logger.warning("tcp_options not available on this platform: %s", ", ".join(skipped))
        ssl_options = params.ssl_options
        await loop.create_connection(
            lambda: protocol,
            sock=sock,
            ssl=ssl_options.context if ssl_options is not None else None,
            server_hostname=params.tls_server_hostname,
        )
    except BaseException:
        if protocol.transport is None:
            sock.close()
        raise


async def _tcp_connect(
    loop: asyncio.AbstractEventLoop, params: ConnectionParameters
) -> socket.socket:
    """A connected non-blocking socket to the node; each address tried within socket_timeout."""
    infos = await loop.getaddrinfo(params.host, params.port, type=socket.SOCK_STREAM)
    if not infos:
        raise AMQPConnectionError(f"{params.host!r} resolves to no address")
    errors: list[str] = []
    for family, type_, proto, _, address in infos:
        where = f"{params.host}:{params.port} ({address[0]!s})"
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, address), params.socket_timeout)
        except asyncio.TimeoutError:
            sock.close()
            errors.append(
                f"TCP connect to {where} timed out (socket_timeout={params.socket_timeout} s)"
            )
        except OSError as exc:
            sock.close()
            errors.append(f"TCP connect to {where} failed: {exc}")
        except BaseException:
            sock.close()
            raise
        else:
            return sock
    raise AMQPConnectionError("; ".join(errors))
