"""Which Deferred the Twisted runtime hands out, by Twisted version.

LeanDeferred relies on Deferred internals that Twisted 25.5 and later have; the package
supports Twisted 23.10 and later. On an older Twisted the runtime must fall back to the
plain Deferred (CI's oldest-versions step runs this), and on 25.5 and later the lean
path must be found: if a new Twisted release changes those internals, this fails, so
that the loss of the fast path is seen rather than silently paid for.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

import twisted
from txamqp091.twisted._deferred import FAST_RESUMPTION, LEAN_FIRING, LeanDeferred, waiter_class
from txamqp091.twisted.runtime import DeferredRuntime


def _twisted_version() -> tuple[int, int]:
    major, minor = twisted.__version__.split(".")[:2]
    return int(major), int(minor)


def test_the_lean_path_is_found_exactly_where_twisted_has_its_internals() -> None:
    assert LEAN_FIRING == (_twisted_version() >= (25, 5))


def test_where_the_lean_path_is_found_so_is_the_fast_resumption() -> None:
    """Both read the internals of Twisted 25.5 and later: a release that changes what
    _resume_coroutine relies on (the cancellation status' fields, _DefGen_Return) is
    seen here, not paid for silently."""
    if LEAN_FIRING:
        assert FAST_RESUMPTION


def test_the_runtime_hands_out_the_deferred_this_twisted_supports() -> None:
    runtime = DeferredRuntime(Clock())
    want = LeanDeferred if LEAN_FIRING else Deferred
    assert waiter_class() is want
    assert type(runtime.create_waiter()) is want
    fired = runtime.succeeded(None)
    seen: list[object] = []
    fired.addCallback(seen.append)
    assert seen == [None]


def test_a_lean_deferred_made_on_any_twisted_fires_its_callback() -> None:
    d = LeanDeferred()
    seen: list[object] = []
    d.addCallback(seen.append)
    d.callback("x")
    assert seen == ["x"] and d.called
