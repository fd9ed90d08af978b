"""ConfirmTracker against a model of RabbitMQ's confirm numbering.

The tracker keeps plain publishes as bare waiters, mandatory ones as PendingPublish
entries, counts the latter so that an ack without any is settled in one
``resolve_all`` call, and skips tags already settled one by one when a ``multiple``
ack covers them. The model is the plainest reading of the spec: an ack or nack of
``tag`` settles ``tag`` (and, with ``multiple``, every lower number) that is still
unsettled, oldest first.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from txamqp091.client.confirms import ConfirmTracker, PendingPublish
from txamqp091.exceptions import NackError, UnroutableError

from .support import ManualRuntime, Waiter


class RecordingRuntime(ManualRuntime):
    """Records the order waiters settle in, and how: one by one or as a batch."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[Waiter] = []
        self.batches = 0

    def resolve(self, waiter: Waiter, value: Any) -> None:
        if not waiter.done:
            self.order.append(waiter)
        super().resolve(waiter, value)

    def reject(self, waiter: Waiter, error: BaseException) -> None:
        if not waiter.done:
            self.order.append(waiter)
        super().reject(waiter, error)

    def resolve_all(self, waiters: list[Waiter], value: Any) -> None:
        self.batches += 1
        super().resolve_all(waiters, value)


# One step: ("publish", mandatory) | ("ack"/"nack", tag offset, multiple) | ("return",)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.booleans()),
        st.tuples(st.sampled_from(["ack", "nack"]), st.integers(0, 12), st.booleans()),
        st.tuples(st.just("return")),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_acks_and_nacks_settle_what_the_model_says_in_order(script: list[Any]) -> None:
    runtime = RecordingRuntime()
    settled_calls: list[int] = []
    tracker: ConfirmTracker[Waiter] = ConfirmTracker(
        runtime, lambda: settled_calls.append(len(runtime.order))
    )
    waiters: dict[int, Waiter] = {}
    mandatory: set[int] = set()
    model_open: list[int] = []  # unsettled sequence numbers, ascending
    returned: set[int] = set()
    seq = 0
    for step in script:
        if step[0] == "publish":
            seq += 1
            waiter = Waiter()
            waiters[seq] = waiter
            if step[1]:
                mandatory.add(seq)
                tracker.add_mandatory(seq, PendingPublish(waiter, "", "rk", b"m", True))
            else:
                tracker.add(seq, waiter)
            model_open.append(seq)
            continue
        if step[0] == "return":
            # The oldest unsettled, unreturned mandatory publish is the one marked.
            candidates = [s for s in model_open if s in mandatory and s not in returned]
            error = UnroutableError(312, "NO_ROUTE")
            assert tracker.returned("", "rk", b"m", error) is bool(candidates)
            if candidates:
                returned.add(candidates[0])
            continue
        kind, offset, multiple = step
        if not seq:
            continue
        # offset 12 with multiple: tag 0, which names every unsettled publish (spec).
        tag = 0 if multiple and offset == 12 else max(1, seq - offset)
        if multiple:
            expected = [s for s in model_open if s <= tag or not tag]
        else:
            expected = [tag] * (tag in model_open)
        before = len(runtime.order)
        batches = runtime.batches
        calls = len(settled_calls)
        if kind == "ack":
            tracker.acked(tag, multiple)
        else:
            tracker.nacked(tag, multiple)
        assert runtime.order[before:] == [waiters[s] for s in expected]
        for s in expected:
            model_open.remove(s)
            w = waiters[s]
            if kind == "nack":
                assert isinstance(w.error, NackError)
            elif s in returned:
                assert isinstance(w.error, UnroutableError)
            else:
                assert w.done and w.error is None
        # The batch call is used exactly when no mandatory publish was pending.
        if kind == "ack" and expected:
            had_mandatory = any(s in mandatory for s in model_open + expected)
            assert runtime.batches == batches + (not had_mandatory)
        assert len(settled_calls) == calls + bool(expected)
        assert len(tracker) == len(model_open)
        assert sorted(tracker.pending) == model_open
    left = tracker.take_all()
    assert left == [waiters[s] for s in model_open]
    assert len(tracker) == 0
