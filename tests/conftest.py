"""Settings shared by every test folder: hypothesis profiles and the ``broker`` marker.

Tests marked ``@pytest.mark.broker`` need the RabbitMQ named by ``AMQP_URL``
(default ``amqp://guest:guest@127.0.0.1:5672/``). When nothing listens there
they are skipped, unless ``TXAMQP091_REQUIRE_BROKER=1`` (set it in CI) turns
the skip into a failure.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, settings

# No deadline: a loaded CI machine must not turn a slow example into a failure.
settings.register_profile("default", deadline=None)
settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

_broker_reachable: bool | None = None


def broker_address() -> tuple[str, int]:
    """Host and port of the test broker, from ``AMQP_URL`` if set."""
    url = urlsplit(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    return url.hostname or "127.0.0.1", url.port or 5672


def _reachable() -> bool:
    global _broker_reachable
    if _broker_reachable is None:
        try:
            with socket.create_connection(broker_address(), timeout=2):
                _broker_reachable = True
        except OSError:
            _broker_reachable = False
    return _broker_reachable


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("broker") is None or _reachable():
        return
    host, port = broker_address()
    message = f"no AMQP broker at {host}:{port}"
    if os.environ.get("TXAMQP091_REQUIRE_BROKER") == "1":
        pytest.fail(message)
    pytest.skip(message)
