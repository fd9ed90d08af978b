"""The fake broker without any client library or event loop: bytes in, bytes out.

These drive :class:`txamqp091.testing.BrokerConnection` with hand-made client
frames and read its answers with :func:`~txamqp091.core.testing.parse_client_frames`'s
twin for server frames (the core's own client parser), so they hold for whatever shim
carries the bytes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from txamqp091.core import spec
from txamqp091.core.frames import encode_method_frame
from txamqp091.core.testing import ServerFrames, parse_client_frames
from txamqp091.testing import FAULTS, BrokerConnection, FakeBroker

START_OK = spec.ConnectionStartOk(
    client_properties={}, mechanism="PLAIN", response=b"\x00guest\x00guest", locale="en_US"
)


def methods_in(data: bytes) -> list[tuple[int, spec.Method]]:
    """The (channel, method) of every method frame in what the broker wrote (frames
    read the same both ways, so the client-frame parser reads them)."""
    return [
        (frame.channel_id, frame.payload)
        for frame in parse_client_frames(data)
        if isinstance(frame.payload, spec.Method)
    ]


def names(data: bytes) -> list[str]:
    return [method.NAME for _, method in methods_in(data)]


class Recorder:
    """Counts the connection's ``on_output`` wake-ups and runs its ``call_later`` by hand."""

    def __init__(self, conn: BrokerConnection) -> None:
        self.wakeups = 0
        self.timers: list[tuple[float, Callable[[], None]]] = []
        conn.on_output = self.wake
        conn.call_later = self.call_later

    def wake(self) -> None:
        self.wakeups += 1

    def call_later(self, delay: float, fn: Callable[[], None]) -> Recorder:
        self.timers.append((delay, fn))
        return self

    def cancel(self) -> None:
        self.timers.clear()


def handshake(
    broker: FakeBroker, heartbeat: int = 0, conn: BrokerConnection | None = None
) -> BrokerConnection:
    """A connection through Start, Tune and Open (``conn``: one made already)."""
    conn = conn if conn is not None else broker.connect()
    conn.connection_made()
    conn.receive_data(spec.PROTOCOL_HEADER)
    conn.receive_data(encode_method_frame(0, START_OK))
    tune_ok = spec.ConnectionTuneOk(channel_max=0, frame_max=0, heartbeat=heartbeat)
    conn.receive_data(encode_method_frame(0, tune_ok))
    conn.receive_data(encode_method_frame(0, spec.ConnectionOpen(virtual_host="/")))
    assert names(conn.data_to_send()) == [
        "connection.start",
        "connection.tune",
        "connection.open-ok",
    ]
    return conn


def test_the_handshake_and_a_channel_bytes_in_bytes_out() -> None:
    broker = FakeBroker()
    conn = handshake(broker)
    assert conn.is_open and broker.connections == [conn] and broker.current is conn
    conn.receive_data(encode_method_frame(1, spec.ChannelOpen()))
    conn.receive_data(encode_method_frame(1, spec.QueueDeclare(queue="q")))
    ((channel, ok), (_, declare_ok)) = methods_in(conn.data_to_send())
    assert channel == 1 and isinstance(ok, spec.ChannelOpenOk)
    assert isinstance(declare_ok, spec.QueueDeclareOk) and declare_ok.queue == "q"
    assert conn.method_names() == ["channel.open", "queue.declare"]


def test_output_wakes_the_shim_and_a_close_asks_it_to_close_the_transport() -> None:
    broker = FakeBroker()
    conn = broker.connect()
    recorder = Recorder(conn)
    handshake(broker, conn=conn)
    assert recorder.wakeups == 3 and not conn.close_requested
    conn.receive_data(encode_method_frame(0, spec.ConnectionClose(reply_code=200)))
    assert recorder.wakeups == 5  # the Close-Ok, then the close
    assert conn.close_requested and not conn.abort_requested
    assert names(conn.data_to_send())[-1] == "connection.close-ok"
    conn.connection_lost()
    assert conn.state == "lost" and broker.connections == []


def test_a_wrong_protocol_header_is_answered_with_ours_then_closed() -> None:
    conn = FakeBroker().connect()
    conn.connection_made()
    conn.receive_data(b"AMQP\x00\x00\x08\x00")
    assert conn.data_to_send() == spec.PROTOCOL_HEADER and conn.close_requested


def test_a_frame_larger_than_frame_max_is_a_frame_error() -> None:
    broker = FakeBroker(frame_max=4096)
    conn = handshake(broker)
    conn.receive_data(ServerFrames.frame(spec.FRAME_METHOD, 1, b"\x00" * 5000))
    ((_, close),) = methods_in(conn.data_to_send())
    assert isinstance(close, spec.ConnectionClose) and close.reply_code == spec.FRAME_ERROR


def test_content_without_a_publish_is_an_unexpected_frame() -> None:
    conn = handshake(FakeBroker())
    conn.receive_data(encode_method_frame(1, spec.ChannelOpen()))
    conn.data_to_send()
    conn.receive_data(ServerFrames.frame(spec.FRAME_BODY, 1, b"stray"))
    ((_, close),) = methods_in(conn.data_to_send())
    assert isinstance(close, spec.ConnectionClose) and close.reply_code == spec.UNEXPECTED_FRAME


def test_publishes_are_recorded_and_routed() -> None:
    broker = FakeBroker()
    broker.declare_queue("q")
    conn = handshake(broker)
    conn.receive_data(encode_method_frame(1, spec.ChannelOpen()))
    frames = ServerFrames()
    publish = encode_method_frame(1, spec.BasicPublish(exchange="", routing_key="q"))
    conn.receive_data(
        publish + frames.header(1, 5) + frames.body(1, b"he") + frames.body(1, b"llo")
    )
    assert conn.published == [(1, "", "q", b"hello")]
    assert broker.bodies("q") == [b"hello"]


@pytest.mark.parametrize("fault", FAULTS)
def test_scripted_faults(fault: str) -> None:
    broker = FakeBroker()
    broker.script(fault)
    conn = broker.connect()
    conn.connection_made()
    assert conn.fault == fault and broker.accepted == 1
    conn.receive_data(spec.PROTOCOL_HEADER)
    conn.receive_data(encode_method_frame(0, START_OK))
    if fault in ("blocked", "booting"):  # faults of Connection.Open
        tune_ok = spec.ConnectionTuneOk(channel_max=0, frame_max=0, heartbeat=0)
        conn.receive_data(encode_method_frame(0, tune_ok))
        conn.receive_data(encode_method_frame(0, spec.ConnectionOpen(virtual_host="/")))
    written = conn.data_to_send()
    sent = [method for _, method in methods_in(written)]
    if fault == "drop":
        assert conn.abort_requested and written == b""
    elif fault == "silent":
        assert written == b"" and not conn.close_requested and not conn.abort_requested
    elif fault == "blocked":
        assert [m.NAME for m in sent] == [
            "connection.start",
            "connection.tune",
            "connection.blocked",
        ]
        assert not conn.is_open
    else:
        codes = {"refuse-login": spec.ACCESS_REFUSED, "maintenance": 320, "booting": 530}
        assert isinstance(sent[0], spec.ConnectionStart)
        close = sent[-1]
        assert isinstance(close, spec.ConnectionClose) and close.reply_code == codes[fault]
    # The script is used up: the next connection serves.
    assert handshake(broker).fault is None and broker.accepted == 2


def test_script_names_the_faults_it_knows() -> None:
    broker = FakeBroker()
    broker.script(None, "drop", default="silent")
    assert [broker.attach(broker.connect()) for _ in range(4)] == [None, "drop", "silent", "silent"]
    with pytest.raises(ValueError, match="fault"):
        broker.script("explode")


def test_heartbeats_run_on_the_shims_timer() -> None:
    broker = FakeBroker(heartbeat=10)
    conn = broker.connect()
    recorder = Recorder(conn)
    handshake(broker, heartbeat=10, conn=conn)
    ((delay, beat),) = recorder.timers
    assert delay == 5.0
    recorder.timers.clear()
    beat()
    assert conn.data_to_send() == ServerFrames().heartbeat() and len(recorder.timers) == 1
    conn.connection_lost()
    assert recorder.timers == []  # cancelled


def test_losing_the_connection_deletes_its_exclusive_queues_and_requeues() -> None:
    broker = FakeBroker()
    broker.declare_queue("shared")
    broker.publish("", "shared", b"m")
    conn = handshake(broker)
    conn.receive_data(encode_method_frame(1, spec.ChannelOpen()))
    conn.receive_data(encode_method_frame(1, spec.QueueDeclare(queue="mine", exclusive=True)))
    conn.receive_data(encode_method_frame(1, spec.BasicGet(queue="shared")))
    assert "mine" in broker.queues and broker.bodies("shared") == []
    conn.connection_lost()
    assert "mine" not in broker.queues
    assert [(m.body, m.redelivered) for m in broker.messages("shared")] == [(b"m", True)]
    with pytest.raises(LookupError):
        broker.current  # noqa: B018
