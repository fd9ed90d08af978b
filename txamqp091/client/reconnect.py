"""One reconnect policy for both adapters: which node next, how long to wait, when to stop.

:class:`Reconnector` is a state machine without timers or sockets. An adapter
asks it for the node to try, tells it how the attempt ended, and is told what
to do next: wait so many seconds (:class:`Retry`) or stop (:class:`GiveUp`).
It rotates through the cluster nodes so that the attempt after a failure
goes to another node than the one that just failed, backs off with the
retry policy (attempt -> seconds, jitter included), and gives up only on
what retrying will not fix: an explicit login refusal (403 ACCESS_REFUSED)
``max_refusals`` times in a row, or ``max_attempts`` failed attempts in a row
when a limit was asked for. Everything else that ends an attempt (a refused
or cut TCP connection, a node booting, in maintenance mode or blocking us
during the handshake, a handshake past ``stack_timeout``) is an ordinary
failed attempt.

:func:`connect_first` is the one-shot ``connect()`` node loop both adapters
run: each node once per round, ``connection_attempts`` rounds, ``retry_delay``
between rounds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..exceptions import (
    AMQPConnectionError,
    AuthenticationError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)
from ..params import ConnectionParameters
from ..retry import RetryPolicy, backoff_policy

__all__ = [
    "CONNECT_ERRORS",
    "GiveUp",
    "Reconnector",
    "Retry",
    "connect_first",
    "describe",
    "is_refusal",
]

N = TypeVar("N")
C = TypeVar("C")

#: What ends one connection attempt without being a bug: the network, TLS, the broker
#: (both adapters turn their framework's own connect errors into ``AMQPConnectionError``).
#: Anything else (a ``TypeError``, an ``AttributeError``) is a programming error and is
#: never retried.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (OSError, AMQPConnectionError)

#: The reply code of an explicit login refusal.
ACCESS_REFUSED = 403


def is_refusal(error: BaseException | None) -> bool:
    """Whether ``error`` is the broker saying no to our credentials, which retrying
    will not change: Connection.Close 403 ACCESS_REFUSED during the handshake, or no
    authentication mechanism in common.

    A connection cut during authentication, a 530 (a vhost still starting on a
    booting node) or a 320 (a node shutting down) are not refusals: ordinary failed
    attempts, retried like any other.
    """
    if isinstance(error, AuthenticationError):
        return True
    if isinstance(error, (ProbableAuthenticationError, ProbableAccessDeniedError)):
        return getattr(error, "reply_code", 0) == ACCESS_REFUSED
    return False


def describe(params: ConnectionParameters) -> str:
    """``host:port`` of a node, for log lines and errors."""
    return f"{params.host}:{params.port}"


@dataclass(frozen=True)
class Retry:
    """Wait ``delay`` seconds, then try :meth:`Reconnector.next_node`."""

    delay: float


@dataclass(frozen=True)
class GiveUp:
    """Stop trying: ``error`` is why (the last refusal or failure)."""

    error: BaseException
    reason: str


class Reconnector(Generic[N]):
    """Node rotation, backoff and give-up for one long-running client.

    :param nodes: the cluster nodes, in order of preference for the first attempt.
    :param retry_policy: ``attempt -> seconds``; ``attempt`` counts the failures in a
        row (a lost connection is the first). The default retries within a second and
        backs off to 30 s, with jitter.
    :param max_refusals: explicit login refusals in a row before giving up
        (``None``: never).
    :param max_attempts: failed attempts in a row before giving up (``None``: never).
    """

    def __init__(
        self,
        nodes: Sequence[N],
        retry_policy: RetryPolicy | None = None,
        *,
        max_refusals: int | None = 3,
        max_attempts: int | None = None,
    ) -> None:
        if not nodes:
            raise ValueError("nodes: at least one node is needed")
        if max_refusals is not None and max_refusals < 1:
            raise ValueError(f"max_refusals must be at least 1 or None, got {max_refusals!r}")
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1 or None, got {max_attempts!r}")
        self.nodes = list(nodes)
        self.retry_policy = retry_policy or backoff_policy()
        self.max_refusals = max_refusals
        self.max_attempts = max_attempts
        #: Failed attempts since the last success; a lost connection counts as one.
        self.failures = 0
        #: Explicit login refusals since the last success.
        self.refusals = 0
        self._next = 0
        self._current = 0

    @property
    def current(self) -> N:
        """The node of the attempt in progress (or of the open connection)."""
        return self.nodes[self._current]

    def next_node(self) -> N:
        """The node to try now: the one after the node that last failed or was lost."""
        self._current = self._next % len(self.nodes)
        return self.nodes[self._current]

    def connected(self) -> None:
        """The attempt succeeded: the counts start over."""
        self.failures = 0
        self.refusals = 0
        self._next = self._current

    def failed(self, error: BaseException) -> Retry | GiveUp:
        """The attempt at :attr:`current` failed with ``error``: wait, or give up."""
        self.failures += 1
        self._next = self._current + 1
        if is_refusal(error):
            self.refusals += 1
            if self.max_refusals is not None and self.refusals >= self.max_refusals:
                return GiveUp(error, f"{self.refusals} refused logins in a row")
        if self.max_attempts is not None and self.failures >= self.max_attempts:
            return GiveUp(error, f"{self.failures} failed attempts in a row")
        return Retry(self._delay())

    def lost(self) -> Retry:
        """The open connection ended: try another node after the first backoff delay."""
        self.failures = 1
        self._next = self._current + 1
        return Retry(self._delay())

    def _delay(self) -> float:
        return max(0.0, float(self.retry_policy(self.failures)))


async def connect_first(
    nodes: Sequence[ConnectionParameters],
    connect_once: Callable[[ConnectionParameters], Awaitable[C]],
    sleep: Callable[[float], Awaitable[object]],
) -> C:
    """The first connection any node gives: each node once per round, as many rounds as
    the most ``connection_attempts`` any node asks for (a node takes part in as many
    rounds as its own ``connection_attempts``), waiting the next node's
    ``retry_delay`` between rounds.

    An explicit refusal is raised at once (another attempt will not fix it). When every
    attempt fails, one ``AMQPConnectionError`` names them all, its ``__cause__`` the
    last attempt's error (a ``ProtocolError`` for malformed input, for example); when
    every attempt ended in the same handshake refusal (``ProbableAccessDeniedError``
    for a missing virtual host), the error raised is of that type.
    Errors outside :data:`CONNECT_ERRORS` are bugs and propagate unchanged.
    """
    if not nodes:
        raise ValueError("nodes: at least one node is needed")
    rounds = max(params.connection_attempts for params in nodes)
    errors: list[str] = []
    kinds: set[type[BaseException]] = set()
    last: BaseException | None = None
    for round_ in range(rounds):
        waited = round_ == 0
        for params in nodes:
            if round_ >= params.connection_attempts:
                continue
            if not waited:
                waited = True
                if params.retry_delay:
                    await sleep(params.retry_delay)
            try:
                return await connect_once(params)
            except CONNECT_ERRORS as exc:
                if is_refusal(exc):
                    raise
                errors.append(f"{describe(params)}: {exc}")
                kinds.add(type(exc))
                last = exc
    text = "could not connect: " + "; ".join(errors)
    if isinstance(last, (ProbableAuthenticationError, ProbableAccessDeniedError)) and kinds == {
        type(last)
    }:
        # Every attempt was turned away the same way (a virtual host that does not exist,
        # say): raise that type, so ``except ProbableAccessDeniedError`` catches it as
        # it does with pika.
        raise type(last)(text, reply_code=last.reply_code) from last
    raise AMQPConnectionError(text) from last
