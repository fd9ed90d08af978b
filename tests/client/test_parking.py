"""Parked operations: their order, their deadline, and whom a broker's channel close blames."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from txamqp091.client.parking import ParkingLot, quoted_names
from txamqp091.exceptions import ChannelClosedByBroker, PublishTimeout
from txamqp091.twisted.runtime import DeferredRuntime


def outcome(d: Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    return results[0].value if results and hasattr(results[0], "value") else results


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lot(clock: Clock) -> ParkingLot[Deferred[Any]]:
    return ParkingLot(DeferredRuntime(clock), lambda: 5.0)


def op(name: str) -> Any:
    return lambda channel: name


def test_an_operation_coming_back_goes_before_those_issued_after_it(
    lot: ParkingLot[Deferred[Any]],
) -> None:
    seqs = [lot.next_seq() for _ in range(3)]
    for seq in (seqs[0], seqs[2]):
        lot.park(op(str(seq)), Deferred(), seq, frozenset())
    lot.park(op("back"), Deferred(), seqs[1], frozenset())
    assert [item.operation(None) for item in lot.take_all()] == ["0", "back", "2"]
    assert not lot


def test_a_parked_operation_fails_after_the_timeout(
    lot: ParkingLot[Deferred[Any]], clock: Clock
) -> None:
    waiter: Deferred[Any] = Deferred()
    lot.park(op("x"), waiter, lot.next_seq(), frozenset())
    clock.advance(4.9)
    assert not waiter.called
    clock.advance(0.2)
    assert isinstance(outcome(waiter), PublishTimeout)
    # A timed-out operation never goes out.
    assert list(lot.take_all()) == []


def test_take_all_stops_the_timers(lot: ParkingLot[Deferred[Any]], clock: Clock) -> None:
    waiter: Deferred[Any] = Deferred()
    lot.park(op("x"), waiter, lot.next_seq(), frozenset())
    assert len(list(lot.take_all())) == 1
    clock.advance(10)
    assert not waiter.called


def test_the_operation_naming_the_quoted_entity_is_blamed(
    lot: ParkingLot[Deferred[Any]], clock: Clock
) -> None:
    error = ChannelClosedByBroker(404, "NOT_FOUND - no exchange 'missing' in vhost '/'")
    innocent: Deferred[Any] = Deferred()
    culprit: Deferred[Any] = Deferred()
    lot.suspect(lot.park(op("a"), innocent, lot.next_seq(), frozenset({"here"})), error)
    lot.suspect(lot.park(op("b"), culprit, lot.next_seq(), frozenset({"missing"})), error)
    assert lot.blaming
    clock.advance(0)  # blame runs on the next loop turn
    assert outcome(culprit) is error
    assert not innocent.called
    assert [item.operation(None) for item in lot.take_all()] == ["a"]


def test_without_a_quoted_name_the_request_in_flight_is_blamed(
    lot: ParkingLot[Deferred[Any]],
) -> None:
    error = ChannelClosedByBroker(406, "PRECONDITION_FAILED - inequivalent arg 'durable'")
    first: Deferred[Any] = Deferred()
    second: Deferred[Any] = Deferred()
    lot.suspect(lot.park(op("a"), first, lot.next_seq(), frozenset({"q"})), error)
    lot.suspect(lot.park(op("b"), second, lot.next_seq(), frozenset()), error)
    lot.blame()
    assert outcome(first) is error
    assert not second.called


def test_an_unknown_delivery_tag_blames_nobody(lot: ParkingLot[Deferred[Any]]) -> None:
    error = ChannelClosedByBroker(406, "PRECONDITION_FAILED - unknown delivery tag 7")
    waiter: Deferred[Any] = Deferred()
    lot.suspect(lot.park(op("a"), waiter, lot.next_seq(), frozenset()), error)
    lot.blame()
    assert not waiter.called
    assert len(lot) == 1


def test_fail_all(lot: ParkingLot[Deferred[Any]]) -> None:
    waiters: list[Deferred[Any]] = [Deferred(), Deferred()]
    for waiter in waiters:
        lot.park(op("a"), waiter, lot.next_seq(), frozenset())
    error = RuntimeError("gone")
    lot.fail_all(error)
    assert [outcome(w) for w in waiters] == [error, error]


def test_quoted_names_leave_out_the_vhost() -> None:
    assert quoted_names("NOT_FOUND - no queue 'q' in vhost 'v'") == {"q"}
