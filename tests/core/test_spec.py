"""The generated spec module against RabbitMQ's JSON, and every method's wire round trip."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import sample_method
from txamqp091.core import spec
from txamqp091.core.codec import DecodeError
from txamqp091.core.frames import encode_publish_method

REPO = Path(__file__).resolve().parents[2]
SPEC_JSON = REPO.parent / "shared" / "reference" / "amqp-rabbitmq-0.9.1.json"

needs_json = pytest.mark.skipif(not SPEC_JSON.exists(), reason=f"{SPEC_JSON} is not present")


def load_json() -> dict[str, Any]:
    with open(SPEC_JSON, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def field_name(name: str) -> str:
    return {"global": "global_qos"}.get(name.replace("-", "_"), name.replace("-", "_"))


def json_methods() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    if not SPEC_JSON.exists():
        return []
    data = load_json()
    return [(c, m) for c in data["classes"] for m in c["methods"]]


def arg_types(method_class: type[spec.Method]) -> dict[str, str]:
    """Field name -> AMQP type, from the JSON."""
    data = load_json()
    domains = dict(data["domains"])
    for c in data["classes"]:
        for m in c["methods"]:
            if (c["id"], m["id"]) == (method_class.CLASS_ID, method_class.METHOD_ID):
                return {
                    field_name(a["name"]): a.get("type") or domains[a["domain"]]
                    for a in m["arguments"]
                }
    raise KeyError(method_class.NAME)


# -- the tables against the JSON ---------------------------------------------------------


@needs_json
def test_every_json_method_is_generated() -> None:
    pairs = json_methods()
    assert len(pairs) == len(spec.METHODS) == 66
    for c, m in pairs:
        method_class = spec.METHODS[(c["id"] << 16) | m["id"]]
        assert method_class.NAME == f"{c['name']}.{m['name']}"
        assert (method_class.CLASS_ID, method_class.METHOD_ID) == (c["id"], m["id"])
        assert method_class.SYNCHRONOUS is bool(m.get("synchronous"))
        assert method_class.HAS_CONTENT is bool(m.get("content"))
        assert method_class.FIELDS == tuple(field_name(a["name"]) for a in m["arguments"])
        assert method_class.__slots__ == method_class.FIELDS


@needs_json
def test_classes_and_constants_match_the_json() -> None:
    data = load_json()
    assert spec.CLASS_IDS == {c["name"]: c["id"] for c in data["classes"]}
    for const in data["constants"]:
        assert getattr(spec, const["name"].replace("-", "_")) == const["value"]
    hard = {c["value"] for c in data["constants"] if c.get("class") == "hard-error"}
    soft = {c["value"] for c in data["constants"] if c.get("class") == "soft-error"}
    assert spec.HARD_ERRORS == hard and spec.SOFT_ERRORS == soft
    assert set(spec.REPLY_NAMES) == hard | soft | {200}
    assert spec.PROTOCOL_VERSION == (data["major-version"], data["minor-version"], data["revision"])
    assert spec.PROTOCOL_HEADER == b"AMQP\x00" + bytes(spec.PROTOCOL_VERSION)
    assert spec.PORT == data["port"] == 5672


@needs_json
def test_basic_properties_fields_match_the_json() -> None:
    basic = next(c for c in load_json()["classes"] if c["name"] == "basic")
    assert spec.BasicProperties.FIELDS == tuple(field_name(p["name"]) for p in basic["properties"])
    assert len(spec.BasicProperties.FIELDS) == 14


def test_index_is_unique_and_consistent() -> None:
    indexes = [cls.INDEX for cls in spec.METHODS.values()]
    assert len(set(indexes)) == len(indexes)
    assert len({cls.NAME for cls in spec.METHODS.values()}) == len(indexes)
    for index, cls in spec.METHODS.items():
        assert cls.INDEX == index == (cls.CLASS_ID << 16) | cls.METHOD_ID
        assert cls.encode is not spec.Method.encode


def test_replies_resolve() -> None:
    for cls in spec.METHODS.values():
        if cls.SYNCHRONOUS:
            assert cls.REPLIES, cls.NAME
        else:
            assert cls.REPLIES == (), cls.NAME
        for reply in cls.REPLIES:
            reply_class = spec.METHODS[reply]
            assert reply_class.CLASS_ID == cls.CLASS_ID
            assert not reply_class.SYNCHRONOUS
        if cls.REPLIES:
            assert spec.METHODS[cls.REPLIES[0]].NAME == cls.NAME + "-ok"
    assert spec.BasicGet.REPLIES == (spec.BasicGetOk.INDEX, spec.BasicGetEmpty.INDEX)


def test_any_method_union_lists_every_method() -> None:
    assert set(spec.AnyMethod.__args__) == set(spec.METHODS.values())  # type: ignore[attr-defined]


# -- round trips -----------------------------------------------------------------------

#: Largest values of each AMQP type, so a wrong width or byte order shows.
BIG = {
    "octet": 0xFE,
    "short": 0xFEDC,
    "long": 0xFEDCBA98,
    "longlong": 0xFEDCBA9876543210,
    "timestamp": 0xFEDCBA9876543210,
    "shortstr": "\u00e9" * 127,  # 254 UTF-8 bytes
    "longstr": bytes(range(256)) * 3,
    "table": {"nested": {"list": [1, "two", None]}, "n": -1},
}


def sample(method_class: type[spec.Method], bits: set[str] | None = None) -> spec.Method:
    """``method_class`` with BIG values; bit fields True exactly when named in ``bits``."""
    types = arg_types(method_class)
    values = {
        name: (name in bits if bits is not None else True) if t == "bit" else BIG[t]
        for name, t in types.items()
    }
    method: spec.Method = method_class(**values)
    return method


def decode_payload(payload: bytes, junk: bytes = b"junk") -> spec.Method:
    """Decode a method payload placed inside a larger buffer, as the parser does."""
    buf = junk + payload + b"\xce"
    (index,) = struct.unpack_from(">I", buf, len(junk))
    return spec.METHODS[index].decode(buf, len(junk) + 4, len(junk) + len(payload))


@needs_json
@pytest.mark.parametrize("method_class", list(spec.METHODS.values()), ids=lambda c: c.NAME)
def test_every_method_round_trips(method_class: type[spec.Method]) -> None:
    method = sample(method_class)
    payload = method.encode()
    assert struct.unpack_from(">HH", payload) == (method_class.CLASS_ID, method_class.METHOD_ID)
    decoded = decode_payload(payload)
    assert type(decoded) is method_class
    assert decoded == method
    for name in method_class.FIELDS:
        assert getattr(decoded, name) == getattr(method, name)
    assert decoded.encode() == payload


def bit_fields(method_class: type[spec.Method]) -> list[str]:
    return [n for n in method_class.FIELDS if method_class.__annotations__[n] == "bool"]


@pytest.mark.parametrize(
    "method_class", [c for c in spec.METHODS.values() if bit_fields(c)], ids=lambda c: c.NAME
)
def test_each_bit_lands_in_its_own_place(method_class: type[spec.Method]) -> None:
    names = bit_fields(method_class)
    seen = set()
    for name in [*names, None]:
        method = sample_method(method_class)
        for bit in names:
            setattr(method, bit, bit == name)
        payload = method.encode()
        seen.add(payload)
        decoded = decode_payload(payload)
        assert [n for n in names if getattr(decoded, n)] == ([name] if name else [])
        assert decoded == method
    # Each bit changes the payload: no two bits share a place.
    assert len(seen) == len(names) + 1


@pytest.mark.parametrize("method_class", list(spec.METHODS.values()), ids=lambda c: c.NAME)
def test_trailing_bytes_are_a_decode_error(method_class: type[spec.Method]) -> None:
    payload = sample_method(method_class).encode() + b"\x00"
    with pytest.raises(DecodeError, match="1 bytes left over") as info:
        decode_payload(payload)
    assert info.value.reply_code == 502


@needs_json
@pytest.mark.parametrize(
    "method_class", [c for c in spec.METHODS.values() if c.FIELDS], ids=lambda c: c.NAME
)
def test_truncated_arguments_do_not_decode(method_class: type[spec.Method]) -> None:
    payload = sample(method_class).encode()
    with pytest.raises((DecodeError, struct.error, IndexError)):
        spec.METHODS[method_class.INDEX].decode(payload[:-1], 4, len(payload) - 1)


def test_defaults_follow_the_json() -> None:
    assert spec.ConnectionStart().mechanisms == b"PLAIN"
    assert spec.ConnectionOpen().virtual_host == "/"
    assert spec.ExchangeDeclare().type == "direct"
    assert spec.BasicQos().global_qos is False
    assert spec.QueueDeclare().arguments == {}
    # Tables default to a fresh dict per instance, never a shared one.
    assert spec.QueueDeclare().arguments is not spec.QueueDeclare().arguments


def test_known_wire_layouts() -> None:
    assert spec.BasicPublish(exchange="ex", routing_key="rk", mandatory=True).encode() == (
        encode_publish_method("ex", "rk", True, False)
    )
    assert spec.BasicAck(delivery_tag=5, multiple=True).encode() == (
        b"\x00\x3c\x00\x50" + struct.pack(">Q", 5) + b"\x01"
    )
    assert spec.QueueDeclare(queue="q", durable=True, nowait=True).encode() == (
        b"\x00\x32\x00\x0a\x00\x00\x01q\x12\x00\x00\x00\x00"
    )
    assert spec.ConnectionTuneOk(channel_max=1, frame_max=2, heartbeat=3).encode() == (
        b"\x00\x0a\x00\x1f\x00\x01\x00\x00\x00\x02\x00\x03"
    )


def test_method_equality_repr_and_hash() -> None:
    a = spec.QueueDeclare(queue="q")
    assert a == spec.QueueDeclare(queue="q")
    assert a != spec.QueueDeclare(queue="r")
    assert a != spec.QueueDelete(queue="q")
    assert spec.TxSelect() == spec.TxSelect()
    assert spec.TxSelect() != spec.TxCommit()
    assert a.__eq__(object()) is NotImplemented
    assert repr(a).startswith("<queue.declare(ticket=0, queue='q', passive=False")
    with pytest.raises(TypeError):
        hash(a)


def test_abstract_method_base() -> None:
    with pytest.raises(NotImplementedError):
        spec.Method().encode()
    with pytest.raises(NotImplementedError):
        spec.Method.decode(b"", 0, 0)


# -- content properties ------------------------------------------------------------------

FULL_PROPERTIES: dict[str, Any] = {
    "content_type": "application/json",
    "content_encoding": "gzip",
    "headers": {"a": 1, "b": [1, "x"], "c": {"d": None}},
    "delivery_mode": 2,
    "priority": 9,
    "correlation_id": "corr",
    "reply_to": "amq.rabbitmq.reply-to",
    "expiration": "60000",
    "message_id": "mid",
    "timestamp": 0xFEDCBA9876543210,
    "type": "t",
    "user_id": "guest",
    "app_id": "app",
    "cluster_id": "cl",
}


def decode_props(raw: bytes) -> spec.BasicProperties:
    buf = b"junk" + raw + b"\xce"
    return spec.BasicProperties.decode(buf, 4, 4 + len(raw))


def test_all_fourteen_properties_round_trip() -> None:
    assert set(FULL_PROPERTIES) == set(spec.BasicProperties.FIELDS)
    props = spec.BasicProperties(**FULL_PROPERTIES)
    raw = props.encode()
    assert raw[:2] == b"\xff\xfc"  # 14 flags, bits 15..2
    decoded = decode_props(raw)
    assert decoded == props
    for name, value in FULL_PROPERTIES.items():
        assert getattr(decoded, name) == value
    assert decoded.encode() == raw


@pytest.mark.parametrize("position", range(14))
def test_each_property_alone(position: int) -> None:
    name = spec.BasicProperties.FIELDS[position]
    props = spec.BasicProperties(**{name: FULL_PROPERTIES[name]})
    raw = props.encode()
    assert struct.unpack(">H", raw[:2])[0] == 1 << (15 - position)
    decoded = decode_props(raw)
    assert decoded == props
    assert [f for f in decoded.FIELDS if getattr(decoded, f) is not None] == [name]


def test_empty_properties() -> None:
    assert spec.BasicProperties().encode() == b"\x00\x00"
    assert decode_props(b"\x00\x00") == spec.BasicProperties()
    assert repr(spec.BasicProperties()) == "BasicProperties()"
    assert repr(spec.BasicProperties(priority=1)) == "BasicProperties(priority=1)"


def test_malformed_properties() -> None:
    with pytest.raises(DecodeError, match="continuation flag"):
        decode_props(b"\x00\x01")
    with pytest.raises(DecodeError, match="left over"):
        decode_props(b"\x00\x00\x00")
    with pytest.raises(DecodeError):
        decode_props(b"\x80\x00\x05ab")  # content_type longer than the header


def test_properties_equality_and_hash() -> None:
    a = spec.BasicProperties(content_type="x")
    assert a == spec.BasicProperties(content_type="x")
    assert a != spec.BasicProperties(content_type="y")
    assert a.__eq__("x") is NotImplemented
    with pytest.raises(TypeError):
        hash(a)


# -- the generator ---------------------------------------------------------------------


@needs_json
def test_codegen_check_passes() -> None:
    result = subprocess.run(
        [sys.executable, "tools/codegen.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "is current" in result.stdout


@needs_json
def test_codegen_check_fails_when_stale(tmp_path: Path) -> None:
    data = load_json()
    for const in data["constants"]:
        if const["name"] == "FRAME-MIN-SIZE":
            const["value"] = 8192
    changed = tmp_path / "amqp.json"
    changed.write_text(json.dumps(data), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "tools/codegen.py", "--check", "--spec", str(changed)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "stale" in result.stderr
