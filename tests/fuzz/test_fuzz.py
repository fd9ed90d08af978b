"""The short fuzz campaign the suite runs; the long one is ``tox -e fuzz``.

Everything here is deterministic (fixed seeds; hypothesis derandomized), so a
failure reproduces. The properties (see :mod:`tests.fuzz.streams`): the core
never raises out of ``receive_data``, never buffers more than ``frame_max + 8``
bytes of an incomplete frame, and reaches the same outcome wherever the
stream is cut.
"""

from __future__ import annotations

import random
import struct
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz import campaign
from tests.fuzz.streams import (
    corpus,
    mutate,
    new_connection,
    run_stream,
    split_points,
    valid_stream,
)
from txamqp091.core import spec
from txamqp091.core.events import ConnectionClosed
from txamqp091.core.testing import ServerFrames, parse_client_frames

CORPUS = corpus(16, seed=7)
SMALL = [s for s in corpus(64, seed=3) if len(s) < 700][:4]


def test_valid_streams_leave_the_connection_open_or_closed_by_the_broker() -> None:
    outcomes = Counter(run_stream(stream) for stream in corpus(64, seed=1))
    assert set(outcomes) <= {"open", "closed:ConnectionClosedByBroker"}, outcomes
    assert outcomes["open"] > 32


def test_short_campaign_raises_nothing() -> None:
    rng = random.Random(2026)
    outcomes: Counter[str] = Counter()
    for _ in range(3000):
        data = mutate(rng.choice(CORPUS), rng, CORPUS)
        outcomes[run_stream(data, split_points(len(data), rng, rng.randint(1, 5)))] += 1
    assert not [name for name in outcomes if name.startswith("RAISED")], outcomes
    # The mutations reach the framing, the decoders and the state checks alike.
    for code in ("501", "502", "540"):
        assert any(name.endswith(":" + code) for name in outcomes), outcomes


@pytest.mark.parametrize("index", range(len(SMALL)))
@pytest.mark.parametrize("mutation_seed", [None, 1, 2])
def test_every_split_point_gives_the_same_outcome(index: int, mutation_seed: int | None) -> None:
    data = SMALL[index]
    if mutation_seed is not None:
        data = mutate(data, random.Random(mutation_seed))
    whole = run_stream(data)
    assert not whole.startswith("RAISED")
    for cut in range(1, len(data)):
        assert run_stream(data, [cut]) == whole, cut


def test_byte_at_a_time_gives_the_same_outcome() -> None:
    data = valid_stream(11)
    assert run_stream(data, list(range(1, len(data)))) == run_stream(data)


@settings(max_examples=300)
@given(
    seed=st.integers(0, len(CORPUS) - 1),
    edits=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.binary(min_size=0, max_size=8)),
        min_size=1,
        max_size=4,
    ),
    cuts=st.lists(st.floats(0, 1, exclude_min=True, exclude_max=True), max_size=4),
)
def test_hypothesis_edits_never_raise(
    seed: int, edits: list[tuple[float, bytes]], cuts: list[float]
) -> None:
    """Overwrite (or, with no bytes, truncate at) chosen places of a valid stream."""
    buf = bytearray(CORPUS[seed])
    for where, data in edits:
        at = int(where * len(buf))
        if data:
            buf[at : at + len(data)] = data
        else:
            del buf[at:]
        if not buf:
            break
    stream = bytes(buf)
    points = sorted({int(c * len(stream)) for c in cuts} - {0, len(stream)})
    assert not run_stream(stream, points).startswith("RAISED")


def test_campaign_command_prints_counts_and_classes(capsys: pytest.CaptureFixture[str]) -> None:
    assert campaign.main(["--streams", "300", "--seed", "5", "--report-every", "0"]) == 0
    out = capsys.readouterr().out
    assert "300 mutated streams" in out
    assert "exceptions raised out of receive_data: 0" in out
    assert "closed:ProtocolError:501" in out


# -- what the long campaign found ----------------------------------------------------------


def test_a_protocol_error_quoting_non_ascii_peer_text_still_sends_its_close() -> None:
    """Found by the campaign (stream 773124 of seed 0): the reply text of a protocol error
    quotes the peer's bytes; cut at 255 *characters*, non-ASCII text was over 255 bytes
    and encoding the Connection.Close raised ValueError out of ``receive_data``."""
    key = "é" * 127  # a 254-byte field-table key, quoted in the error
    raw_key = key.encode()
    table = bytes([len(raw_key)]) + raw_key + b"Z"
    start = (
        struct.pack(">HHBB", 10, 10, 0, 9)
        + struct.pack(">I", len(table))
        + table
        + struct.pack(">I", 5)
        + b"PLAIN"
        + struct.pack(">I", 5)
        + b"en_US"
    )
    conn = new_connection()
    conn.data_to_send()
    (closed,) = conn.receive_data(ServerFrames.frame(spec.FRAME_METHOD, 0, start), 0.0)
    assert isinstance(closed, ConnectionClosed) and closed.reply_code == 502
    ((_, _, close),) = parse_client_frames(conn.data_to_send())
    assert isinstance(close, spec.ConnectionClose) and close.reply_code == 502
    assert len(close.reply_text.encode()) <= 255


@pytest.mark.parametrize("text", ["é" * 200, "x" * 300, "日本" * 100])
def test_close_texts_are_cut_to_255_bytes_not_characters(text: str) -> None:
    conn = new_connection()
    conn.receive_data(ServerFrames().handshake(), 0.0)
    channel = conn.open_channel()
    conn.receive_data(ServerFrames().channel_open_ok(channel.channel_id), 0.0)
    conn.data_to_send()
    channel.close(200, text)
    conn.close(200, text)
    for _, _, method in parse_client_frames(conn.data_to_send()):
        assert len(method.reply_text.encode()) <= 255
        assert text.startswith(method.reply_text)
