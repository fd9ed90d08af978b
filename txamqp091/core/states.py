"""The connection and channel state machines, as data.

Two kinds of table, one pair for each machine:

* What the broker sends: ``(state, method INDEX received)`` to the next state. A
  received method with no entry for the current state is a protocol error: the
  peer sent a method the spec does not allow here (503 COMMAND_INVALID; 504
  CHANNEL_ERROR for a channel that is not open). Methods that leave the state
  unchanged are listed too, so this one file says everything the client accepts
  from a broker.
* What the client starts itself (open a channel, send, publish, close):
  ``(state, input)`` to ``(action, next state)``, in the style of h2's stream state
  machine. A missing key is the caller's error, not the peer's:
  :class:`~txamqp091.exceptions.ChannelWrongStateError` or
  :class:`~txamqp091.exceptions.ConnectionWrongStateError`, and nothing is sent.

Docs and tests read these tables (``tests/core/test_states.py`` walks every key).
"""

from __future__ import annotations

import enum

from . import spec

__all__ = [
    "CHANNEL_CLIENT_TRANSITIONS",
    "CHANNEL_TRANSITIONS",
    "CONNECTION_CLIENT_TRANSITIONS",
    "CONNECTION_TRANSITIONS",
    "Action",
    "ChannelInput",
    "ChannelState",
    "ConnectionInput",
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
    #: Closed, or not opened yet: a channel starts here and Channel.Open leaves it.
    CLOSED = "closed"


class ConnectionInput(enum.Enum):
    """What the client asks of a connection (what the broker sends is a method INDEX)."""

    #: ``Connection.open_channel()``: a new channel on the lowest free number.
    OPEN_CHANNEL = "open a channel"
    #: ``Connection.update_secret()``: Connection.Update-Secret.
    UPDATE_SECRET = "update the secret"
    #: ``Connection.close()``: Connection.Close.
    CLOSE = "close"


class ChannelInput(enum.Enum):
    """What the client asks of a channel (what the broker sends is a method INDEX)."""

    #: Channel.Open on a free channel number, a new one or one a close released
    #: (AMQP has no reopen of its own: the client opens the number again).
    OPEN = "open"
    #: ``Channel.send_method()``: any method but Basic.Publish and Channel.Close.
    SEND = "send"
    #: ``Channel.publish()``: Basic.Publish with its content.
    PUBLISH = "publish"
    #: ``Channel.close()``: Channel.Close.
    CLOSE = "close"


class Action(enum.Enum):
    """What the core does for a client input, besides moving to the next state."""

    #: Write the frames now, or behind a request still waiting (see :mod:`.channel`, rule 1).
    SEND = "send"
    #: Keep the frames until the channel is open, then send them in call order.
    HOLD = "hold"
    #: Write Close at once; requests still waiting their turn are dropped, since the
    #: broker discards everything after Close but Close and Close-Ok (spec 1.5.2.5).
    SEND_CLOSE = "send close"
    #: Take the lowest free channel number and send Channel.Open on it.
    ALLOCATE_CHANNEL = "allocate a channel"


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

_CI = ConnectionInput
CONNECTION_CLIENT_TRANSITIONS: dict[
    tuple[ConnectionState, ConnectionInput], tuple[Action, ConnectionState]
] = {
    (_C.OPEN, _CI.OPEN_CHANNEL): (Action.ALLOCATE_CHANNEL, _C.OPEN),
    (_C.OPEN, _CI.UPDATE_SECRET): (Action.SEND, _C.OPEN),
    # A close during the handshake is sent too: the broker answers Close-Ok (or drops us).
    (_C.AWAIT_START, _CI.CLOSE): (Action.SEND_CLOSE, _C.CLOSING),
    (_C.AWAIT_TUNE, _CI.CLOSE): (Action.SEND_CLOSE, _C.CLOSING),
    (_C.AWAIT_OPEN_OK, _CI.CLOSE): (Action.SEND_CLOSE, _C.CLOSING),
    (_C.OPEN, _CI.CLOSE): (Action.SEND_CLOSE, _C.CLOSING),
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

_HI = ChannelInput
#: Besides this table, every input needs the connection open: nothing may
#: follow Connection.Close (spec 1.4.2.5), so a channel of a closing or closed
#: connection refuses them all with ChannelWrongStateError.
CHANNEL_CLIENT_TRANSITIONS: dict[tuple[ChannelState, ChannelInput], tuple[Action, ChannelState]] = {
    (_H.CLOSED, _HI.OPEN): (Action.SEND, _H.OPENING),
    # Requests queue behind Channel.Open (it is the request in flight); methods that
    # expect no reply pass it (rule 1 of .channel).
    (_H.OPENING, _HI.SEND): (Action.SEND, _H.OPENING),
    (_H.OPEN, _HI.SEND): (Action.SEND, _H.OPEN),
    # Publishes are held until Open-Ok, then sent in call order with what waited.
    (_H.OPENING, _HI.PUBLISH): (Action.HOLD, _H.OPENING),
    (_H.OPEN, _HI.PUBLISH): (Action.SEND, _H.OPEN),
    (_H.OPENING, _HI.CLOSE): (Action.SEND_CLOSE, _H.CLOSING),
    (_H.OPEN, _HI.CLOSE): (Action.SEND_CLOSE, _H.CLOSING),
}
