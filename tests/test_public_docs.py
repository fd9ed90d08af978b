"""Every public name users call has a docstring: the API reference is built from them.

The channel, consumer and connection methods take theirs from the contract in
``txamqp091.client.api`` (``documented_by``); this checks that nothing public is
left without one, on the classes under their public import paths.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

#: Module -> the public classes whose public members are all documented.
PUBLIC = {
    "txamqp091": [
        "ConnectionParameters",
        "URLParameters",
        "PlainCredentials",
        "ExternalCredentials",
        "Message",
    ],
    "txamqp091.twisted": [
        "Connection",
        "Channel",
        "Consumer",
        "AMQPClientService",
        "RecoveringChannel",
        "RecoveringConsumer",
    ],
    "txamqp091.tornado": [
        "Connection",
        "Channel",
        "Consumer",
        "AMQPClient",
        "RecoveringChannel",
        "RecoveringConsumer",
    ],
}

#: Transport-facing methods (called by the protocol, not by users) need no reference text.
TRANSPORT_SIDE = {"connection_made", "connection_lost", "data_received", "resume_writing"}


def public_members(cls: type) -> list[tuple[str, object]]:
    members = []
    for name in dir(cls):
        if name.startswith("_") or name in TRANSPORT_SIDE:
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not owner.__module__.startswith("txamqp091"):
            continue  # inherited from Twisted, the stdlib, typing...
        member = vars(owner)[name]
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property) or inspect.isfunction(member):
            members.append((name, member))
    return members


@pytest.mark.parametrize(
    ("module", "name"), [(module, name) for module, names in PUBLIC.items() for name in names]
)
def test_public_class_and_its_members_are_documented(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    assert inspect.getdoc(cls), f"{module}.{name} has no docstring"
    undocumented = [n for n, member in public_members(cls) if not inspect.getdoc(member)]
    assert not undocumented, f"{module}.{name}: no docstring on {undocumented}"


@pytest.mark.parametrize("module", ["txamqp091.twisted", "txamqp091.tornado"])
def test_every_public_function_of_the_adapters_is_documented(module: str) -> None:
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert inspect.getdoc(getattr(mod, name)), f"{module}.{name} has no docstring"
