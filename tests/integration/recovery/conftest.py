"""Fixtures of the recovery suite: the adapter under test, the proxy, the private node.

``clients`` is parametrised over the adapters, so each scenario runs once on Twisted
and once on Tornado/asyncio (see :func:`tests.integration.recovery.support.on_each_adapter`).
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

import pytest

from tests.integration.faults import BrokerNode, TcpProxy, private_node
from tests.integration.recovery.support import ADAPTERS, Clients


@pytest.fixture(params=sorted(ADAPTERS))
def clients(request: pytest.FixtureRequest) -> Clients:
    """Started clients of the adapter under test (stopped by ``on_each_adapter``)."""
    return Clients(ADAPTERS[request.param]())


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy() as p:
        yield p


@pytest.fixture(scope="module")
def private_broker() -> Iterator[BrokerNode]:
    """A private RabbitMQ node for the module's tests (opt-in: request it by name).

    Skips the test when the node cannot start within about a minute.
    """
    with contextlib.ExitStack() as stack:
        try:
            node = stack.enter_context(private_node())
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"cannot start a private RabbitMQ node: {exc}")
        yield node
