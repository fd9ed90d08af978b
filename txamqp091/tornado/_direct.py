"""The socket under CPython's own asyncio socket transport, for reads and small writes
without the transport's Python layers.

Each RPC half is one read and one write. Through the transport, a read runs
``_read_ready``, ``_read_ready__data_received`` and the protocol's
``data_received`` before the client sees its bytes, and a write runs the
transport's ``write`` with its checks; for a 200-byte message those frames are
a measurable share of the client's time. When the transport is
``asyncio.selector_events._SelectorSocketTransport`` with the private parts
this module expects (CPython 3.10 to 3.13), the protocol reads and sends on its
socket itself, repeating exactly what the transport does around ``recv`` and
``send`` (its error and end-of-file handling, its buffer for the rest of a
partial send). Any other transport (TLS, uvloop, the proactor loop, test
fakes), or one that does not look as expected, keeps the transport's path.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import Any

__all__ = ["reader_replaceable", "selector_socket"]


def _selector_transport_class() -> type | None:
    try:
        from asyncio import selector_events
    except ImportError:  # pragma: no cover - every CPython has it
        return None
    cls = getattr(selector_events, "_SelectorSocketTransport", None)
    return cls if isinstance(cls, type) else None


_SELECTOR_TRANSPORT = _selector_transport_class()


def selector_socket(transport: asyncio.BaseTransport) -> socket.socket | None:
    """The socket of ``transport`` if it is asyncio's selector socket transport as this
    module knows it: a plain ``recv`` reader (no BufferedProtocol), a ``bytearray``
    or ``deque`` write buffer, the ``_conn_lost``, ``_closing``, ``max_size``
    fields and the ``_fatal_error`` and ``_read_ready__on_eof`` methods; else None."""
    if _SELECTOR_TRANSPORT is None or type(transport) is not _SELECTOR_TRANSPORT:
        return None
    t: Any = transport
    sock = getattr(t, "_sock", None)
    if not isinstance(sock, socket.socket):
        return None
    if (
        type(getattr(t, "_buffer", None)) not in (bytearray, deque)
        or type(getattr(t, "_conn_lost", None)) is not int
        or type(getattr(t, "_closing", None)) is not bool
        or type(getattr(t, "max_size", None)) is not int
        or not callable(getattr(t, "_fatal_error", None))
        or not callable(getattr(t, "_read_ready__on_eof", None))
    ):
        return None
    reader = getattr(t, "_read_ready_cb", None)
    if reader is None or reader != getattr(t, "_read_ready__data_received", None):
        return None
    return sock


def reader_replaceable(transport: Any) -> bool:
    """Whether the loop's reader of ``transport`` (its ``_read_ready``, which only calls
    ``_read_ready_cb``) can be replaced: the transport registers it with its own
    ``_add_reader(fd, callback)`` (which skips a paused or closing transport), from
    ``_read_ready`` looked up when it does so (``resume_reading``).

    The reader must be the class's own method, bound to ``transport`` (nothing set on
    the instance): asked of the bound method, not with ``vars(transport)``, which
    would turn the transport's inline attributes into a dict of its own, and every
    attribute the loop and this adapter read on it per read and write slower
    (callgrind: 5 attribute loads 726 -> 1861 instructions)."""
    reader = getattr(transport, "_read_ready", None)
    return (
        type(getattr(transport, "_sock_fd", None)) is int
        and callable(getattr(transport, "_add_reader", None))
        and callable(reader)
        and getattr(reader, "__self__", None) is transport
        and getattr(reader, "__func__", None) is getattr(type(transport), "_read_ready", None)
    )
