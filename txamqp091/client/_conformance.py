"""mypy's proof that the shared client classes match the protocols in ``api.py``.

Kept apart from ``api.py`` so that the client classes can import ``api`` (for
:func:`~.api.documented_by`) without an import cycle; mypy checks this module like
every other, and nothing imports it at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from .api import ChannelAPI, ConnectionAPI, ConsumerAPI

W = TypeVar("W")

if TYPE_CHECKING:
    from .channel import ChannelLogic
    from .connection import ConnectionLogic
    from .consumer import ConsumerLogic
    from .recovering import SurvivingChannel

    def _conformance(
        plain: ChannelLogic[W],
        surviving: SurvivingChannel[W],
        consumer: ConsumerLogic[W],
        connection: ConnectionLogic[W],
    ) -> tuple[ChannelAPI[W], ChannelAPI[W], ConsumerAPI[W], ConnectionAPI[W]]:
        """mypy fails here when either channel (or the consumer, or the connection)
        stops matching its protocol."""
        return plain, surviving, consumer, connection
