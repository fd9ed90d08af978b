"""The connection and channel state machines, as data.

Each table maps ``(state, method INDEX received)`` to the next state. A received
method with no entry for the current state is a protocol error: the peer sent
a method the spec does not allow here (503 COMMAND_INVALID; 504 CHANNEL_ERROR
for a channel that is not open). Methods that leave the state unchanged are
listed too, so this one file says everything the client accepts from a broker.
Docs and tests read these tables.
"""

from __future__ import annotations

import enum

from . import spec

__all__ = [
    "CHANNEL_TRANSITIONS",
    "CONNECTION_TRANSITIONS",
    "ChannelState",
    "ConnectionState",
]


class ConnectionState(enum.Enum):
    #: Protocol header sent, waiting for Connection.Start.
    AWAIT_START = "await-start"
    #: Start-Ok sent; waiting for Secure or Tune (authentication happens here).
    AWAIT_TUNE = "await-tune"
    #: Tune-Ok and Open sent; waiting for Open-Ok (vhost access is checked here).
    AWAIT_OPEN_OK = "await-open-ok"
    OPEN = "open"
    #: We sent Connection.Close; only Close and Close-Ok count from now on.
    CLOSING = "closing"
    CLOSED = "closed"


class ChannelState(enum.Enum):
    #: Channel.Open sent, waiting for Open-Ok.
    OPENING = "opening"
    OPEN = "open"
    #: We sent Channel.Close; everything but Close and Close-Ok is discarded (spec 1.5.2.5).
    CLOSING = "closing"
    CLOSED = "closed"


_C = ConnectionState
CONNECTION_TRANSITIONS: dict[tuple[ConnectionState, int], ConnectionState] = {
    (_C.AWAIT_START, spec.ConnectionStart.INDEX): _C.AWAIT_TUNE,
    (_C.AWAIT_START, spec.ConnectionClose.INDEX): _C.CLOSED,
    (_C.AWAIT_TUNE, spec.ConnectionSecure.INDEX): _C.AWAIT_TUNE,
    (_C.AWAIT_TUNE, spec.ConnectionTune.INDEX): _C.AWAIT_OPEN_OK,
    (_C.AWAIT_TUNE, spec.ConnectionClose.INDEX): _C.CLOSED,
    (_C.AWAIT_OPEN_OK, spec.ConnectionOpenOk.INDEX): _C.OPEN,
    (_C.AWAIT_OPEN_OK, spec.ConnectionClose.INDEX): _C.CLOSED,
    (_C.AWAIT_OPEN_OK, spec.ConnectionBlocked.INDEX): _C.AWAIT_OPEN_OK,
    (_C.AWAIT_OPEN_OK, spec.ConnectionUnblocked.INDEX): _C.AWAIT_OPEN_OK,
    (_C.OPEN, spec.ConnectionClose.INDEX): _C.CLOSED,
    (_C.OPEN, spec.ConnectionBlocked.INDEX): _C.OPEN,
    (_C.OPEN, spec.ConnectionUnblocked.INDEX): _C.OPEN,
    (_C.OPEN, spec.ConnectionUpdateSecretOk.INDEX): _C.OPEN,
    (_C.CLOSING, spec.ConnectionClose.INDEX): _C.CLOSED,
    (_C.CLOSING, spec.ConnectionCloseOk.INDEX): _C.CLOSED,
    (_C.CLOSING, spec.ConnectionBlocked.INDEX): _C.CLOSING,
    (_C.CLOSING, spec.ConnectionUnblocked.INDEX): _C.CLOSING,
    (_C.CLOSING, spec.ConnectionUpdateSecretOk.INDEX): _C.CLOSING,
}

_H = ChannelState
#: Methods a broker may send on an open channel without changing its state.
OPEN_CHANNEL_METHODS = (
    spec.ChannelFlow,
    spec.ChannelFlowOk,
    spec.ExchangeDeclareOk,
    spec.ExchangeDeleteOk,
    spec.ExchangeBindOk,
    spec.ExchangeUnbindOk,
    spec.QueueDeclareOk,
    spec.QueueBindOk,
    spec.QueuePurgeOk,
    spec.QueueDeleteOk,
    spec.QueueUnbindOk,
    spec.BasicQosOk,
    spec.BasicConsumeOk,
    spec.BasicCancel,
    spec.BasicCancelOk,
    spec.BasicReturn,
    spec.BasicDeliver,
    spec.BasicGetOk,
    spec.BasicGetEmpty,
    spec.BasicAck,
    spec.BasicNack,
    spec.BasicRecoverOk,
    spec.TxSelectOk,
    spec.TxCommitOk,
    spec.TxRollbackOk,
    spec.ConfirmSelectOk,
)

CHANNEL_TRANSITIONS: dict[tuple[ChannelState, int], ChannelState] = {
    (_H.OPENING, spec.ChannelOpenOk.INDEX): _H.OPEN,
    (_H.OPENING, spec.ChannelClose.INDEX): _H.CLOSED,
    (_H.OPEN, spec.ChannelClose.INDEX): _H.CLOSED,
    (_H.CLOSING, spec.ChannelClose.INDEX): _H.CLOSING,
    (_H.CLOSING, spec.ChannelCloseOk.INDEX): _H.CLOSED,
    **{(_H.OPEN, m.INDEX): _H.OPEN for m in OPEN_CHANNEL_METHODS},
}
