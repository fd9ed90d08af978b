"""The surviving channel runs ChannelLogic's own methods; its signatures cannot drift
from them (names, order, defaults), so code moves between the two unchanged."""

from __future__ import annotations

import inspect
import types
from typing import Any

import pytest

from txamqp091.client.channel import ChannelLogic
from txamqp091.client.recovering import SurvivingChannel

#: ChannelLogic's own members and those of the layers it is built from (channel_base,
#: declaring), not those of Generic or object.
OWN = {
    name: value
    for klass in reversed(ChannelLogic.__mro__)
    if klass.__module__.startswith("txamqp091.")
    for name, value in vars(klass).items()
}


def _method(value: Any) -> bool:
    """A method: a Python function, or one of the C accelerator's (basic_publish)."""
    return inspect.isfunction(value) or isinstance(value, types.MethodDescriptorType)


PUBLIC = sorted(name for name, value in OWN.items() if not name.startswith("_") and _method(value))


def test_the_list_is_the_api() -> None:
    assert {"basic_consume", "basic_publish", "queue_declare", "close", "flow"} <= set(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_same_parameters_and_defaults(name: str) -> None:
    plain = inspect.signature(getattr(ChannelLogic, name))
    surviving = inspect.signature(getattr(SurvivingChannel, name))

    # Annotations are strings spelled per module; mypy compares the types (client/api.py).
    # ``self`` is positional-only in a C method's signature: the parameters after it.
    def shape(sig: inspect.Signature) -> list[tuple[str, object, object]]:
        return [(p.name, p.kind, p.default) for p in list(sig.parameters.values())[1:]]

    assert shape(surviving) == shape(plain)


def test_every_public_operation_is_in_the_typed_protocol() -> None:
    """What client/api.py's ChannelAPI lists is what tools/typedapi.py types for users:
    a new ChannelLogic method must be added there too (or named here, with why)."""
    from txamqp091.client import api

    # add_on_close_callback's callback takes the concrete channel; is_closed is
    # ChannelLogic's own (the surviving channel never is, until closed for good).
    untyped = {"add_on_close_callback", "is_closed"}
    public = {
        name
        for name, value in OWN.items()
        if not name.startswith("_") and (_method(value) or isinstance(value, property))
    }
    listed = {name for name in vars(api.ChannelAPI) if not name.startswith("_")}
    assert public - untyped == listed
