"""Parsing of ``amqp://``/``amqps://`` URLs into ConnectionParameters keywords."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from txamqp091._credentials import PlainCredentials
from txamqp091._tls import SSLOptions, _ssl_options_from_dict, default_ssl_context
from txamqp091._validation import _check_mechanism


def _url_int(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an int, got {text!r}") from None


def _url_float(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None


def _url_str(name: str, text: str) -> str:
    return text


def _url_literal(name: str, text: str) -> dict[str, Any] | None:
    """Evaluate a Python literal dict (or None), as pika's URL options do."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"{name} must be a Python literal dict, got {text!r}") from None
    if value is not None and not isinstance(value, dict):
        raise ValueError(f"{name} must be a Python literal dict, got {text!r}")
    return value


_URL_OPTIONS: dict[str, Callable[[str, str], object]] = {
    "auth_mechanism": lambda name, text: _check_mechanism(text),
    "blocked_connection_timeout": _url_float,
    "channel_max": _url_int,
    "client_properties": _url_literal,
    "connection_attempts": _url_int,
    "connection_name": _url_str,
    "frame_max": _url_int,
    "heartbeat": _url_int,
    "locale": _url_str,
    "max_message_size": _url_int,
    "max_unconfirmed": _url_int,
    "retry_delay": _url_float,
    "socket_timeout": _url_float,
    "ssl_options": _url_literal,
    "stack_timeout": _url_float,
    "tcp_options": _url_literal,
}


def _parse_url(url: str, default_host: str) -> dict[str, Any]:
    """Turn an ``amqp://`` or ``amqps://`` URL into ConnectionParameters keywords."""
    if not isinstance(url, str):
        raise ValueError(f"url must be a str, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r}; use amqp or amqps")
    tls = parts.scheme == "amqps"
    kwargs: dict[str, Any] = {}

    host = unquote(parts.hostname or "") or default_host
    kwargs["host"] = host
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"port in {parts.netloc!r} is invalid: {exc}") from None
    if port is not None:
        kwargs["port"] = port
    if parts.username is not None:
        kwargs["credentials"] = PlainCredentials(
            unquote(parts.username), unquote(parts.password or "")
        )

    # The vhost is one path segment, percent-encoded: "/" is the default and
    # "%2F" spells the vhost named "/". A raw "/" inside it is ambiguous.
    raw_vhost = parts.path[1:]
    if "/" in raw_vhost:
        raise ValueError(
            f"virtual_host in the URL path must be one segment ('/' is written %2F), "
            f"got {parts.path!r}"
        )
    kwargs["virtual_host"] = unquote(raw_vhost) if raw_vhost else "/"

    seen: set[str] = set()
    for name, text in parse_qsl(parts.query, keep_blank_values=True):
        parser = _URL_OPTIONS.get(name)
        if parser is None:
            raise ValueError(f"unknown URL option {name!r}; valid: {', '.join(_URL_OPTIONS)}")
        if name in seen:
            raise ValueError(f"URL option {name!r} is given more than once")
        seen.add(name)
        kwargs[name] = parser(name, text)

    ssl_dict = kwargs.pop("ssl_options", None)
    if "ssl_options" in seen:
        if not tls and ssl_dict is not None:
            raise ValueError("ssl_options needs the amqps:// scheme")
        if tls and ssl_dict is None:
            raise ValueError("ssl_options=None contradicts the amqps:// scheme")
    if tls:
        if ssl_dict is None:
            kwargs["ssl_options"] = SSLOptions(default_ssl_context(), server_hostname=host)
        else:
            kwargs["ssl_options"] = _ssl_options_from_dict(ssl_dict, host)
    if kwargs.get("auth_mechanism") == "EXTERNAL":
        # The certificate names the user; a username in the URL has no role.
        kwargs.pop("credentials", None)
    return kwargs
