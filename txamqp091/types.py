"""Typed wrappers that pick the AMQP field-table wire type of a value.

Python's ``int`` and ``float`` do not say how wide they are on the wire, and
``bytes``/``str`` do not say whether they are a ``x`` byte array or an ``S``
long string. Wrap a value to choose its field type explicitly; decoding returns
these wrappers wherever the default encoding would pick a different type, so a
decoded table re-encodes byte for byte.

Defaults for plain values: ``str`` -> ``S``, ``bytes`` -> ``x``, ``bool`` ->
``t``, ``int`` -> ``I`` when it fits in 32 signed bits else ``l``, ``float`` ->
``d``, ``Decimal`` -> ``D``, ``datetime`` -> ``T``, ``dict`` -> ``F``,
``list``/``tuple`` -> ``A``, ``None`` -> ``V``.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "Float32",
    "Float64",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "LongStr",
    "Timestamp",
    "UInt8",
    "UInt16",
    "UInt32",
]


class _BoundedInt(int):
    """An int that refuses values outside its wire width."""

    tag: ClassVar[bytes]
    low: ClassVar[int]
    high: ClassVar[int]

    def __new__(cls, value: int = 0) -> _BoundedInt:
        v = int(value)
        if not cls.low <= v <= cls.high:
            raise ValueError(f"{cls.__name__} out of range [{cls.low}, {cls.high}]: {v}")
        return super().__new__(cls, v)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self)})"


class Int8(_BoundedInt):
    """Signed 8-bit integer, field type ``b``."""

    tag, low, high = b"b", -(2**7), 2**7 - 1


class UInt8(_BoundedInt):
    """Unsigned 8-bit integer, field type ``B``."""

    tag, low, high = b"B", 0, 2**8 - 1


class Int16(_BoundedInt):
    """Signed 16-bit integer, field type ``s`` (RabbitMQ's letter, not the spec's ``U``)."""

    tag, low, high = b"s", -(2**15), 2**15 - 1


class UInt16(_BoundedInt):
    """Unsigned 16-bit integer, field type ``u``."""

    tag, low, high = b"u", 0, 2**16 - 1


class Int32(_BoundedInt):
    """Signed 32-bit integer, field type ``I``."""

    tag, low, high = b"I", -(2**31), 2**31 - 1


class UInt32(_BoundedInt):
    """Unsigned 32-bit integer, field type ``i``."""

    tag, low, high = b"i", 0, 2**32 - 1


class Int64(_BoundedInt):
    """Signed 64-bit integer, field type ``l`` (RabbitMQ's letter, not the spec's ``L``)."""

    tag, low, high = b"l", -(2**63), 2**63 - 1


class Timestamp(_BoundedInt):
    """Seconds since the epoch as field type ``T``, without a datetime conversion."""

    tag, low, high = b"T", 0, 2**64 - 1


class Float32(float):
    """A single-precision float, field type ``f``."""

    tag: ClassVar[bytes] = b"f"

    def __repr__(self) -> str:
        return f"Float32({float(self)!r})"


class Float64(float):
    """A double-precision float, field type ``d`` (the default for ``float``)."""

    tag: ClassVar[bytes] = b"d"

    def __repr__(self) -> str:
        return f"Float64({float(self)!r})"


class LongStr(bytes):
    """Raw bytes sent as field type ``S`` (a long string) instead of ``x``.

    Decoding gives this when an ``S`` value is not valid UTF-8, so it re-encodes
    unchanged.
    """

    tag: ClassVar[bytes] = b"S"

    def __repr__(self) -> str:
        return f"LongStr({bytes(self)!r})"
