"""Staying connected: the names the reconnecting clients build on.

The work is split by concern:

* :mod:`.topology`: what a surviving channel declared, one frozen record each;
* :mod:`.parking`: operations waiting for a channel, and who a channel error blames;
* :mod:`.recovering` and :mod:`.recovering_consumer`: the surviving channel and
  consumer;
* :mod:`.session`: the session that moves them from connection to connection.
"""

from __future__ import annotations

from .parking import Parked, ParkingLot
from .recovering import SurvivingChannel
from .recovering_consumer import SurvivingConsumer
from .session import RecoverySession
from .topology import (
    ConfirmSelect,
    ExchangeBinding,
    ExchangeDeclaration,
    Qos,
    QueueBinding,
    QueueDeclaration,
    Record,
    Topology,
    TxSelect,
)

__all__ = [
    "ConfirmSelect",
    "ExchangeBinding",
    "ExchangeDeclaration",
    "Parked",
    "ParkingLot",
    "Qos",
    "QueueBinding",
    "QueueDeclaration",
    "Record",
    "RecoverySession",
    "SurvivingChannel",
    "SurvivingConsumer",
    "Topology",
    "TxSelect",
]
