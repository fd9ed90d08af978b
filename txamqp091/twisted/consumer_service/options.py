"""The command line of ``twistd amqp-consumer``, merged over an optional TOML file.

Where a setting comes from, strongest first: a flag on the command line, then
``TXAMQP091_URL`` (broker URLs only), then ``--config FILE``, then the default.
Everything is checked here, before the reactor starts, so a wrong option, a
handler that cannot be imported or a misspelt config key stops ``twistd`` at
once with a message naming it.

This module is imported by ``twistd amqp-consumer --help``: it must stay free of
``twisted.web``, ``treq`` and ``prometheus_client``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from twisted.python import usage

from ...handling import is_handler_factory
from ...message import Message
from ...params import ConnectionParameters, URLParameters
from .config import REPEATABLE, apply_config, parse_queue_arg, parse_stream_offset

__all__ = ["ENV_URL", "Options", "load_handler", "parse_queue_arg"]

#: Broker URLs from the environment (comma- or space-separated), to keep secrets out of argv.
ENV_URL = "TXAMQP091_URL"
DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"

LONGDESC = """\
Consume one AMQP queue with a handler function, as a long-running service.

The handler takes a txamqp091 Message and may return a value, a Deferred or a
coroutine. Success acks the message. Failure requeues it (--on-error requeue,
the default) or rejects it; a message that failed more than --max-redeliveries
times is rejected, so the queue's dead-letter exchange receives it.

Broker URLs come from --url (repeatable: cluster nodes, tried in turn),
--url-file (one URL per line), or the TXAMQP091_URL environment variable, so
credentials need not appear on the command line. --config reads the same
settings from a TOML file (keys are the option names); flags win over it.

A stream (--queue-type stream, or --stream-offset for an existing one) is read
from --stream-offset; after a reconnect the service resumes after the last
message it handled instead of starting there again.

SIGTERM stops consuming, lets in-flight handlers finish within
--shutdown-grace seconds and acks them, requeues everything else, closes the
connection and exits with status 0. --health-port serves /healthz, /readyz and
/metrics (Prometheus text, with the txamqp091[metrics] extra).

Example:
  twistd -n amqp-consumer --url amqp://guest:guest@localhost/ --queue orders \\
      --handler myapp.consumers:handle --prefetch 50 --health-port 8080
"""

#: Options that take a value: name -> (short, default, help, TOML type).
_INT, _FLOAT, _STR = int, float, str
QUEUE_TYPES = ("classic", "quorum", "stream")
EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")
LOG_FORMATS = ("text", "json")
ON_ERROR = ("requeue", "reject")


def _number(name: str, kind: type[int] | type[float]) -> Callable[[str], Any]:
    """A coercer that names its option when the value is wrong (Twisted's does not)."""

    def coerce(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise usage.UsageError(f"--{name} must be {what}, got {value!r}") from None
        if number < 0:
            raise usage.UsageError(f"--{name} must not be negative, got {value!r}")
        return number

    coerce.coerceDoc = (  # type: ignore[attr-defined]
        "A whole number, 0 or more." if kind is int else "A number, 0 or more."
    )
    return coerce


def load_handler(spec: str) -> Callable[..., Any]:
    """``package.module:callable`` -> the callable (or handler factory), with a clear error."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise usage.UsageError(f"--handler must look like package.module:callable, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise usage.UsageError(
            f"--handler {spec}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    handler: Any = module
    for part in attr.split("."):
        handler = getattr(handler, part, None)
        if handler is None:
            raise usage.UsageError(f"--handler {spec}: {module_name!r} has no {attr!r}")
    if not callable(handler):
        raise usage.UsageError(f"--handler {spec}: {attr!r} is not callable")
    return handler  # type: ignore[no-any-return]


class Options(usage.Options):
    """``twistd amqp-consumer`` options; after parsing, ``self["params"]`` holds the
    broker nodes, ``self["handler_fn"]`` the handler and ``self["queue_arguments"]``
    the Queue.Declare arguments."""

    synopsis = "--queue QUEUE --handler module:callable [--url URL ...] [options]"
    longdesc = LONGDESC

    optParameters = [
        ["connection-name", None, None, "The connection name shown in the management UI."],
        ["queue", "q", None, "The queue to consume from (required)."],
        ["handler", None, None, "The handler, as package.module:callable (required)."],
        ["prefetch", "p", 50, "Unacknowledged messages the broker may send at once.",
         _number("prefetch", int)],
        ["concurrency", "c", 0, "Handlers running at once; 0 means --prefetch.",
         _number("concurrency", int)],
        ["threads", "t", 0, "Run the handler in a pool of this many threads (0: in the reactor).",
         _number("threads", int)],
        ["queue-type", None, "classic", "With --declare: classic, quorum or stream."],
        ["stream-offset", None, None,
         "The queue is a stream: where to start reading (default with --queue-type stream: "
         "next)",
         parse_stream_offset],
        ["exchange", None, None, "With --declare: an exchange to declare and bind the queue to."],
        ["exchange-type", None, "direct", "With --exchange: direct, fanout, topic or headers."],
        ["dead-letter-exchange", None, None,
         "With --declare: the queue's dead-letter exchange (declared as fanout if missing)."],
        ["on-error", None, "requeue", "What a failed handler does to its message: requeue|reject."],
        ["max-redeliveries", None, 5,
         "Requeue a failing message at most this many times, then reject it.",
         _number("max-redeliveries", int)],
        ["requeue-delay", None, 0.0,
         "Seconds to hold a failed message (unacked) before requeueing it.",
         _number("requeue-delay", float)],
        ["health-port", None, 0, "Serve /healthz, /readyz and /metrics on this port (0: off).",
         _number("health-port", int)],
        ["health-interface", None, "", "The interface for --health-port (default: all)."],
        ["shutdown-grace", None, 30.0,
         "Seconds in-flight handlers may take to finish on SIGTERM.",
         _number("shutdown-grace", float)],
        ["log-format", None, "text", "text, or json for one JSON object per line."],
        ["config", None, None, "A TOML file of these settings (keys are option names)."],
        ["forward-url", None, None, "txamqp091.handlers:http_forward: the URL to POST to."],
        ["forward-timeout", None, 10.0, "http_forward: seconds before a POST counts as failed.",
         _number("forward-timeout", float)],
        ["forward-concurrency", None, 0, "http_forward: POSTs at once (0: --concurrency).",
         _number("forward-concurrency", int)],
    ]  # fmt: skip
    optFlags = [
        ["declare", None, "Declare the queue (durable), and the exchanges and bindings asked for."],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        for name in REPEATABLE:
            self[name] = []
        self["url-file"] = None
        #: Repeatable options whose current list came from --config (a flag replaces it).
        self._from_config: set[str] = set()

    def getUsage(self, width: int | None = None) -> str:
        """Twisted rewraps ``longdesc`` into one paragraph; print it as written instead."""
        self.longdesc = ""
        try:
            text: str = super().getUsage(width)
        finally:
            self.longdesc = LONGDESC
        return f"{text}\n{LONGDESC}"

    # -- repeatable options ---------------------------------------------------------------

    def _append(self, name: str, value: Any) -> None:
        if name in self._from_config:
            self._from_config.discard(name)
            self[name] = []
        self[name].append(value)

    def opt_url(self, url: str) -> None:
        """A broker URL, amqp:// or amqps:// (repeatable: cluster nodes, tried in turn)."""
        self._append("url", url)

    opt_u = opt_url

    def opt_url_file(self, path: str) -> None:
        """A file of broker URLs, one per line ('#' starts a comment)."""
        self._from_config.discard("url-file")
        self["url-file"] = path

    def opt_routing_key(self, key: str) -> None:
        """With --exchange: a binding key (repeatable; default: the queue name)."""
        self._append("routing-key", key)

    def opt_queue_arg(self, text: str) -> None:
        """With --declare: a queue argument key=value, typed (repeatable)."""
        self._append("queue-arg", parse_queue_arg(text))

    # -- parsing --------------------------------------------------------------------------

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        argv = list(sys.argv[1:] if options is None else options)
        path = _config_path(argv)
        if path is not None:
            apply_config(self, path, self._from_config)
        super().parseOptions(argv)  # type: ignore[no-untyped-call]

    def postOptions(self) -> None:
        self._check_choices()
        if not self["queue"]:
            raise usage.UsageError("--queue is required")
        if not self["handler"]:
            raise usage.UsageError("--handler is required")
        self["params"] = self._broker_nodes()
        self["queue_arguments"] = self._queue_arguments()
        if not self["declare"]:
            for name in ("exchange", "dead-letter-exchange"):
                if self[name]:
                    raise usage.UsageError(f"--{name} needs --declare")
            for name in ("routing-key", "queue-arg"):
                if self[name]:
                    raise usage.UsageError(f"--{name} needs --declare")
            if self["queue-type"] != "classic":
                raise usage.UsageError(
                    "--queue-type needs --declare (give --stream-offset to consume an "
                    "existing stream)"
                )
        elif self["stream-offset"] is not None and self["queue-type"] != "stream":
            raise usage.UsageError("--stream-offset needs a stream: --queue-type stream")
        #: The queue is a stream: consumed with x-stream-offset, failures skipped.
        self["stream"] = self["queue-type"] == "stream" or self["stream-offset"] is not None
        if self["stream"] and self["stream-offset"] is None:
            self["stream-offset"] = "next"
        if self["routing-key"] and not self["exchange"]:
            raise usage.UsageError("--routing-key needs --exchange")
        if self["concurrency"] == 0:
            self["concurrency"] = self["prefetch"] or 1
        if self["prefetch"] and self["concurrency"] > self["prefetch"]:
            raise usage.UsageError(
                f"--concurrency {self['concurrency']} is more than --prefetch "
                f"{self['prefetch']}: the broker never sends that many at once"
            )
        if self["stream"] and self["prefetch"] == 0:
            what = "--queue-type stream" if self["queue-type"] == "stream" else "--stream-offset"
            raise usage.UsageError(f"{what} needs a --prefetch above 0")
        handler = load_handler(self["handler"])
        if is_handler_factory(handler):
            try:
                handler = handler(self)
            except usage.UsageError:
                raise
            except ValueError as exc:
                raise usage.UsageError(f"--handler {self['handler']}: {exc}") from exc
        self["handler_fn"] = handler

    def _check_choices(self) -> None:
        for name, choices in (
            ("queue-type", QUEUE_TYPES),
            ("exchange-type", EXCHANGE_TYPES),
            ("on-error", ON_ERROR),
            ("log-format", LOG_FORMATS),
        ):
            if self[name] not in choices:
                raise usage.UsageError(
                    f"--{name} must be one of {', '.join(choices)}, got {self[name]!r}"
                )
        if self["health-port"] > 65535:
            raise usage.UsageError(f"--health-port must be a TCP port, got {self['health-port']}")

    def _broker_nodes(self) -> list[ConnectionParameters]:
        """The URLs from the strongest source that gives any, parsed."""
        urls, source = self._urls()
        nodes = []
        for url in urls:
            try:
                params: ConnectionParameters = URLParameters(url)
            except ValueError as exc:
                raise usage.UsageError(f"{source}: {_redact(url)}: {exc}") from exc
            if self["connection-name"]:
                params = params.replace(connection_name=self["connection-name"])
            nodes.append(params)
        return nodes

    def _urls(self) -> tuple[list[str], str]:
        """Flags (--url and --url-file together), then TXAMQP091_URL, then --config."""
        from_file = self["url-file"]
        flag_urls = [] if "url" in self._from_config else list(self["url"])
        flag_file = None if "url-file" in self._from_config else from_file
        if flag_urls or flag_file:
            urls = flag_urls + (_read_url_file(flag_file) if flag_file else [])
            return urls, "--url-file" if flag_file and not flag_urls else "--url"
        env = os.environ.get(ENV_URL, "").replace(",", " ").split()
        if env:
            return env, ENV_URL
        config_urls = list(self["url"]) + (_read_url_file(from_file) if from_file else [])
        if config_urls:
            return config_urls, "--config url"
        return [DEFAULT_URL], "the default URL"

    def _queue_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = dict(self["queue-arg"])
        if self["queue-type"] != "classic":
            arguments["x-queue-type"] = self["queue-type"]
        if self["dead-letter-exchange"]:
            arguments["x-dead-letter-exchange"] = self["dead-letter-exchange"]
        return arguments

    @property
    def handler(self) -> Callable[[Message], Any]:
        return self["handler_fn"]  # type: ignore[no-any-return]


def _config_path(argv: list[str]) -> str | None:
    """``--config`` found ahead of the real parse, so the file can be read first and
    every flag then overrides it."""
    path = None
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--config" and index + 1 < len(argv):
            path = argv[index + 1]
        elif arg.startswith("--config="):
            path = arg.partition("=")[2]
    return path


def _read_url_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise usage.UsageError(f"--url-file {path}: {exc.strerror or exc}") from exc
    urls = [line.split("#", 1)[0].strip() for line in lines]
    urls = [url for url in urls if url]
    if not urls:
        raise usage.UsageError(f"--url-file {path}: no URL in it")
    return urls


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"
