"""Generate ``txamqp091/core/spec.py`` from RabbitMQ's AMQP 0-9-1 JSON spec.

The JSON (``amqp-rabbitmq-0.9.1.json`` from rabbitmq-codegen) is read from
``../shared/reference`` and never copied into the repository; the generated
module is committed so that installing the package needs no generator, and
``--check`` lets CI prove the committed module is current.

Each method becomes a slotted class with typed fields, an ``encode()`` that
returns the method payload (class id, method id, arguments) and a ``decode()``
that reads it from a buffer at an offset without slicing the buffer. Code is
generated, rather than built from a table at import time, so that strict mypy
sees real attributes and the hot paths are straight-line ``struct`` calls.

Usage::

    python tools/codegen.py            # write txamqp091/core/spec.py and _speedups_tables.h
    python tools/codegen.py --check    # exit 1 when it is stale
    python tools/codegen.py --spec PATH
"""

from __future__ import annotations

import argparse
import json
import keyword
import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_SPEC = os.path.join(ROOT, "..", "shared", "reference", "amqp-rabbitmq-0.9.1.json")
TARGET = os.path.join(ROOT, "txamqp091", "core", "spec.py")
#: The property table the optional C accelerator (``_speedups.c``) includes.
TARGET_TABLES = os.path.join(ROOT, "txamqp091", "core", "_speedups_tables.h")

# Struct letters and Python types of the fixed-size AMQP primitives.
FIXED = {
    "octet": ("B", 1),
    "short": ("H", 2),
    "long": ("I", 4),
    "longlong": ("Q", 8),
    "timestamp": ("Q", 8),
}
PY_TYPE = {
    "bit": "bool",
    "octet": "int",
    "short": "int",
    "long": "int",
    "longlong": "int",
    "timestamp": "int",
    "shortstr": "str",
    "longstr": "bytes",
    "table": "FieldTable",
}
# Properties whose values usually repeat from message to message: their encodings are cached.
CACHED_SHORTSTRS = frozenset(
    {
        "content_type",
        "content_encoding",
        "reply_to",
        "expiration",
        "type",
        "user_id",
        "app_id",
        "cluster_id",
    }
)
# Arguments whose names would shadow a keyword; pika calls Basic.Qos's ``global`` this.
RENAMES = {"global": "global_qos"}

# Replies are derived: a synchronous method ``x`` is answered by ``x-ok``, and
# Basic.Get also by Basic.GetEmpty (spec: "get-ok" / "get-empty" responses).
EXTRA_REPLIES = {("basic", "get"): ["get-empty"]}


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", " ").split())


def field_name(arg_name: str) -> str:
    name = arg_name.replace("-", "_")
    name = RENAMES.get(name, name)
    assert not keyword.iskeyword(name), name
    return name


def resolve_type(spec: dict[str, Any], arg: dict[str, Any]) -> str:
    if "type" in arg:
        return str(arg["type"])
    domains = dict(spec["domains"])
    return str(domains[arg["domain"]])


def default_repr(typ: str, arg: dict[str, Any]) -> str | None:
    if "default-value" not in arg:
        return None
    value = arg["default-value"]
    if typ == "table":
        return "None"  # a fresh dict per instance; None means empty
    if typ == "longstr":
        return repr(str(value).encode())
    if typ == "bit":
        return repr(bool(value))
    return repr(value)


class Emitter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "", indent: int = 0) -> None:
        self.lines.append(("    " * indent + line) if line else "")


def gen_encode(out: Emitter, fields: list[tuple[str, str]], class_id: int, method_id: int) -> None:
    """Emit ``encode``: struct-packs runs of fixed fields, appends strings and tables."""
    out("def encode(self) -> bytes:", 1)
    out('"""The method payload: class id, method id and the arguments."""', 2)
    parts: list[str] = []
    fmt = ">HH"
    args = [str(class_id), str(method_id)]
    i = 0
    prelude: list[str] = []

    def flush() -> None:
        nonlocal fmt, args
        if fmt != ">":
            parts.append(f"_pack({fmt!r}, {', '.join(args)})")
        fmt, args = ">", []

    while i < len(fields):
        name, typ = fields[i]
        if typ == "bit":
            bits = []
            while i < len(fields) and fields[i][1] == "bit":
                bits.append(fields[i][0])
                i += 1
            expr = " | ".join(f"({int(1 << n)} if self.{b} else 0)" for n, b in enumerate(bits))
            fmt += "B"
            args.append(f"({expr})")
            continue
        if typ in FIXED:
            fmt += FIXED[typ][0]
            args.append(f"self.{name}")
        elif typ == "shortstr":
            var = f"_{name}"
            prelude.append(f"{var} = _shortstr(self.{name}, {name!r})")
            flush()
            parts.append(var)
        elif typ == "longstr":
            prelude.append(f"_{name} = _longstr(self.{name})")
            flush()
            parts.append(f"_pack('>I', len(_{name}))")
            parts.append(f"_{name}")
        elif typ == "table":
            flush()
            parts.append(f"_encode_table(self.{name})")
        else:  # pragma: no cover - the spec has no other types
            raise ValueError(typ)
        i += 1
    flush()
    for line in prelude:
        out(line, 2)
    if len(parts) == 1:
        out(f"return {parts[0]}", 2)
    else:
        out(f"return b''.join(({', '.join(parts)},))", 2)


def gen_decode(out: Emitter, cls_name: str, fields: list[tuple[str, str]]) -> None:
    """Emit ``decode``: reads from ``buf`` at ``offset`` (just past the ids) up to ``end``."""
    out("@classmethod", 1)
    out(f"def decode(cls, buf: Buffer, offset: int, end: int) -> {cls_name}:", 1)
    out('"""Read the arguments at ``buf[offset:end]`` (just past the class and method ids)."""', 2)
    if not fields:
        out("if offset != end:", 2)
        out("raise _DecodeError(cls.NAME, end - offset)", 3)
        out("return cls()", 2)
        return
    out("self = cls.__new__(cls)", 2)
    i = 0
    while i < len(fields):
        name, typ = fields[i]
        if typ == "bit":
            bits = []
            while i < len(fields) and fields[i][1] == "bit":
                bits.append(fields[i][0])
                i += 1
            out("_bits = buf[offset]", 2)
            out("offset += 1", 2)
            for n, b in enumerate(bits):
                out(f"self.{b} = bool(_bits & {1 << n})", 2)
            continue
        if typ in FIXED:
            run = []
            while i < len(fields) and fields[i][1] in FIXED:
                run.append(fields[i])
                i += 1
            fmt = ">" + "".join(FIXED[t][0] for _, t in run)
            size = sum(FIXED[t][1] for _, t in run)
            targets = ", ".join(f"self.{n}" for n, _ in run)
            comma = "," if len(run) == 1 else ""
            out(f"{targets}{comma} = _unpack_from({fmt!r}, buf, offset)", 2)
            out(f"offset += {size}", 2)
            continue
        if typ == "shortstr":
            out(f"self.{name}, offset = _decode_shortstr(buf, offset)", 2)
        elif typ == "longstr":
            out(f"self.{name}, offset = _decode_longstr(buf, offset)", 2)
        elif typ == "table":
            out(f"self.{name}, offset = _decode_table(buf, offset)", 2)
        i += 1
    out("if offset != end:", 2)
    out("raise _DecodeError(cls.NAME, end - offset)", 3)
    out("return self", 2)


def generate(spec: dict[str, Any]) -> str:
    out = Emitter()
    out('"""AMQP 0-9-1 with RabbitMQ\'s extensions: constants, methods and content properties.')
    out()
    out("GENERATED by tools/codegen.py from rabbitmq-codegen's amqp-rabbitmq-0.9.1.json;")
    out("do not edit. Regenerate with ``python tools/codegen.py``; CI runs ``--check``.")
    out()
    out("The JSON's licence, which covers the tables below::")
    out()
    for line in spec["copyright"]:
        out(("    " + line.rstrip()).rstrip())
    out('"""')
    out()
    out("# ruff: noqa")
    out("from __future__ import annotations")
    out()
    out("import struct")
    out("from typing import Any, ClassVar, Union")
    out()
    out("from .codec import (")
    out("    Buffer,")
    out("    FieldTable,")
    out("    SHORTSTR_CACHE as _SHORTSTR_CACHE,")
    out("    MALFORMED as _MALFORMED,")
    out("    DecodeError as _DecodeError,")
    out("    decode_longstr as _decode_longstr,")
    out("    decode_shortstr as _decode_shortstr,")
    out("    decode_table as _decode_table,")
    out("    encode_table as _encode_table,")
    out("    encode_longstr as _longstr,")
    out("    encode_shortstr as _shortstr,")
    out("    encode_shortstr_cached as _cached_shortstr,")
    out(")")
    out()
    out("_pack = struct.pack")
    out("_unpack_from = struct.unpack_from")
    out("_str = str")
    out()
    out(
        f"PROTOCOL_VERSION = ({spec['major-version']}, {spec['minor-version']}, {spec['revision']})"
    )
    out(f"PORT = {spec['port']}")
    out('PROTOCOL_HEADER = b"AMQP\\x00\\x00\\x09\\x01"')
    out()
    out("# Constants and reply codes.")
    reply_codes: list[tuple[str, int, str]] = []
    for const in spec["constants"]:
        cname = const["name"].replace("-", "_")
        out(f"{cname} = {const['value']}")
        if "class" in const or const["name"] == "REPLY-SUCCESS":
            reply_codes.append((cname, const["value"], const.get("class", "")))
    out()
    out("#: Reply codes whose error is a hard (connection) error.")
    hard = ", ".join(str(v) for _, v, c in reply_codes if c == "hard-error")
    soft = ", ".join(str(v) for _, v, c in reply_codes if c == "soft-error")
    out(f"HARD_ERRORS = frozenset(({hard}))")
    out("#: Reply codes whose error is a soft (channel) error.")
    out(f"SOFT_ERRORS = frozenset(({soft}))")
    out("#: Reply code -> its spec name.")
    out("REPLY_NAMES: dict[int, str] = {")
    for cname, value, _ in reply_codes:
        out(f"{value}: {cname!r},", 1)
    out("}")
    out()
    out("#: Class name -> class id.")
    out("CLASS_IDS: dict[str, int] = {")
    for cls in spec["classes"]:
        out(f"{cls['name']!r}: {cls['id']},", 1)
    out("}")
    out()
    out()
    out("class Method:")
    out('"""Base of every method class: its ids, name, and what answers it."""', 1)
    out()
    out("__slots__ = ()", 1)
    out("#: ``class_id << 16 | method_id``, the key of :data:`METHODS`.", 1)
    out("INDEX: ClassVar[int]", 1)
    out("CLASS_ID: ClassVar[int]", 1)
    out("METHOD_ID: ClassVar[int]", 1)
    out("#: ``class.method`` as the spec names it.", 1)
    out("NAME: ClassVar[str]", 1)
    out("#: A synchronous request expects one of :attr:`REPLIES`.", 1)
    out("SYNCHRONOUS: ClassVar[bool]", 1)
    out("#: Followed by a content header and body frames.", 1)
    out("HAS_CONTENT: ClassVar[bool]", 1)
    out("#: The INDEX of every method that answers this one.", 1)
    out("REPLIES: ClassVar[tuple[int, ...]]", 1)
    out("#: Field names, in wire order.", 1)
    out("FIELDS: ClassVar[tuple[str, ...]]", 1)
    out()
    out("def encode(self) -> bytes:", 1)
    out('"""The method payload: class id, method id and the arguments."""', 2)
    out("raise NotImplementedError", 2)
    out()
    out("@classmethod", 1)
    out("def decode(cls, buf: Buffer, offset: int, end: int) -> Method:", 1)
    out('"""Read the arguments at ``buf[offset:end]`` (just past the class and method ids)."""', 2)
    out("raise NotImplementedError", 2)
    out()
    out("def __repr__(self) -> str:", 1)
    out('args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS)', 2)
    out('return f"<{self.NAME}({args})>"', 2)
    out()
    out("def __eq__(self, other: object) -> bool:", 1)
    out("if type(other) is not type(self):", 2)
    out("return NotImplemented", 3)
    out("return all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)", 2)
    out()
    out("__hash__ = None  # type: ignore[assignment]", 1)
    out()
    all_classes: list[tuple[str, int]] = []
    for cls in spec["classes"]:
        cid = cls["id"]
        by_name = {m["name"]: m for m in cls["methods"]}
        for m in cls["methods"]:
            mid = m["id"]
            cls_name = camel(cls["name"]) + camel(m["name"])
            all_classes.append((cls_name, (cid << 16) | mid))
            fields = [(field_name(a["name"]), resolve_type(spec, a)) for a in m["arguments"]]
            defaults = {
                field_name(a["name"]): default_repr(resolve_type(spec, a), a)
                for a in m["arguments"]
            }
            replies: list[int] = []
            if m.get("synchronous"):
                for reply in [m["name"] + "-ok", *EXTRA_REPLIES.get((cls["name"], m["name"]), [])]:
                    if reply in by_name:
                        replies.append((cid << 16) | by_name[reply]["id"])
            out()
            out(f"class {cls_name}(Method):")
            out(f'"""``{cls["name"]}.{m["name"]}`` ({cid}, {mid})."""', 1)
            out()
            out(f"__slots__ = {tuple(n for n, _ in fields)!r}", 1)
            out(f"INDEX = {(cid << 16) | mid:#010x}", 1)
            out(f"CLASS_ID = {cid}", 1)
            out(f"METHOD_ID = {mid}", 1)
            out(f"NAME = {cls['name'] + '.' + m['name']!r}", 1)
            out(f"SYNCHRONOUS = {bool(m.get('synchronous'))}", 1)
            out(f"HAS_CONTENT = {bool(m.get('content'))}", 1)
            out(f"REPLIES = {tuple(replies)!r}", 1)
            out(f"FIELDS = {tuple(n for n, _ in fields)!r}", 1)
            out()
            for name, typ in fields:
                py = PY_TYPE[typ]
                out(f"{name}: {py}", 1)
            out()
            if fields:
                params = []
                for name, typ in fields:
                    py = PY_TYPE[typ]
                    d = defaults[name]
                    if typ == "table":
                        params.append(f"{name}: FieldTable | None = None")
                    elif d is None:
                        params.append(f"{name}: {py}")
                    else:
                        params.append(f"{name}: {py} = {d}")
                # Required arguments may follow defaulted ones in the spec: make all keyword-capable.
                seen_default = False
                fixed: list[str] = []
                for p in params:
                    if "=" in p:
                        seen_default = True
                        fixed.append(p)
                    elif seen_default:
                        name, py = p.split(": ")
                        fixed.append(f"{name}: {py} = {default_for(py)}")
                    else:
                        fixed.append(p)
                out("def __init__(", 1)
                out("self,", 2)
                for p in fixed:
                    out(f"{p},", 2)
                out(") -> None:", 1)
                for name, typ in fields:
                    if typ == "table":
                        out(f"self.{name} = {{}} if {name} is None else {name}", 2)
                    else:
                        out(f"self.{name} = {name}", 2)
                out()
            gen_encode(out, fields, cid, mid)
            out()
            gen_decode(out, cls_name, fields)
            out()
    out()
    out("#: ``INDEX`` -> method class, for decoding method frames.")
    out("METHODS: dict[int, type[Method]] = {")
    for cls_name, idx in all_classes:
        out(f"{idx:#010x}: {cls_name},", 1)
    out("}")
    out()
    out("AnyMethod = Union[")
    for cls_name, _ in all_classes:
        out(f"{cls_name},", 1)
    out("]")
    out()
    gen_properties(out, spec)
    out()
    out()
    out("# The optional C accelerator (see _accel.py) takes over BasicProperties.encode,")
    out("# .decode and construction with field keywords, with the same results; the")
    out("# pure-Python methods above stay the reference.")
    out("from . import _accel  # noqa: E402")
    out()
    out("_accel.install_properties(BasicProperties)")
    return "\n".join(out.lines).rstrip() + "\n"


def default_for(py: str) -> str:
    return {"int": "0", "str": "''", "bool": "False", "bytes": "b''"}[py]


def gen_properties(out: Emitter, spec: dict[str, Any]) -> None:
    basic = next(c for c in spec["classes"] if c["name"] == "basic")
    props = [(field_name(p["name"]), p["type"]) for p in basic["properties"]]
    assert len(props) <= 15
    out()
    out("class BasicProperties:")
    out('"""The content header properties of a message (class ``basic``).', 1)
    out()
    out("Every field is optional; ``None`` means absent and is not sent. ``headers``", 1)
    out("is a field table (see :mod:`txamqp091.types` for choosing wire types);", 1)
    out("``timestamp`` is seconds since the epoch.", 1)
    out()
    out("Absent fields fall back to the class attributes (None) rather than slots, so", 1)
    out("an instance stores only the fields it carries, decoded or constructed: a", 1)
    out("message's properties are one or two fields of fourteen, and each field stored", 1)
    out("costs its construction a store and its encoding a lookup.", 1)
    out('"""', 1)
    out()
    out(f"FIELDS: ClassVar[tuple[str, ...]] = {tuple(n for n, _ in props)!r}", 1)
    out()
    for name, typ in props:
        out(f"{name}: {PY_TYPE[typ]} | None = None", 1)
    out()
    out("def __init__(", 1)
    out("self,", 2)
    out("*,", 2)
    for n, t in props:
        out(f"{n}: {PY_TYPE[t]} | None = None,", 2)
    out(") -> None:", 1)
    for name, _ in props:
        out(f"if {name} is not None:", 2)
        out(f"self.{name} = {name}", 3)
    out()
    out("def __repr__(self) -> str:", 1)
    out(
        'args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self.FIELDS if getattr(self, f) is not None)',
        2,
    )
    out('return f"BasicProperties({args})"', 2)
    out()
    out("def __eq__(self, other: object) -> bool:", 1)
    out("if not isinstance(other, BasicProperties):", 2)
    out("return NotImplemented", 3)
    out("return all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)", 2)
    out()
    out("__hash__ = None  # type: ignore[assignment]", 1)
    out()
    out("def encode(self) -> bytes:", 1)
    out('"""Property flags followed by the present values, as a content header carries them."""', 2)
    out("flags = 0", 2)
    out("parts: list[bytes] = [b'']  # the flags go first, once known", 2)
    out("v: Any", 2)
    for bit, (name, typ) in zip(range(15, 0, -1), props):
        out(f"v = self.{name}", 2)
        out("if v is not None:", 2)
        out(f"flags |= {1 << bit:#06x}", 3)
        if typ == "shortstr" and name in CACHED_SHORTSTRS:
            # Values that repeat from message to message: encode each once.
            out("encoded = _SHORTSTR_CACHE.get(v)", 3)
            out("if encoded is None:", 3)
            out(f"encoded = _cached_shortstr(v, {name!r})", 4)
            out("parts.append(encoded)", 3)
        elif typ == "shortstr":
            out(f"parts.append(_shortstr(v, {name!r}))", 3)
        elif typ == "table":
            out("parts.append(_encode_table(v))", 3)
        elif typ in FIXED:
            out(f"parts.append(_pack({'>' + FIXED[typ][0]!r}, v))", 3)
        else:  # pragma: no cover
            raise ValueError(typ)
    out("parts[0] = _pack('>H', flags)", 2)
    out("return b''.join(parts)", 2)
    out()
    out("@classmethod", 1)
    out("def decode(cls, buf: Buffer, offset: int, end: int) -> BasicProperties:", 1)
    out('"""Read property flags and values from ``buf[offset:end]``.', 2)
    out("", 2)
    out("Short strings and octets are read inline: this runs once per message received.", 2)
    out('"""', 2)
    out("try:", 2)
    out("self = cls.__new__(cls)", 3)
    out("flags = buf[offset] << 8 | buf[offset + 1]", 3)
    out("offset += 2", 3)
    out("# Bit 0 says another flags word follows (spec 4.2.6.1); none is defined for", 3)
    out("# class basic, so a set bit beyond ours is a syntax error.", 3)
    out("if flags & 1:", 3)
    out("raise _DecodeError('basic properties', 0, 'continuation flag set')", 4)
    # Fields are tested in groups of four first: most messages carry few properties.
    for index, (bit, (name, typ)) in enumerate(zip(range(15, 0, -1), props)):
        if index % 4 == 0:
            group = sum(1 << b for b in range(bit, max(bit - 4, 0), -1))
            out(f"if flags & {group:#06x}:", 3)
        level = 4
        out(f"if flags & {1 << bit:#06x}:", level)
        if typ == "shortstr":
            out("n = buf[offset]", 5)
            out("offset += 1 + n", 5)
            out(f"self.{name} = buf[offset - n : offset].decode()", 5)
        elif typ == "table":
            out(f"self.{name}, offset = _decode_table(buf, offset)", 5)
        elif typ == "octet":
            out(f"self.{name} = buf[offset]", 5)
            out("offset += 1", 5)
        elif typ in FIXED:
            out(f"(self.{name},) = _unpack_from({'>' + FIXED[typ][0]!r}, buf, offset)", 5)
            out(f"offset += {FIXED[typ][1]}", 5)
    out("if offset != end:", 3)
    out("raise _DecodeError('basic properties', end - offset)", 4)
    out("except _MALFORMED as exc:", 2)
    out("raise _DecodeError('basic properties', 0, f'{type(exc).__name__}: {exc}') from exc", 3)
    out("return self", 2)


# The C accelerator's kinds of property values, by AMQP type.
C_KINDS = {
    "shortstr": "TX_SHORTSTR",
    "table": "TX_TABLE",
    "octet": "TX_OCTET",
    "longlong": "TX_LONGLONG",
    "timestamp": "TX_LONGLONG",
}


def generate_tables(spec: dict[str, Any]) -> str:
    """``_speedups_tables.h``: BasicProperties' fields, flag bits and kinds, in wire order."""
    basic = next(c for c in spec["classes"] if c["name"] == "basic")
    props = [(field_name(p["name"]), p["type"]) for p in basic["properties"]]
    lines = [
        "/* BasicProperties' fields for _speedups.c, in wire order.",
        " * GENERATED by tools/codegen.py from amqp-rabbitmq-0.9.1.json; do not edit. */",
        "#ifndef TXAMQP091_SPEEDUPS_TABLES_H",
        "#define TXAMQP091_SPEEDUPS_TABLES_H",
        "",
        "enum tx_kind { TX_SHORTSTR, TX_TABLE, TX_OCTET, TX_LONGLONG };",
        "",
        "struct tx_prop {",
        "    const char *name;",
        "    unsigned int flag;",
        "    enum tx_kind kind;",
        "};",
        "",
        f"#define TX_PROP_COUNT {len(props)}",
        "",
        "static const struct tx_prop TX_PROPS[TX_PROP_COUNT] = {",
    ]
    for bit, (name, typ) in zip(range(15, 0, -1), props):
        lines.append(f'    {{"{name}", {1 << bit:#06x}, {C_KINDS[typ]}}},')
    lines += ["};", "", "#endif", ""]
    return "\n".join(lines)


def render(spec_path: str) -> str:
    """The module source; deterministic, so ``--check`` needs no formatter."""
    return generate(load_spec(spec_path))


def load_spec(spec_path: str) -> dict[str, Any]:
    with open(spec_path, encoding="utf-8") as f:
        spec: dict[str, Any] = json.load(f)
    return spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=DEFAULT_SPEC, help="path to amqp-rabbitmq-0.9.1.json")
    parser.add_argument("--check", action="store_true", help="fail if spec.py is stale")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    outputs = [(TARGET, generate(spec)), (TARGET_TABLES, generate_tables(spec))]
    if args.check:
        stale = 0
        for target, source in outputs:
            try:
                with open(target, encoding="utf-8") as f:
                    current = f.read()
            except FileNotFoundError:
                current = ""
            if current != source:
                print(f"{target} is stale: run python tools/codegen.py", file=sys.stderr)
                stale = 1
            else:
                print(f"{os.path.relpath(target, ROOT)} is current")
        return stale
    for target, source in outputs:
        with open(target, "w", encoding="utf-8") as f:
            f.write(source)
        print(f"wrote {os.path.relpath(target, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
