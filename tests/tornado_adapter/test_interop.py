"""Interoperability with pika 1.4.4 (field tables both ways) and very large messages."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
import uuid
from decimal import Decimal
from typing import Any

import pytest

from tests.tornado_adapter.support import AMQP_URL, Names
from txamqp091 import BasicProperties
from txamqp091.tornado import connect
from txamqp091.types import (
    Float32,
    Float64,
    Int8,
    Int16,
    Int32,
    Int64,
    LongStr,
    Timestamp,
    UInt8,
    UInt16,
    UInt32,
)

pika = pytest.importorskip("pika")

pytestmark = [pytest.mark.asyncio, pytest.mark.broker]

UTC = datetime.timezone.utc
WHEN = datetime.datetime(2024, 2, 29, 12, 30, 45, tzinfo=UTC)


def pika_publish(queue: str, headers: dict[str, Any]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            "", queue, b"from pika", pika.BasicProperties(headers=headers), mandatory=True
        )
    finally:
        connection.close()


def pika_get(queue: str) -> tuple[Any, Any, bytes]:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        for _ in range(100):
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                return method, properties, body
            connection.sleep(0.02)
        raise AssertionError("pika got nothing")
    finally:
        connection.close()


def assert_same(actual: Any, expected: Any, path: str = "headers") -> None:
    """Equal value and, field by field, the same Python type (wrappers aside)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), (path, actual)
        assert sorted(actual) == sorted(expected), path
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (path, actual)
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, (path, actual, expected)
        if isinstance(expected, bool) or isinstance(actual, bool):
            assert type(actual) is type(expected), (path, type(actual), type(expected))
        elif isinstance(expected, int):
            assert isinstance(actual, int), (path, type(actual))  # int or a typed wrapper
        else:
            assert isinstance(actual, type(expected)), (path, type(actual), type(expected))


async def test_pika_field_tables_decode_field_by_field(names: Names) -> None:
    """Every type pika 1.4.4 can encode, published by pika and read by txamqp091."""
    queue = names.queue("from-pika")
    headers: dict[str, Any] = {
        "str": "hé, wörld",
        "empty-str": "",
        "bytes": b"\x00\x01\xfe\xff",
        "true": True,
        "false": False,
        "int-small": 42,
        "int-negative": -7,
        "int-32": 2**31 - 1,
        "int-64": 2**62 + 5,
        "int-64-min": -(2**63),
        "decimal": Decimal("3.14159"),
        "decimal-int": Decimal("120"),
        "datetime": WHEN,
        "void": None,
        "list": [1, "two", b"three", True, None, [4], {"five": 5}],
        "empty-list": [],
        "table": {"nested": {"deeper": {"n": 1, "s": "x"}}, "l": [Decimal("1.5")]},
        "empty-table": {},
    }
    conn = await connect(AMQP_URL)
    try:
        ch = await conn.channel()
        await ch.queue_declare(queue)
        await asyncio.to_thread(pika_publish, queue, headers)
        message = await ch.basic_get(queue, auto_ack=True)
        assert message is not None and message.body == b"from pika"
        got = message.properties.headers
        # pika encodes every int as a signed 64-bit "l"; txamqp091 keeps that wire type.
        expected = dict(headers)
        expected["decimal-int"] = Decimal(120)
        assert_same(got, expected)
        for key in ("int-small", "int-negative", "int-32", "int-64"):
            assert type(got[key]) in (int, Int64), (key, type(got[key]))
        assert got["datetime"].tzinfo is not None and got["datetime"] == WHEN
    finally:
        await conn.close()


async def test_txamqp091_field_tables_decode_in_pika(names: Names) -> None:
    """Every field type txamqp091 writes, published by txamqp091 and read by pika."""
    queue = names.queue("to-pika")
    headers: dict[str, Any] = {
        "str": "hé, wörld",
        "longstr-bytes": LongStr(b"\xff\xfe not utf-8"),
        "bytes": b"\x00\x01\xfe\xff",
        "true": True,
        "false": False,
        "int8": Int8(-128),
        "uint8": UInt8(255),
        "int16": Int16(-32768),
        "uint16": UInt16(65535),
        "int32": Int32(-(2**31)),
        "uint32": UInt32(2**32 - 1),
        "int64": Int64(2**63 - 1),
        "int-default": 12345,
        "int-big": 2**40,
        "float32": Float32(1.5),
        "float64": Float64(-2.0),
        "float-default": 7.0,
        "decimal": Decimal("-12.345"),
        "naive-datetime": WHEN.replace(tzinfo=None),
        "aware-datetime": WHEN,
        "timestamp": Timestamp(1_700_000_000),
        "void": None,
        "array": [Int8(1), "two", b"three", False, None, [UInt16(4)], {"five": Decimal("5.5")}],
        "tuple": (1, 2),
        "table": {"nested": {"deeper": {"n": Int16(-1), "s": "x"}}},
        "empty-table": {},
        "empty-array": [],
    }
    conn = await connect(AMQP_URL)
    try:
        ch = await conn.channel()
        await ch.queue_declare(queue)
        await ch.confirm_delivery()
        await ch.basic_publish("", queue, b"to pika", BasicProperties(headers=headers))
    finally:
        await conn.close()
    _, properties, body = await asyncio.to_thread(pika_get, queue)
    assert body == b"to pika"
    got = properties.headers
    expected: dict[str, Any] = {
        "str": "hé, wörld",
        "longstr-bytes": b"\xff\xfe not utf-8",  # pika leaves undecodable "S" as bytes
        "bytes": b"\x00\x01\xfe\xff",
        "true": True,
        "false": False,
        "int8": -128,
        "uint8": 255,
        "int16": -32768,
        "uint16": 65535,
        "int32": -(2**31),
        "uint32": 2**32 - 1,
        "int64": 2**63 - 1,
        "int-default": 12345,
        "int-big": 2**40,
        # pika 1.4.4 decodes "f" and "d" through int(): whole numbers survive, fractions do not.
        "float32": 1,
        "float64": -2,
        "float-default": 7,
        "decimal": Decimal("-12.345"),
        "naive-datetime": WHEN,
        "aware-datetime": WHEN,
        "timestamp": datetime.datetime.fromtimestamp(1_700_000_000, UTC),
        "void": None,
        "array": [1, "two", b"three", False, None, [4], {"five": Decimal("5.5")}],
        "tuple": [1, 2],
        "table": {"nested": {"deeper": {"n": -1, "s": "x"}}},
        "empty-table": {},
        "empty-array": [],
    }
    assert_same(got, expected)


async def test_a_16_mib_message_round_trips_with_frame_max_4096(names: Names) -> None:
    queue = names.queue("big")
    body = os.urandom(1024) * (16 * 1024)  # 16 MiB
    digest = hashlib.sha256(body).hexdigest()
    conn = await connect(f"{AMQP_URL}?frame_max=4096")
    try:
        assert conn.negotiated.frame_max == 4096
        ch = await conn.channel()
        await ch.queue_declare(queue)
        await ch.confirm_delivery()
        message_id = uuid.uuid4().hex
        await ch.basic_publish("", queue, body, BasicProperties(message_id=message_id))
        consumer = await ch.basic_consume(queue)
        message = await consumer.get(timeout=10)
        assert message is not None
        assert len(message.body) == len(body)
        assert hashlib.sha256(message.body).hexdigest() == digest
        assert message.properties.message_id == message_id
        message.ack()
        assert await consumer.cancel() == 0
    finally:
        await conn.close()
