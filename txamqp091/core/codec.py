"""AMQP 0-9-1 primitives and RabbitMQ field tables, both ways, losslessly.

Decoders take a buffer and an offset and return ``(value, new_offset)``: they
never slice the receive buffer except to materialise the value itself.

Field-table types are RabbitMQ's, which differ from the 0-9-1 spec's grammar
(RabbitMQ errata, "Field types")::

    t bool      b int8     B uint8     s int16    u uint16   I int32
    i uint32    l int64    f float32   d float64  D decimal  S long string
    x bytes     A array    T timestamp F table    V void

A value decodes to a plain Python value when the default encoding of that
value gives the same type letter, and to a :mod:`txamqp091.types` wrapper
otherwise, so ``encode_table(decode_table(b))`` returns ``b`` for every
well-formed ``b``.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from collections.abc import Callable, Mapping
from typing import Any

from ..exceptions import ProtocolError
from ..types import (
    Float32,
    Int8,
    Int16,
    Int64,
    LongStr,
    Timestamp,
    UInt8,
    UInt16,
    UInt32,
)
from . import _accel

__all__ = [
    "Buffer",
    "DecodeError",
    "FieldTable",
    "decode_field_value",
    "decode_longstr",
    "decode_shortstr",
    "decode_table",
    "encode_field_value",
    "encode_longstr",
    "encode_shortstr",
    "encode_table",
    "truncate_shortstr",
]

#: What decoders read from: the receive buffer (or bytes). Not memoryview: its slices
#: have no ``decode()``, the fast way to make a str.
Buffer = bytes | bytearray
FieldTable = dict[str, Any]

SYNTAX_ERROR = 502
#: Field tables and arrays nested deeper than this are a syntax error: decoding is
#: recursive, and a peer could otherwise send a few kilobytes of ``F`` tags that
#: exhaust Python's recursion limit (RabbitMQ itself nests far less deeply).
MAX_NESTING_DEPTH = 100

_pack = struct.pack
_unpack_from = struct.unpack_from
_unpack_uint32 = struct.Struct(">I").unpack_from
_pack_uint32 = struct.Struct(">I").pack
_pack_int32 = struct.Struct(">i").pack
_unpack_int32 = struct.Struct(">i").unpack_from
_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
#: What reading past the end of a buffer, or bad UTF-8, raises.
MALFORMED = (struct.error, IndexError, UnicodeDecodeError)


class DecodeError(ProtocolError):
    """A method, header or field table could not be decoded (502 SYNTAX_ERROR)."""

    def __init__(self, what: str, extra: int = 0, detail: str = "") -> None:
        text = detail or (f"{extra} bytes left over" if extra > 0 else f"{-extra} bytes short")
        super().__init__(SYNTAX_ERROR, f"SYNTAX_ERROR - malformed {what}: {text}")


# -- strings -------------------------------------------------------------------


def encode_shortstr(value: str, name: str = "shortstr") -> bytes:
    """A length octet and UTF-8 bytes; longer than 255 bytes is the caller's error."""
    raw = value.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"{name} is longer than 255 bytes once UTF-8 encoded ({len(raw)})")
    return _pack("B", len(raw)) + raw


def truncate_shortstr(text: str) -> str:
    """``text`` cut to at most 255 bytes once UTF-8 encoded (never inside a character):
    what a reply text may hold. Cutting at 255 *characters* is not enough: a peer's
    non-ASCII text quoted in a protocol error would then fail to encode."""
    if len(text) <= 63:
        return text  # at most 252 bytes
    raw = text.encode("utf-8")
    if len(raw) <= 255:
        return text
    return raw[:255].decode("utf-8", "ignore")


#: Encoded short strings of property values that repeat (content types, app ids...).
SHORTSTR_CACHE: dict[str, bytes] = {}
_SHORTSTR_CACHE_SIZE = 1024


def encode_shortstr_cached(value: str, name: str = "shortstr") -> bytes:
    """:func:`encode_shortstr`, remembered for the next message with the same value."""
    encoded = encode_shortstr(value, name)
    if len(SHORTSTR_CACHE) >= _SHORTSTR_CACHE_SIZE:
        SHORTSTR_CACHE.clear()
    SHORTSTR_CACHE[value] = encoded
    return encoded


def encode_longstr(value: bytes | str) -> bytes:
    """Long strings are raw bytes on the wire; ``str`` is sent as UTF-8."""
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


def decode_shortstr(buf: Buffer, offset: int) -> tuple[str, int]:
    length = buf[offset]
    end = offset + 1 + length
    if end > len(buf):
        raise DecodeError("short string", len(buf) - end)
    return buf[offset + 1 : end].decode(), end


def decode_longstr(buf: Buffer, offset: int) -> tuple[bytes, int]:
    (length,) = _unpack_from(">I", buf, offset)
    start = offset + 4
    end = start + length
    if end > len(buf):
        raise DecodeError("long string", len(buf) - end)
    return bytes(buf[start:end]), end


# -- encoding field values -----------------------------------------------------


def _enc_str(v: str) -> bytes:
    raw = v.encode("utf-8")
    return b"S" + _pack(">I", len(raw)) + raw


def _enc_bytes(v: bytes) -> bytes:
    return b"x" + _pack(">I", len(v)) + v


def _enc_bool(v: bool) -> bytes:
    return b"t\x01" if v else b"t\x00"


def _enc_int(v: int) -> bytes:
    if -0x80000000 <= v <= 0x7FFFFFFF:
        return b"I" + _pack(">i", v)
    if -0x8000000000000000 <= v <= 0x7FFFFFFFFFFFFFFF:
        return b"l" + _pack(">q", v)
    raise ValueError(f"int field value out of the signed 64-bit range: {v}")


def _enc_float(v: float) -> bytes:
    return b"d" + _pack(">d", v)


def _enc_decimal(v: decimal.Decimal) -> bytes:
    sign, digits, exponent = v.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"decimal field value is not finite: {v}")
    unscaled = int("".join(map(str, digits)) or "0")
    if exponent > 0:
        unscaled *= 10**exponent
        exponent = 0
    scale = -exponent
    if sign:
        unscaled = -unscaled
    if scale > 255 or not -0x80000000 <= unscaled <= 0x7FFFFFFF:
        raise ValueError(f"decimal field value does not fit AMQP's scale octet and int32: {v}")
    return b"D" + _pack(">Bi", scale, unscaled)


def _enc_datetime(v: datetime.datetime) -> bytes:
    if v.tzinfo is None:
        v = v.replace(tzinfo=_UTC)  # naive means UTC (API.md)
    seconds = (v - _EPOCH) // datetime.timedelta(seconds=1)
    if seconds < 0:
        raise ValueError(f"timestamp field value before the epoch: {v}")
    return b"T" + _pack(">Q", seconds)


def _enc_dict(v: Mapping[str, Any]) -> bytes:
    return b"F" + encode_table(v)


def _enc_list(v: list[Any] | tuple[Any, ...]) -> bytes:
    body = b"".join([encode_field_value(item) for item in v])
    return b"A" + _pack(">I", len(body)) + body


def _enc_none(v: None) -> bytes:
    return b"V"


_WRAPPER_FORMATS = {
    b"b": ">b",
    b"B": ">B",
    b"s": ">h",
    b"u": ">H",
    b"I": ">i",
    b"i": ">I",
    b"l": ">q",
    b"T": ">Q",
    b"f": ">f",
    b"d": ">d",
}

_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    str: _enc_str,
    bytes: _enc_bytes,
    bytearray: lambda v: _enc_bytes(bytes(v)),
    bool: _enc_bool,
    int: _enc_int,
    float: _enc_float,
    decimal.Decimal: _enc_decimal,
    datetime.datetime: _enc_datetime,
    dict: _enc_dict,
    list: _enc_list,
    tuple: _enc_list,
    type(None): _enc_none,
}


def encode_field_value(value: Any) -> bytes:
    """The type letter and encoding of one field-table value."""
    encoder = _ENCODERS.get(type(value))
    if encoder is not None:
        return encoder(value)
    tag = getattr(type(value), "tag", None)
    if tag is not None:
        if tag == b"S":
            raw = bytes(value)
            return b"S" + _pack(">I", len(raw)) + raw
        encoded: bytes = tag + _pack(_WRAPPER_FORMATS[tag], value)
        return encoded
    # Subclasses of the plain types (an IntEnum, an OrderedDict, a str subclass).
    for base, base_encoder in _ENCODERS.items():
        if base is not type(None) and isinstance(value, base):
            return base_encoder(value)
    if isinstance(value, Mapping):
        return _enc_dict(value)
    raise ValueError(f"cannot encode {type(value).__name__} in a field table: {value!r}")


#: Encoded field-table keys (length octet + UTF-8): header names repeat across messages.
_KEY_CACHE: dict[str, bytes] = {}


def _encode_key(key: Any) -> bytes:
    if not isinstance(key, str):
        raise ValueError(f"field table keys must be str, got {type(key).__name__}: {key!r}")
    raw = key.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(f"field table key longer than 255 bytes: {key[:40]!r}...")
    encoded = _pack("B", len(raw)) + raw
    if len(_KEY_CACHE) >= 1024:
        _KEY_CACHE.clear()
    _KEY_CACHE[key] = encoded
    return encoded


def encode_table(table: Mapping[str, Any] | None) -> bytes:
    """A field table with its 4-byte length prefix; ``None`` is the empty table.

    Strings and int32s, most of what headers hold, are encoded inline: this runs
    once per published message that has headers.
    """
    if not table:
        return b"\x00\x00\x00\x00"
    parts = [b""]  # the length prefix, once known
    append = parts.append
    keys = _KEY_CACHE
    for key, value in table.items():
        encoded_key = keys.get(key)
        if encoded_key is None or type(key) is not str:
            encoded_key = _encode_key(key)
        append(encoded_key)
        kind = type(value)
        if kind is str:
            raw = value.encode("utf-8")
            append(b"S" + _pack_uint32(len(raw)))
            append(raw)
        elif kind is int and -0x80000000 <= value <= 0x7FFFFFFF:
            append(b"I" + _pack_int32(value))
        else:
            append(encode_field_value(value))
    parts[0] = _pack_uint32(sum(map(len, parts)))
    return b"".join(parts)


# -- decoding field values -----------------------------------------------------


def _dec_fixed(fmt: str, size: int, wrap: Callable[[Any], Any] | None) -> Callable[..., Any]:
    def decode(buf: Buffer, offset: int) -> tuple[Any, int]:
        (value,) = _unpack_from(fmt, buf, offset)
        return (wrap(value) if wrap is not None else value), offset + size

    return decode


def _dec_int64(buf: Buffer, offset: int) -> tuple[Any, int]:
    (value,) = _unpack_from(">q", buf, offset)
    # A plain int in the int32 range would re-encode as ``I``: keep the width.
    if -0x80000000 <= value <= 0x7FFFFFFF:
        return Int64(value), offset + 8
    return value, offset + 8


def _dec_bool(buf: Buffer, offset: int) -> tuple[Any, int]:
    octet = buf[offset]
    if octet > 1:
        raise DecodeError("boolean field", 0, f"boolean octet {octet}")
    return octet == 1, offset + 1


def _dec_decimal(buf: Buffer, offset: int) -> tuple[Any, int]:
    scale, unscaled = _unpack_from(">Bi", buf, offset)
    return decimal.Decimal(unscaled).scaleb(-scale), offset + 5


def _dec_longstr_value(buf: Buffer, offset: int) -> tuple[Any, int]:
    raw, offset = decode_longstr(buf, offset)
    try:
        return raw.decode("utf-8"), offset
    except UnicodeDecodeError:
        return LongStr(raw), offset


def _dec_bytes(buf: Buffer, offset: int) -> tuple[Any, int]:
    return decode_longstr(buf, offset)


def _dec_timestamp(buf: Buffer, offset: int) -> tuple[Any, int]:
    (seconds,) = _unpack_from(">Q", buf, offset)
    try:
        return _EPOCH + datetime.timedelta(seconds=seconds), offset + 8
    except OverflowError:
        return Timestamp(seconds), offset + 8


def _dec_array(buf: Buffer, offset: int, depth: int = 1) -> tuple[Any, int]:
    if depth > MAX_NESTING_DEPTH:
        raise _too_deep()
    (length,) = _unpack_from(">I", buf, offset)
    offset += 4
    end = offset + length
    if end > len(buf):
        raise DecodeError("field array", len(buf) - end)
    items = []
    while offset < end:
        value, offset = _decode_value(buf, offset, depth)
        items.append(value)
    if offset != end:
        raise DecodeError("field array", end - offset)
    return items, offset


def _dec_table_value(buf: Buffer, offset: int, depth: int = 1) -> tuple[Any, int]:
    return _decode_table_generic(buf, offset, depth)


def _too_deep() -> DecodeError:
    return DecodeError(
        "field table", 0, f"tables and arrays nested deeper than {MAX_NESTING_DEPTH} levels"
    )


def _dec_void(buf: Buffer, offset: int) -> tuple[Any, int]:
    return None, offset


_DECODERS: dict[int, Callable[[Buffer, int], tuple[Any, int]]] = {
    ord("t"): _dec_bool,
    ord("b"): _dec_fixed(">b", 1, Int8),
    ord("B"): _dec_fixed(">B", 1, UInt8),
    ord("s"): _dec_fixed(">h", 2, Int16),
    ord("u"): _dec_fixed(">H", 2, UInt16),
    ord("I"): _dec_fixed(">i", 4, None),
    ord("i"): _dec_fixed(">I", 4, UInt32),
    ord("l"): _dec_int64,
    ord("f"): _dec_fixed(">f", 4, Float32),
    ord("d"): _dec_fixed(">d", 8, None),
    ord("D"): _dec_decimal,
    ord("S"): _dec_longstr_value,
    ord("x"): _dec_bytes,
    ord("A"): _dec_array,
    ord("T"): _dec_timestamp,
    ord("F"): _dec_table_value,
    ord("V"): _dec_void,
}


def decode_field_value(buf: Buffer, offset: int) -> tuple[Any, int]:
    """One type letter and its value.

    :raises DecodeError: ``buf`` does not hold a well-formed value at ``offset``.
    """
    try:
        return _decode_value(buf, offset, 0)
    except MALFORMED as exc:
        raise DecodeError("field value", 0, f"{type(exc).__name__}: {exc}") from exc


def _decode_value(buf: Buffer, offset: int, depth: int) -> tuple[Any, int]:
    """One value inside a container ``depth`` levels deep; tables and arrays count."""
    tag = buf[offset]
    if tag == 70:  # F
        return _decode_table_generic(buf, offset + 1, depth + 1)
    if tag == 65:  # A
        return _dec_array(buf, offset + 1, depth + 1)
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise DecodeError("field table", 0, f"unknown field type {chr(tag)!r}")
    return decoder(buf, offset + 1)


def decode_table(buf: Buffer, offset: int) -> tuple[FieldTable, int]:
    """A field table with its 4-byte length prefix.

    The commonest value types (``S`` and ``I``) are decoded inline, since message
    headers pass through here once per message; anything else, and any ``S``
    value that is not UTF-8, goes through :func:`_decode_table_generic`.

    :raises DecodeError: ``buf`` does not hold a well-formed table at ``offset``.
    """
    table_offset = offset
    try:
        (length,) = _unpack_uint32(buf, offset)
        offset += 4
        end = offset + length
        table: FieldTable = {}
        while offset < end:
            kend = offset + 1 + buf[offset]
            key = buf[offset + 1 : kend].decode()
            tag = buf[kend]
            offset = kend + 1
            if tag == 83:  # S: long string
                (n,) = _unpack_uint32(buf, offset)
                offset += 4 + n
                table[key] = buf[offset - n : offset].decode()
            elif tag == 73:  # I: int32, a plain int
                (table[key],) = _unpack_int32(buf, offset)
                offset += 4
            else:
                return _decode_table_generic(buf, table_offset)
    except MALFORMED:
        # Bad UTF-8 may be a LongStr value; truncation is reported by the careful path.
        return _decode_table_generic(buf, table_offset)
    if offset != end or end > len(buf):
        return _decode_table_generic(buf, table_offset)
    return table, offset


def _decode_table_generic(buf: Buffer, offset: int, depth: int = 0) -> tuple[FieldTable, int]:
    """Every field type, with every check; :func:`decode_table`'s fallback.

    ``depth`` counts the tables and arrays this one is nested in; beyond
    :data:`MAX_NESTING_DEPTH` the table is refused before anything in it is read.
    """
    if depth > MAX_NESTING_DEPTH:
        raise _too_deep()
    try:
        (length,) = _unpack_uint32(buf, offset)
        offset += 4
        end = offset + length
        if end > len(buf):
            raise DecodeError("field table", len(buf) - end)
        table: FieldTable = {}
        decoders = _DECODERS
        while offset < end:
            kend = offset + 1 + buf[offset]
            key = buf[offset + 1 : kend].decode()
            tag = buf[kend]
            if tag == 70 or tag == 65:  # F, A: containers, one level deeper
                table[key], offset = _decode_value(buf, kend, depth)
                continue
            decoder = decoders.get(tag)
            if decoder is None:
                raise DecodeError("field table", 0, f"unknown field type {chr(tag)!r} for {key!r}")
            table[key], offset = decoder(buf, kend + 1)
    except MALFORMED as exc:
        # Truncated values and bad UTF-8 keys are syntax errors too, not crashes.
        raise DecodeError("field table", 0, f"{type(exc).__name__}: {exc}") from exc
    if offset != end:
        raise DecodeError("field table", end - offset)
    return table, offset


#: The pure-Python field-table codecs: the reference, whatever the accelerator does.
pure_decode_table = decode_table
pure_encode_table = encode_table
# The optional C accelerator (see _accel.py) takes over both when it is built.
decode_table, encode_table = _accel.install_table_codecs(decode_table, encode_table)
