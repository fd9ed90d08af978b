"""Every hostile scenario of :mod:`tests.hostile.scenarios`, on both adapters.

The "broker" is :class:`~tests.hostile.server.HostileServer` on a loopback
port; no RabbitMQ is involved. Run one by name with
``pytest tests/hostile -k bad_frame_end``.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.hostile.drivers import AsyncioDriver, TwistedDriver
from tests.hostile.harness import Driver, Outcome, cause_chain, run_scenario
from tests.hostile.scenarios import SCENARIOS, Scenario

IDS = [scenario.name for scenario in SCENARIOS]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
@pytest_twisted.ensureDeferred
async def test_twisted(scenario: Scenario) -> None:
    report(TwistedDriver(), scenario, await run_scenario(TwistedDriver(), scenario))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=IDS)
@pytest.mark.asyncio
async def test_tornado(scenario: Scenario) -> None:
    report(AsyncioDriver(), scenario, await run_scenario(AsyncioDriver(), scenario))


def report(driver: Driver, scenario: Scenario, outcome: Outcome) -> None:
    """One line per scenario (``-s`` shows them): the error, how fast, the Close sent."""
    chain = " <- ".join(type(e).__name__ for e in cause_chain(outcome.error))
    assert outcome.elapsed is not None
    print(
        f"\n{driver.name:8} {scenario.name:32} {outcome.elapsed * 1000:7.1f} ms  "
        f"Close {outcome.close_codes or '-'}  {chain}"
    )


def test_the_command_line_lists_the_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.hostile.__main__ import main

    assert main(["--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == IDS
