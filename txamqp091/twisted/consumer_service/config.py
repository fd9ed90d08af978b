"""``--config FILE``: the consumer's settings from TOML, under the command line's flags.

Keys are the long option names (``prefetch``, ``max-redeliveries``; ``_`` works
for ``-`` too). Repeatable options take a list (``url = ["amqp://a/", "amqp://b/"]``)
and ``queue-arg`` takes a table (``queue-arg = { x-max-length = 1000 }``). A key
that is no option is refused with its name: a misspelt setting must not be
silently ignored in production.
"""

from __future__ import annotations

import datetime
import re
import sys
from typing import Any

from twisted.python import usage

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "REPEATABLE",
    "apply_config",
    "load_config",
    "parse_queue_arg",
    "parse_stream_offset",
]

#: Options that may be given more than once; each holds a list.
REPEATABLE = ("url", "routing-key", "queue-arg")

#: Keys that make no sense in the file itself.
_NOT_IN_FILE = frozenset({"config", "help", "version"})


def load_config(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise usage.UsageError(f"--config {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise usage.UsageError(f"--config {path}: not valid TOML: {exc}") from exc


def apply_config(options: usage.Options, path: str, from_config: set[str]) -> None:
    """Set ``options`` from the file, before the command line is parsed over them;
    ``from_config`` collects the names set, so a repeated flag replaces a file's list."""
    known = _known_options(options)
    for raw_key, value in load_config(path).items():
        key = raw_key.replace("_", "-")
        where = f"--config {path}: {raw_key!r}"
        if key not in known or key in _NOT_IN_FILE:
            raise usage.UsageError(f"{where} is not an amqp-consumer option")
        kind = known[key]
        if key == "queue-arg":
            options["queue-arg"] = _queue_args(value, where, parse_queue_arg)
            from_config.add(key)
        elif key in REPEATABLE:
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise usage.UsageError(f"{where} must be a string or a list of strings")
            options[key] = list(items)
            from_config.add(key)
        else:
            options[key] = _coerce(kind, value, where)
            from_config.add(key)


def _known_options(options: usage.Options) -> dict[str, Any]:
    """Option name -> its coercer (``int``, ``float``...), ``bool`` for flags, ``str`` else."""
    known: dict[str, Any] = {name: list for name in REPEATABLE}
    known["url-file"] = str
    parameters: list[Any] = getattr(options, "optParameters", [])
    for entry in parameters:
        known[entry[0]] = entry[4] if len(entry) > 4 else str
    flags: list[Any] = getattr(options, "optFlags", [])
    for entry in flags:
        known[entry[0]] = bool
    return known


def parse_queue_arg(text: str) -> tuple[str, Any]:
    """``key=value`` with a typed value: ``true``/``false``, an integer, a float, else a string.

    ``x-max-length=1000`` is the integer 1000 (RabbitMQ refuses the string "1000");
    quote a value that must stay a string: ``x-note="1000"``.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise usage.UsageError(f"--queue-arg must look like key=value, got {text!r}")
    return key, _typed(raw.strip())


#: ``--stream-offset`` words, as RabbitMQ takes them in ``x-stream-offset``.
STREAM_OFFSET_WORDS = ("first", "last", "next")
#: A time interval back from now, as RabbitMQ spells it: ``7D``, ``12h``, ``30m``...
_INTERVAL = re.compile(r"[0-9]+[YMDhms]")


def parse_stream_offset(text: str) -> Any:
    """``--stream-offset``: ``first``, ``last``, ``next``, an offset (an integer, 0 or
    more), an ISO 8601 timestamp (``2026-12-05T21:00:00Z``; UTC when it names no zone)
    or an interval back from now (``7D``, ``12h``, ``30m``).

    The value is what goes into ``x-stream-offset``: a word or interval stays a
    string, an offset becomes a 64-bit integer and a timestamp a ``datetime`` (an
    AMQP timestamp), which is how RabbitMQ tells them apart.
    """
    from ...types import Int64

    value = text.strip()
    if value in STREAM_OFFSET_WORDS or _INTERVAL.fullmatch(value):
        return value
    if value.isdigit():
        return Int64(int(value))
    try:
        stamp = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise usage.UsageError(
            f"--stream-offset must be first, last, next, an offset (0 or more), an ISO 8601 "
            f"timestamp or an interval such as 7D or 30m, got {text!r}"
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp


parse_stream_offset.coerceDoc = (  # type: ignore[attr-defined]
    "first, last, next, an offset (0 or more), an ISO 8601 timestamp or an interval "
    "back from now (7D, 12h, 30m)."
)


def _typed(raw: str) -> Any:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw


def _coerce(kind: Any, value: Any, where: str) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise usage.UsageError(f"{where} must be true or false")
        return int(value)
    if kind is str:
        if not isinstance(value, str):
            raise usage.UsageError(f"{where} must be a string")
        return value
    if kind is parse_stream_offset and isinstance(value, datetime.datetime):
        value = value.isoformat()  # a TOML date-time: ``stream-offset = 2026-12-05T21:00:00Z``
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise usage.UsageError(f"{where} must be a number")
    try:
        return kind(str(value))
    except usage.UsageError as exc:
        raise usage.UsageError(f"{where}: {exc}") from exc


def _queue_args(value: Any, where: str, parse: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list) and all(isinstance(i, str) for i in value):
        return [parse(item) for item in value]
    raise usage.UsageError(f"{where} must be a table or a list of key=value strings")
