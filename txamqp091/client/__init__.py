"""The per-method client logic both adapters share.

Which frame each operation sends, which reply completes it, what a publish in
confirm mode waits for, how consumers buffer: all of it lives here once. An
adapter supplies a :class:`~.runtime.Runtime`: how to make and settle a waiter
(a Deferred or a Future), how to schedule a timer and how to write bytes.
Nothing here imports twisted, tornado or asyncio.
"""

from __future__ import annotations
