"""``ConnectionParameters`` taking pika's positional arguments too."""

from __future__ import annotations

from typing import Any

from .. import params

__all__ = ["ConnectionParameters"]

#: pika's ``ConnectionParameters`` positional order.
_POSITIONAL = (
    "host",
    "port",
    "virtual_host",
    "credentials",
    "channel_max",
    "frame_max",
    "heartbeat",
    "ssl_options",
    "connection_attempts",
    "retry_delay",
    "socket_timeout",
    "stack_timeout",
    "locale",
    "blocked_connection_timeout",
    "client_properties",
    "tcp_options",
)


class ConnectionParameters(params.ConnectionParameters):
    """:class:`txamqp091.ConnectionParameters`, also taking pika's positional arguments:
    ``ConnectionParameters("localhost", 5672, "/", credentials)``."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(_POSITIONAL):
            raise ValueError(
                f"ConnectionParameters takes at most {len(_POSITIONAL)} positional arguments"
            )
        for name, value in zip(_POSITIONAL, args):
            if name in kwargs:
                raise ValueError(f"{name}: given both positionally and by keyword")
            kwargs[name] = value
        super().__init__(**kwargs)
