"""Every public method checks its arguments first: ``TypeError``/``ValueError`` naming the
argument, raised at the call, with nothing queued for the broker.

The cases run on the shared client layer (``ChannelLogic``, ``ConnectionLogic``,
``ConsumerLogic``), which both adapters' ``Channel``/``Connection``/``Consumer``
are; an AST check makes sure the surviving channel calls the same checks first.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from typing import Any

import pytest

from tests.client.support import Wire
from txamqp091 import ConnectionParameters, validation
from txamqp091.client import channel_base
from txamqp091.client.channel import ChannelLogic
from txamqp091.client.recovering import SurvivingChannel
from txamqp091.core.spec import BasicProperties
from txamqp091.testing import FakeBroker

LONG = "x" * 256
#: 128 two-byte characters: 128 characters, 256 bytes.
LONG_UTF8 = "é" * 128


def props(**fields: Any) -> BasicProperties:
    return BasicProperties(**fields)


# (method, args, kwargs, exception, the argument named in the message)
CHANNEL_CASES: list[tuple[str, tuple[Any, ...], dict[str, Any], type[Exception], str]] = [
    ("queue_declare", (None,), {}, TypeError, "queue"),
    ("queue_declare", (LONG,), {}, ValueError, "queue"),
    ("queue_declare", (LONG_UTF8,), {}, ValueError, "queue"),
    ("queue_declare", ("q",), {"durable": "yes"}, TypeError, "durable"),
    ("queue_declare", ("q",), {"passive": 1}, TypeError, "passive"),
    ("queue_declare", ("q",), {"exclusive": None}, TypeError, "exclusive"),
    ("queue_declare", ("q",), {"auto_delete": "no"}, TypeError, "auto_delete"),
    ("queue_declare", ("q",), {"arguments": [1]}, TypeError, "arguments"),
    ("queue_declare", ("q",), {"arguments": {"x": object()}}, TypeError, "arguments['x']"),
    ("queue_declare", ("q",), {"arguments": {1: 2}}, TypeError, "arguments keys"),
    ("queue_declare", ("q",), {"arguments": {LONG: 2}}, ValueError, "arguments key"),
    ("exchange_declare", (LONG,), {}, ValueError, "exchange"),
    ("exchange_declare", ("x",), {"exchange_type": 5}, TypeError, "exchange_type"),
    ("exchange_declare", ("x",), {"internal": "no"}, TypeError, "internal"),
    ("exchange_delete", (3,), {}, TypeError, "exchange"),
    ("exchange_delete", ("x",), {"if_unused": "no"}, TypeError, "if_unused"),
    ("exchange_bind", ("d", "s"), {"routing_key": LONG}, ValueError, "routing_key"),
    ("exchange_bind", (None, "s"), {}, TypeError, "destination"),
    ("exchange_unbind", ("d", LONG), {}, ValueError, "source"),
    ("queue_bind", ("q", "x"), {"routing_key": 7}, TypeError, "routing_key"),
    ("queue_bind", ("q", None), {}, TypeError, "exchange"),
    ("queue_unbind", ("q", LONG), {}, ValueError, "exchange"),
    ("queue_purge", (1,), {}, TypeError, "queue"),
    ("queue_delete", ("q",), {"if_empty": 1}, TypeError, "if_empty"),
    ("basic_qos", (), {"prefetch_count": -1}, ValueError, "prefetch_count"),
    ("basic_qos", (), {"prefetch_count": 65536}, ValueError, "prefetch_count"),
    ("basic_qos", (), {"prefetch_count": 1.5}, TypeError, "prefetch_count"),
    ("basic_qos", (), {"prefetch_size": -5}, ValueError, "prefetch_size"),
    ("basic_qos", (), {"global_qos": "x"}, TypeError, "global_qos"),
    ("basic_recover", (), {"requeue": None}, TypeError, "requeue"),
    ("flow", ("x",), {}, TypeError, "active"),
    ("basic_publish", ("", LONG, b""), {}, ValueError, "routing_key"),
    ("basic_publish", ("", LONG_UTF8, b""), {}, ValueError, "routing_key"),
    ("basic_publish", (LONG, "k", b""), {}, ValueError, "exchange"),
    ("basic_publish", (None, "k", b""), {}, TypeError, "exchange"),
    ("basic_publish", ("", "q", 42), {}, TypeError, "body"),
    ("basic_publish", ("", "q", None), {}, TypeError, "body"),
    ("basic_publish", ("", "q", b""), {"properties": {"a": 1}}, TypeError, "properties"),
    ("basic_publish", ("", "q", b""), {"mandatory": "yes"}, TypeError, "mandatory"),
    (
        "basic_publish",
        ("", "q", b""),
        {"properties": props(delivery_mode=3)},
        ValueError,
        "properties.delivery_mode",
    ),
    (
        "basic_publish",
        ("", "q", b""),
        {"properties": props(delivery_mode="2")},
        TypeError,
        "properties.delivery_mode",
    ),
    (
        "basic_publish",
        ("", "q", b""),
        {"properties": props(priority=256)},
        ValueError,
        "properties.priority",
    ),
    (
        "basic_publish",
        ("", "q", b""),
        {"properties": props(priority=-1)},
        ValueError,
        "properties.priority",
    ),
    (
        "basic_publish",
        ("", "q", b""),
        {"properties": props(headers={"x": object()})},
        TypeError,
        "properties.headers['x']",
    ),
    (
        "basic_publish",
        ("", "q", b""),
        {"properties": props(headers={"x": {"y": [1, {2, 3}]}})},
        TypeError,
        "properties.headers['x']['y'][1]",
    ),
    (
        "basic_publish",
        ("", "q", b""),
        {"properties": props(headers=["not", "a", "table"])},
        TypeError,
        "properties.headers",
    ),
    (
        "basic_publish",
        ("", "q", b""),
        {"properties": props(content_type=LONG)},
        ValueError,
        "properties.content_type",
    ),
    (
        "basic_publish",
        ("", "q", b""),
        {"properties": props(correlation_id=5)},
        TypeError,
        "properties.correlation_id",
    ),
    (
        "basic_publish",
        ("", "q", b""),
        {"properties": props(delivery_mode=True)},
        TypeError,
        "properties.delivery_mode",
    ),
    (
        "basic_publish",
        ("", "q", b""),
        {"properties": props(app_id=0)},
        TypeError,
        "properties.app_id",
    ),
    (
        "basic_publish",
        ("", "q", b""),
        {"properties": props(timestamp=-1)},
        ValueError,
        "properties.timestamp",
    ),
    ("basic_consume", (None,), {}, TypeError, "queue"),
    ("basic_consume", ("q",), {"consumer_tag": LONG}, ValueError, "consumer_tag"),
    ("basic_consume", ("q",), {"consumer_tag": 5}, TypeError, "consumer_tag"),
    ("basic_consume", ("q",), {"on_message_callback": 5}, TypeError, "on_message_callback"),
    ("basic_consume", ("q",), {"auto_ack": "no"}, TypeError, "auto_ack"),
    ("basic_consume", ("q",), {"arguments": {"x-priority": object()}}, TypeError, "arguments"),
    ("basic_cancel", (None,), {}, TypeError, "consumer_tag"),
    ("basic_get", (5,), {}, TypeError, "queue"),
    ("basic_get", ("q",), {"auto_ack": 1}, TypeError, "auto_ack"),
    ("basic_ack", (-1,), {}, ValueError, "delivery_tag"),
    ("basic_ack", ("1",), {}, TypeError, "delivery_tag"),
    ("basic_ack", (1,), {"multiple": "y"}, TypeError, "multiple"),
    ("basic_nack", (1,), {"requeue": "x"}, TypeError, "requeue"),
    ("basic_reject", (2**64,), {}, ValueError, "delivery_tag"),
    ("close", (), {"reply_code": 70000}, ValueError, "reply_code"),
    ("close", (), {"reply_text": 5}, TypeError, "reply_text"),
    ("add_on_return_callback", (None,), {}, TypeError, "callback"),
    ("add_on_cancel_callback", ("f",), {}, TypeError, "callback"),
    ("add_on_close_callback", (1,), {}, TypeError, "callback"),
]


@pytest.fixture
def wire() -> Wire:
    wire = Wire(FakeBroker())
    wire.result(wire.client._opened)
    return wire


@pytest.fixture
def ch(wire: Wire) -> ChannelLogic[Any]:
    channel: ChannelLogic[Any] = wire.result(wire.client.channel())
    return channel


def nothing_queued(wire: Wire) -> bool:
    return wire.client._core.outgoing_frames == [] and not wire.runtime.written


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "error", "name"),
    CHANNEL_CASES,
    ids=[f"{c[0]}-{c[4]}-{i}" for i, c in enumerate(CHANNEL_CASES)],
)
def test_channel_methods_refuse_bad_arguments_before_sending(
    wire: Wire,
    ch: ChannelLogic[Any],
    method: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    name: str,
) -> None:
    with pytest.raises(error, match=re.escape(name)):
        getattr(ch, method)(*args, **kwargs)
    assert nothing_queued(wire)
    assert ch.is_open  # the channel is as good as before


def test_good_arguments_still_pass(wire: Wire, ch: ChannelLogic[Any]) -> None:
    headers = {"s": "x", "n": 1, "f": 0.5, "b": b"\x00", "t": True, "l": [1, {"a": None}]}
    wire.result(ch.queue_declare("q", arguments={"x-max-priority": 10}))
    wire.result(ch.basic_qos(prefetch_count=65535, prefetch_size=0))
    wire.result(
        ch.basic_publish(
            "", "q", "text", BasicProperties(delivery_mode=2, priority=255, headers=headers)
        )
    )
    assert wire.result(ch.basic_get("q", auto_ack=True)).body == b"text"


def test_connection_methods(wire: Wire) -> None:
    conn = wire.client
    with pytest.raises(ValueError, match="reply_code"):
        conn.close(reply_code=-1)
    with pytest.raises(TypeError, match="new_secret"):
        conn.update_secret(5, "refresh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reason"):
        conn.update_secret(b"secret", LONG)
    assert nothing_queued(wire) and conn.is_open


def test_consumer_get_timeout(wire: Wire, ch: ChannelLogic[Any]) -> None:
    wire.result(ch.queue_declare("q"))
    consumer = wire.result(ch.basic_consume("q"))
    with pytest.raises(ValueError, match="timeout"):
        consumer.get(timeout=-1)
    with pytest.raises(TypeError, match="timeout"):
        consumer.get(timeout="1")


def test_channel_max_out_of_range_is_refused_by_the_parameters() -> None:
    with pytest.raises(ValueError, match="channel_max"):
        ConnectionParameters(channel_max=70000)


def _first_call(cls: type, name: str) -> str | None:
    method = getattr(cls, name)
    if method is channel_base.ChannelBase.basic_publish:
        # The C accelerator's: it takes only what the Python method's fast accept takes,
        # and hands everything else to that method, the one read here.
        method = channel_base.PURE_BASIC_PUBLISH
    source = textwrap.dedent(inspect.getsource(method))
    fn = ast.parse(source).body[0]
    assert isinstance(fn, ast.FunctionDef)
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    first = body[0]
    if isinstance(first, ast.If) and not first.orelse and len(first.body) == 1:
        # A fast accept of the common arguments (basic_publish, once per message):
        # everything else goes to the full check, which must be the branch's only statement.
        first = first.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Call)
        and isinstance(first.value.func, ast.Attribute)
        and isinstance(first.value.func.value, ast.Name)
        and first.value.func.value.id == "validate"
    ):
        return first.value.func.attr
    return None


CHECKED = sorted({case[0] for case in CHANNEL_CASES})


@pytest.mark.parametrize("cls", [ChannelLogic, SurvivingChannel])
@pytest.mark.parametrize("name", CHECKED)
def test_every_public_method_checks_first(cls: type, name: str) -> None:
    expected = "callback" if name.startswith("add_on_") else name
    assert _first_call(cls, name) == expected
    assert hasattr(validation, expected)
