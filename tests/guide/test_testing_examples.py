"""``docs/testing.rst``'s examples (examples/guide/testing_*.py) are tests: run them.

They use the fake broker only, so they need no RabbitMQ; a failure of theirs
fails here, the way it would in a user's suite.
"""

from __future__ import annotations

import asyncio
import unittest
from collections.abc import Awaitable, Callable

import pytest

from examples.guide import testing_asyncio, testing_twisted


def test_the_twisted_test_case_passes() -> None:
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(testing_twisted.PublishTests)
    result = unittest.TestResult()
    suite.run(result)
    assert result.testsRun == 1
    assert result.wasSuccessful(), result.failures + result.errors


ASYNC_TESTS = sorted(name for name in vars(testing_asyncio) if name.startswith("test_"))


def test_the_asyncio_module_has_its_tests() -> None:
    assert ASYNC_TESTS == [
        "test_a_client_rides_out_failing_attempts",
        "test_round_trip",
        "test_round_trip_over_a_socket",
    ]


@pytest.mark.parametrize("name", ASYNC_TESTS)
def test_the_asyncio_tests_pass(name: str) -> None:
    test: Callable[[], Awaitable[None]] = getattr(testing_asyncio, name)
    asyncio.run(asyncio.wait_for(test(), 10))
