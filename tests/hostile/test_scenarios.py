"""Every hostile scenario of :mod:`tests.hostile.scenarios`, on both adapters.

The "broker" is :class:`~tests.hostile.server.HostileServer` on a loopback
port; no RabbitMQ is involved. Run one by name with
``pytest tests/hostile -k bad_frame_end``.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.hostile.drivers import AsyncioDriver, TwistedDriver
from tests.hostile.harness import run_scenario
from tests.hostile.scenarios import SCENARIOS, Scenario

IDS = [scenario.name for scenario in SCENARIOS]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
@pytest_twisted.ensureDeferred
async def test_twisted(scenario: Scenario) -> None:
    await run_scenario(TwistedDriver(), scenario)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
@pytest.mark.asyncio
async def test_tornado(scenario: Scenario) -> None:
    await run_scenario(AsyncioDriver(), scenario)
