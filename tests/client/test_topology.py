"""Topology records: what each is filed under, what a delete forgets, what a replay sends."""

from __future__ import annotations

from typing import Any

from txamqp091.client.topology import (
    ConfirmSelect,
    ExchangeBinding,
    ExchangeDeclaration,
    Qos,
    QueueBinding,
    QueueDeclaration,
    Topology,
    TxSelect,
)


class RecordingChannel:
    """Stands in for a ChannelLogic: remembers each call a replay makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any) -> str:
            self.calls.append((name, args))
            return name

        return call


def replayed(topology: Topology) -> list[tuple[str, tuple[Any, ...]]]:
    channel = RecordingChannel()
    for entry in topology:
        entry.record.replay(channel, topology.names)  # type: ignore[arg-type]
    return channel.calls


def test_a_repeat_declaration_replaces_the_record_in_its_place() -> None:
    topology = Topology()
    topology.add(ExchangeDeclaration("x", "fanout"))
    topology.add(QueueDeclaration("q"))
    topology.add(ExchangeDeclaration("x", "topic", durable=True))
    assert topology.records() == [
        ExchangeDeclaration("x", "topic", durable=True),
        QueueDeclaration("q"),
    ]


def test_bindings_differing_only_in_arguments_are_two_records() -> None:
    topology = Topology()
    topology.add(QueueBinding("q", "x", "k", {"a": 1}))
    topology.add(QueueBinding("q", "x", "k", {"a": 2}))
    topology.add(QueueBinding("q", "x", "k", {"a": 2}))
    assert len(topology) == 2


def test_a_binding_without_routing_key_is_the_one_with_the_queue_name() -> None:
    topology = Topology()
    topology.add(QueueBinding("q", "x", None))
    topology.remove(QueueBinding("q", "x", "q"))
    assert len(topology) == 0


def test_deleting_an_exchange_forgets_its_bindings_both_ways() -> None:
    topology = Topology()
    kept = [ExchangeDeclaration("other"), QueueBinding("q", "other", "k")]
    for record in [
        ExchangeDeclaration("x"),
        kept[0],
        ExchangeBinding("x", "other"),
        ExchangeBinding("other", "x"),
        QueueBinding("q", "x", "k"),
        kept[1],
    ]:
        topology.add(record)
    topology.remove_exchange("x")
    assert topology.records() == kept


def test_deleting_a_queue_forgets_its_bindings_only() -> None:
    topology = Topology()
    for record in [QueueDeclaration("q"), QueueBinding("q", "x"), QueueBinding("p", "x")]:
        topology.add(record)
    topology.remove_queue("q")
    assert topology.records() == [QueueBinding("p", "x")]


def test_discard_leaves_a_newer_record_under_the_same_key() -> None:
    topology = Topology()
    old = topology.add(Qos(prefetch_count=1))
    new = topology.add(Qos(prefetch_count=5))
    topology.discard(old)
    assert topology.records() == [new.record]
    topology.discard(new)
    assert len(topology) == 0


def test_replay_sends_each_record_in_order_and_follows_server_named_queues() -> None:
    topology = Topology()
    topology.add(ConfirmSelect())
    topology.add(Qos(0, 10, False))
    topology.add(ExchangeDeclaration("x", "direct", True, False, False, {"alt": "y"}))
    topology.add(QueueDeclaration("amq.gen-1", False, True, True, None, server_named=True))
    topology.add(QueueBinding("amq.gen-1", "x"))
    topology.add(QueueBinding("amq.gen-1", "x", "rk"))
    topology.add(ExchangeBinding("d", "s", "k"))
    topology.add(TxSelect())
    topology.names["amq.gen-1"] = "amq.gen-2"
    assert topology.confirm_mode
    assert replayed(topology) == [
        ("confirm_delivery", ()),
        ("basic_qos", (0, 10, False)),
        ("exchange_declare", ("x", "direct", False, True, False, False, {"alt": "y"})),
        # A server-named queue asks the broker for a new name...
        ("queue_declare", ("", False, False, True, True, None)),
        # ...and its bindings use the name of the current connection.
        ("queue_bind", ("amq.gen-2", "x", "amq.gen-2", None)),
        ("queue_bind", ("amq.gen-2", "x", "rk", None)),
        ("exchange_bind", ("d", "s", "k", None)),
        ("tx_select", ()),
    ]
