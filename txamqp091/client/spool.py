"""Large writes handed to a transport a slice at a time, as it drains.

Both adapters' transports copy what they are given into their own buffer (Twisted
twice, counting the join of that buffer; asyncio before Python 3.12 once, then
again when it shrinks): a 128 MiB message would need three to four times its
size in memory while it leaves. Spooled, it needs its encoded frames and a slice
or two (issue 13: peak RSS at most 2.5 times the body).

The adapter's protocol owns one :class:`WriteSpool`: it spools a write above
``above`` bytes and every write after it while any are spooled (so order is
kept), pumps on each write and whenever the transport resumes, and marks the
spool ``full`` while the transport pushes back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["SPOOL_ABOVE", "SPOOL_SLICE", "WriteSpool"]

SPOOL_ABOVE = 4 << 20
SPOOL_SLICE = 1 << 20


class WriteSpool:
    """Bytes not yet handed to the transport, oldest first."""

    def __init__(self, above: int = SPOOL_ABOVE, piece: int = SPOOL_SLICE) -> None:
        self.above = above
        self.piece = piece
        #: The rule of :meth:`takes` as one number, kept by the methods that change the
        #: queue: a write longer than this is spooled now (``above`` while the spool is
        #: empty, -1 while anything waits in it, so every write then queues behind). The
        #: adapters' direct-send paths compare against it instead of calling takes().
        self.spools_above = above
        #: Set while the transport's buffer is full (its pause/resume callbacks).
        self.full = False
        #: A graceful close was asked while bytes were spooled: close once they are out.
        self.close_pending = False
        self._queue: deque[memoryview] = deque()

    def __bool__(self) -> bool:
        return bool(self._queue)

    def takes(self, data: bytes) -> bool:
        """Whether ``data`` must be spooled: it is large, or others wait before it."""
        return len(data) > self.spools_above

    def add(self, data: bytes) -> None:
        self._queue.append(memoryview(data))
        self.spools_above = -1

    def pump(self, write: Callable[[memoryview], None]) -> bool:
        """``write`` slices until the spool is empty or ``full``; True when empty."""
        queue = self._queue
        piece = self.piece
        while queue and not self.full:
            head = queue[0]
            if len(head) > piece:
                write(head[:piece])
                queue[0] = head[piece:]
            else:
                write(queue.popleft())
        if queue:
            return False
        self.spools_above = self.above
        return True

    def clear(self) -> None:
        self._queue.clear()
        self.spools_above = self.above
        self.close_pending = False
