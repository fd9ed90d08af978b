"""Heartbeat bookkeeping driven by the caller's clock: no timer objects.

RabbitMQ's guide ("Detecting Dead TCP Connections with Heartbeats") says a peer
is unreachable after two missed heartbeat intervals, and recommends sending a
heartbeat frame every half interval when nothing else was sent. Any frame
counts as a sign of life in both directions (spec 4.2.7: "Any octet... may be
used as a heartbeat").
"""

from __future__ import annotations

__all__ = ["HeartbeatMonitor"]


class HeartbeatMonitor:
    """Tracks when a heartbeat must be sent and when the peer is dead.

    :param interval: the negotiated heartbeat in seconds (> 0).
    :param now: the caller's clock reading when heartbeats start.
    """

    __slots__ = ("_last_received", "_next_send_check", "_sent", "interval")

    def __init__(self, interval: float, now: float) -> None:
        self.interval = interval
        self._last_received = now
        self._next_send_check = now + interval / 2
        self._sent = False

    def received(self, now: float) -> None:
        """The peer sent something at ``now``."""
        self._last_received = now

    def sent(self) -> None:
        """We queued bytes for the peer; no heartbeat needed in this half interval."""
        self._sent = True

    def next_deadline(self) -> float:
        """When :meth:`tick` next has something to decide."""
        return min(self._next_send_check, self._last_received + 2 * self.interval)

    def tick(self, now: float) -> tuple[bool, bool]:
        """Return ``(send_heartbeat, peer_dead)`` for the time ``now``."""
        if now - self._last_received >= 2 * self.interval:
            return False, True
        send = False
        if now >= self._next_send_check:
            send = not self._sent
            self._sent = False
            self._next_send_check = now + self.interval / 2
        return send, False
