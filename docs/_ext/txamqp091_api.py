"""Sphinx glue: the adapters' methods show what their Deferred or Future fires with.

The shared client classes are generic in the adapter's waiter, so autodoc would print
``-> W``. The result types are written once, in the protocols of
``txamqp091.client.api`` (``Annotated[W_co, "spec.QueueDeclareOk"]``); this reads them
and rewrites each documented method's return annotation to ``Deferred[...]`` on
``txamqp091.twisted`` classes and ``Future[...]`` on ``txamqp091.tornado`` ones.
"""

from __future__ import annotations

import typing
from typing import Any

from sphinx.application import Sphinx

from txamqp091.client import api

ADAPTERS = {"txamqp091.twisted.": "Deferred", "txamqp091.tornado.": "Future"}
PROTOCOLS = {
    "Channel": api.ChannelAPI,
    "RecoveringChannel": api.ChannelAPI,
    "Consumer": api.ConsumerAPI,
    "RecoveringConsumer": api.ConsumerAPI,
    "Connection": api.ConnectionAPI,
}


def _results(protocol: type) -> dict[str, str]:
    """method name -> what its waiter fires with, from the protocol's annotations."""
    results: dict[str, str] = {}
    for name, member in vars(protocol).items():
        function = member.fget if isinstance(member, property) else member
        if not callable(function):
            continue
        hints = typing.get_type_hints(function, vars(api), include_extras=True)
        metadata = getattr(hints.get("return"), "__metadata__", None)
        if metadata:
            results[name] = str(metadata[0])
    return results


RESULTS = {name: _results(protocol) for name, protocol in PROTOCOLS.items()}


def _fires_with(name: str) -> str | None:
    for prefix, waiter in ADAPTERS.items():
        if not name.startswith(prefix):
            continue
        owner, _, method = name[len(prefix) :].rpartition(".")
        result = RESULTS.get(owner, {}).get(method)
        if result is None:
            return None
        if owner.startswith("Recovering") and result == "Consumer":
            result = "RecoveringConsumer"
        return f"{waiter}[{result}]"
    return None


def process_signature(
    app: Sphinx,
    what: str,
    name: str,
    obj: Any,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    fires_with = _fires_with(name)
    if fires_with is None:
        return None
    return signature, fires_with


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("autodoc-process-signature", process_signature)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
