"""The reconnect policy on its own: node rotation, backoff, give-up, and the one-shot
``connect_first`` node loop, driven by hand and by a fake clock (no sockets, no sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from txamqp091 import ConnectionParameters, PlainCredentials
from txamqp091.client.reconnect import (
    GiveUp,
    Reconnector,
    Retry,
    connect_first,
    is_refusal,
)
from txamqp091.core.connection import Connection as CoreConnection
from txamqp091.core.testing import ServerFrames
from txamqp091.exceptions import (
    AMQPConnectionError,
    AuthenticationError,
    ConnectionClosedByBroker,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    ProtocolError,
    StreamLostError,
)

REFUSED = ProbableAuthenticationError("(403) ACCESS_REFUSED - Login was refused", reply_code=403)
CUT = ProbableAuthenticationError("connection lost during authentication: reset")
DOWN = ConnectionRefusedError("connection refused")


class Policy:
    """A retry policy that remembers what it was asked: ``attempt -> attempt`` seconds."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def __call__(self, attempt: int) -> float:
        self.asked.append(attempt)
        return float(attempt)


# -- classification ------------------------------------------------------------------------


def handshake_error(*server_bytes: bytes) -> BaseException | None:
    """Run the core handshake against ``server_bytes`` and return the error it ends with."""
    core = CoreConnection(credentials=PlainCredentials("guest", "guest"))
    core.data_to_send()
    error: BaseException | None = None
    for data in server_bytes:
        for event in core.receive_data(data, now=0.0):
            error = getattr(event, "error", error)
    return error


def test_only_an_explicit_403_or_no_common_mechanism_is_a_refusal() -> None:
    frames = ServerFrames()
    refused = handshake_error(frames.start(), frames.close(403, "ACCESS_REFUSED - Login refused"))
    assert isinstance(refused, ProbableAuthenticationError) and refused.reply_code == 403
    assert is_refusal(refused)
    assert is_refusal(ProbableAccessDeniedError("(403) ACCESS_REFUSED - vhost", reply_code=403))
    assert is_refusal(AuthenticationError("the broker offers 'AMQPLAIN', not PLAIN"))

    # A cut during authentication, a vhost not (yet) up on a booting node, a node
    # shutting down: ordinary failed attempts.
    assert not is_refusal(CUT)
    assert not is_refusal(ProbableAccessDeniedError("(530) NOT_ALLOWED - vhost down", 530))
    assert not is_refusal(ConnectionClosedByBroker(320, "CONNECTION_FORCED - shutdown"))
    assert not is_refusal(StreamLostError("stream lost"))
    assert not is_refusal(DOWN)
    assert not is_refusal(ProtocolError(502, "SYNTAX_ERROR"))


# -- the Reconnector ------------------------------------------------------------------------


def test_failed_attempts_back_off_with_the_policy_counting_failures_in_a_row() -> None:
    policy = Policy()
    r = Reconnector(["a"], policy)
    assert r.next_node() == "a"
    assert [r.failed(DOWN) for _ in range(4)] == [Retry(1.0), Retry(2.0), Retry(3.0), Retry(4.0)]
    assert policy.asked == [1, 2, 3, 4]
    r.next_node()
    r.connected()
    assert r.failures == 0
    # A lost connection is failure 1 again, and the next failed attempt failure 2.
    assert r.lost() == Retry(1.0)
    assert r.failed(DOWN) == Retry(2.0)


def test_a_negative_delay_from_the_policy_means_at_once() -> None:
    r = Reconnector(["a"], lambda attempt: -5.0)
    r.next_node()
    assert r.failed(DOWN) == Retry(0.0)


def test_the_default_policy_retries_within_a_second_then_backs_off_to_30_s() -> None:
    r = Reconnector(["a"])
    r.next_node()
    delays = [r.failed(DOWN) for _ in range(30)]
    assert all(isinstance(d, Retry) for d in delays)
    seconds = [d.delay for d in delays if isinstance(d, Retry)]
    assert 0 < seconds[0] < 1.0 and seconds[6] > seconds[0]
    assert seconds[-1] >= 29.0 and max(seconds) <= 30.25


def test_nodes_rotate_and_the_next_attempt_avoids_the_node_that_just_failed() -> None:
    r = Reconnector(["a", "b", "c"], lambda attempt: 0.0)
    assert r.next_node() == "a"
    r.failed(DOWN)
    assert r.next_node() == "b"
    r.connected()
    assert r.current == "b"
    # b dies: the reconnect goes to c, then a, then back to b.
    r.lost()
    tried = []
    for _ in range(4):
        tried.append(r.next_node())
        r.failed(DOWN)
    assert tried == ["c", "a", "b", "c"]


def test_a_single_node_is_retried() -> None:
    r = Reconnector(["only"], lambda attempt: 0.0)
    r.next_node()
    r.connected()
    r.lost()
    assert r.next_node() == "only"


def test_three_refusals_in_a_row_give_up_and_a_success_resets_the_count() -> None:
    r = Reconnector(["a", "b"], lambda attempt: 0.5)
    for error in (REFUSED, DOWN, REFUSED):  # other failures between refusals do not reset
        r.next_node()
        assert r.failed(error) == Retry(0.5)
    r.next_node()
    r.connected()
    r.lost()
    r.next_node()
    assert r.failed(REFUSED) == Retry(0.5)
    r.next_node()
    assert r.failed(REFUSED) == Retry(0.5)
    r.next_node()
    decision = r.failed(REFUSED)
    assert isinstance(decision, GiveUp) and decision.error is REFUSED
    assert "3 refused logins" in decision.reason


def test_cuts_during_authentication_never_give_up() -> None:
    r = Reconnector(["a"], lambda attempt: 0.0)
    for _ in range(50):
        r.next_node()
        assert r.failed(CUT) == Retry(0.0)
    assert r.refusals == 0


def test_max_refusals_none_never_gives_up_on_refusals() -> None:
    r = Reconnector(["a"], lambda attempt: 0.0, max_refusals=None)
    for _ in range(10):
        r.next_node()
        assert isinstance(r.failed(REFUSED), Retry)


def test_max_attempts_gives_up_after_that_many_failures_in_a_row() -> None:
    r = Reconnector(["a", "b"], lambda attempt: 0.0, max_attempts=3)
    r.next_node()
    assert isinstance(r.failed(DOWN), Retry)
    r.next_node()
    assert isinstance(r.failed(DOWN), Retry)
    r.next_node()
    decision = r.failed(DOWN)
    assert isinstance(decision, GiveUp) and decision.error is DOWN
    assert "3 failed attempts" in decision.reason


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"max_refusals": 0}, "max_refusals"), ({"max_attempts": 0}, "max_attempts")],
)
def test_bad_limits_raise_value_error_naming_them(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Reconnector(["a"], **kwargs)
    with pytest.raises(ValueError, match="nodes"):
        Reconnector([])


# -- connect_first -------------------------------------------------------------------------


class FakeClock:
    """Sleeps that only record how long they were asked to sleep."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def node(host: str, **kwargs: Any) -> ConnectionParameters:
    return ConnectionParameters(host=host, **kwargs)


def scripted(
    outcomes: dict[str, list[BaseException | str]],
) -> tuple[Callable[[ConnectionParameters], Any], list[str]]:
    tried: list[str] = []

    async def connect_once(params: ConnectionParameters) -> str:
        tried.append(params.host)
        outcome = outcomes[params.host].pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return connect_once, tried


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_connect_first_tries_each_node_once_per_round_waiting_between_rounds() -> None:
    clock = FakeClock()
    nodes = [node("a", connection_attempts=2, retry_delay=3.0), node("b", connection_attempts=2)]
    connect_once, tried = scripted({"a": [DOWN, DOWN], "b": [DOWN, "conn-b"]})
    assert run(connect_first(nodes, connect_once, clock.sleep)) == "conn-b"
    assert tried == ["a", "b", "a", "b"]
    assert clock.slept == [3.0]


def test_connect_first_names_every_attempt_and_chains_the_last_error() -> None:
    clock = FakeClock()
    protocol_error = ProtocolError(502, "SYNTAX_ERROR - garbage instead of Connection.Start")
    connect_once, tried = scripted({"a": [DOWN], "b": [protocol_error]})
    with pytest.raises(AMQPConnectionError) as info:
        run(connect_first([node("a"), node("b")], connect_once, clock.sleep))
    text = str(info.value)
    assert text.startswith("could not connect") and "a:5672" in text and "b:5672" in text
    assert info.value.__cause__ is protocol_error
    assert clock.slept == []


def test_connect_first_raises_the_refusal_type_every_attempt_met() -> None:
    no_vhost = ProbableAccessDeniedError("(530) NOT_ALLOWED - vhost nope not found", 530)
    connect_once, tried = scripted({"a": [no_vhost], "b": [no_vhost]})
    with pytest.raises(ProbableAccessDeniedError) as info:
        run(connect_first([node("a"), node("b")], connect_once, FakeClock().sleep))
    assert tried == ["a", "b"]  # 530 is also a booting node's answer: every node is tried
    assert info.value.reply_code == 530 and info.value.__cause__ is no_vhost
    assert str(info.value).startswith("could not connect") and "b:5672" in str(info.value)

    mixed, _ = scripted({"a": [no_vhost], "b": [DOWN]})
    with pytest.raises(AMQPConnectionError) as info:
        run(connect_first([node("a"), node("b")], mixed, FakeClock().sleep))
    assert type(info.value) is AMQPConnectionError


def test_connect_first_raises_a_refusal_at_once() -> None:
    connect_once, tried = scripted({"a": [REFUSED], "b": ["never"]})
    with pytest.raises(ProbableAuthenticationError):
        run(connect_first([node("a"), node("b")], connect_once, FakeClock().sleep))
    assert tried == ["a"]


def test_connect_first_lets_programming_errors_through() -> None:
    connect_once, tried = scripted({"a": [TypeError("a bug")], "b": ["never"]})
    with pytest.raises(TypeError, match="a bug"):
        run(connect_first([node("a"), node("b")], connect_once, FakeClock().sleep))
    assert tried == ["a"]


def test_a_node_takes_part_in_as_many_rounds_as_its_connection_attempts() -> None:
    clock = FakeClock()
    nodes = [node("a"), node("b", connection_attempts=3, retry_delay=1.5)]
    connect_once, tried = scripted({"a": [DOWN], "b": [DOWN, DOWN, DOWN]})
    with pytest.raises(AMQPConnectionError):
        run(connect_first(nodes, connect_once, clock.sleep))
    assert tried == ["a", "b", "b", "b"]
    assert clock.slept == [1.5, 1.5]
