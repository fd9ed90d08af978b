"""``connect()``: TCP (and TLS), then the AMQP handshake, under one deadline."""

from __future__ import annotations

import asyncio
import logging
import socket

from ..client.reconnect import connect_first, describe
from ..exceptions import AMQPConnectionError
from ..params import ConnectionParameters, ParametersLike, apply_tcp_options, normalize_parameters
from .channel import Connection
from .protocol import AMQPProtocol

__all__ = ["connect", "connect_once"]

logger = logging.getLogger("txamqp091.tornado")


async def connect(parameters: ParametersLike) -> Connection:
    """Connect to the first node that answers; returns a :class:`Connection` after Open-Ok.

    ``parameters`` is a :class:`~txamqp091.ConnectionParameters`, a URL, or a
    list of either (cluster nodes: each tried once per round, for
    ``connection_attempts`` rounds ``retry_delay`` apart, as
    :func:`~txamqp091.client.reconnect.connect_first` says). Each attempt's TCP
    connect is bounded by ``socket_timeout``, and its TCP, TLS and AMQP bring-up
    together by ``stack_timeout``. A refused login is not retried; when every
    attempt fails, the error's ``__cause__`` is the last attempt's error. Await it
    on a running asyncio loop (Tornado's IOLoop is one).
    """
    nodes = normalize_parameters(parameters)
    return await connect_first(nodes, connect_once, asyncio.sleep)


async def connect_once(params: ConnectionParameters) -> Connection:
    """One attempt at one node, bounded by ``params.stack_timeout``."""
    loop = asyncio.get_running_loop()
    protocol = AMQPProtocol(params, loop)
    try:
        return await asyncio.wait_for(_bring_up(loop, protocol, params), params.stack_timeout)
    except asyncio.TimeoutError:
        _abort(protocol)
        raise AMQPConnectionError(
            f"no AMQP connection to {describe(params)} within "
            f"stack_timeout={params.stack_timeout} s (TCP, TLS and handshake)"
        ) from None
    except BaseException:
        _abort(protocol)
        raise


def _abort(protocol: AMQPProtocol) -> None:
    # A connection that ended has closed its transport itself, after writing any
    # Connection.Close it owed the peer: aborting now would discard that Close.
    if protocol.transport is not None and not protocol.connection.is_closed:
        protocol.transport.abort()


async def _bring_up(
    loop: asyncio.AbstractEventLoop, protocol: AMQPProtocol, params: ConnectionParameters
) -> Connection:
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
    return await protocol.ready


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
