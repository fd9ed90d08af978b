"""A three-node RabbitMQ cluster of the tests' own, on this machine.

:func:`running_cluster` starts three private nodes (see
:class:`tests.integration.faults.BrokerNode`: own node names, AMQP and
distribution ports, data and log directories in one temporary folder owned by
the ``rabbitmq`` user, the system Erlang cookie), joins the second and third to
the first (``stop_app``, ``join_cluster``, ``start_app``), waits for
``cluster_status`` to list three running nodes, and stops them all on exit.
The shared broker on 5672 is never touched.

A :class:`Cluster` then offers the faults and the look-ups the failover tests
need: stop a node's application or kill its VM, start it again (and wait for it
to be back in the cluster), put it in maintenance mode and out again, which
node holds a connection (by its ``connection_name``), and which node leads a
quorum queue.

Everything here blocks (``rabbitmqctl`` takes a second or more to start): call it
through ``deferToThread`` or ``asyncio.to_thread`` from a running event loop.
Runs that start private nodes take ``/tmp/txamqp091-private-node.lock`` (``flock``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.integration.faults import BrokerNode, _erlang_binary, new_node, rabbitmqctl

__all__ = ["Cluster", "running_cluster"]

#: Appended to each node's rabbitmq.conf (quorum queues and streams need nothing more).
_CONFIG = ""


class Cluster:
    """Three clustered :class:`BrokerNode` s and the faults a test applies to them."""

    def __init__(self, nodes: list[BrokerNode]) -> None:
        self.nodes = nodes
        #: Seconds from the first ``rabbitmq-server`` to three running nodes.
        self.formation_seconds = 0.0

    def __repr__(self) -> str:
        return f"<Cluster {', '.join(n.name for n in self.nodes)}>"

    def urls(self, query: str = "", first: BrokerNode | None = None) -> list[str]:
        """Every node's URL, starting with ``first`` (then the others in cluster order)."""
        start = self.nodes.index(first) if first is not None else 0
        order = self.nodes[start:] + self.nodes[:start]
        return [node.url(query) for node in order]

    def node(self, name: str) -> BrokerNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def others(self, *nodes: BrokerNode) -> list[BrokerNode]:
        return [n for n in self.nodes if n not in nodes]

    def up(self) -> list[BrokerNode]:
        """The nodes whose VM runs (from their pid files; no CLI call)."""
        return [n for n in self.nodes if n.os_pid() is not None]

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """``rabbitmqctl`` on the first node whose VM runs; its standard output."""
        for node in self.up():
            result = rabbitmqctl(*args, node=node.name, timeout=timeout, check=False)
            if result.returncode == 0:
                return result.stdout
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: no running node answered")

    # -- membership ------------------------------------------------------------------------

    def running_nodes(self, via: BrokerNode | None = None) -> set[str]:
        """The running members ``cluster_status`` lists (asked of ``via``, else any node up)."""
        args = ("cluster_status", "--formatter", "json")
        if via is not None:
            out = rabbitmqctl(*args, node=via.name).stdout
        else:
            out = self.ctl(*args)
        status = json.loads(out[out.index("{") :])
        return set(status.get("running_nodes", []))

    def wait_running(self, count: int = 3, timeout: float = 90.0) -> None:
        """Wait until ``cluster_status`` lists ``count`` running nodes."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                seen = self.running_nodes()
                if len(seen) >= count:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"cluster_status: {sorted(seen)} running, not {count}")

    # -- faults ----------------------------------------------------------------------------

    def kill(self, node: BrokerNode) -> float:
        """SIGKILL ``node``'s VM; returns the monotonic time of the kill."""
        return node.kill()

    def start(self, node: BrokerNode, timeout: float = 120.0) -> None:
        """Boot a killed node again and wait until the cluster lists it as running."""
        node.boot(timeout)
        self.wait_running(len(self.nodes), timeout)

    def stop_app(self, node: BrokerNode) -> None:
        """``rabbitmqctl stop_app``: the VM stays up and in the cluster, AMQP stops."""
        node.stop_app()

    def start_app(self, node: BrokerNode) -> None:
        node.start_app()
        self.wait_running(len(self.nodes))

    def drain(self, node: BrokerNode) -> None:
        """``rabbitmq-upgrade drain``: maintenance mode. The node closes its client
        connections, stops listening for new ones and hands its queue leaders over."""
        _upgrade("drain", node)

    def revive(self, node: BrokerNode) -> None:
        """``rabbitmq-upgrade revive``: out of maintenance mode, serving clients again."""
        _upgrade("revive", node)

    # -- look-ups --------------------------------------------------------------------------

    def connection_node(self, connection_name: str) -> BrokerNode | None:
        """The node holding the client connection named ``connection_name`` (None: none does)."""
        expr = (
            f"Name = {_erlang_binary(connection_name)}, "
            "[atom_to_list(node(P)) || P <- rabbit_networking:connections(), "
            "[{client_properties, Props}] <- "
            "[catch rabbit_networking:connection_info(P, [client_properties])], "
            "is_list(Props), "
            'lists:keyfind(<<"connection_name">>, 1, Props) =:= '
            '{<<"connection_name">>, longstr, Name}].'
        )
        out = self.ctl("eval", expr)
        for node in self.nodes:
            if f'"{node.name}"' in out:
                return node
        return None

    def quorum_leader(self, queue: str, timeout: float = 30.0) -> BrokerNode:
        """The node leading quorum queue ``queue`` (waits through an election)."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.ctl("list_queues", "-q", "--no-table-headers", "name", "leader")
            for line in out.splitlines():
                fields = line.split()
                if len(fields) == 2 and fields[0] == queue:
                    with contextlib.suppress(KeyError):
                        return self.node(fields[1])
            if time.monotonic() > deadline:
                raise RuntimeError(f"no leader for {queue}: {out}")
            time.sleep(0.5)

    def queue_type(self, queue: str) -> str | None:
        out = self.ctl("list_queues", "-q", "--no-table-headers", "name", "type")
        for line in out.splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0] == queue:
                return fields[1]
        return None

    def rss_bytes(self) -> int:
        """Resident memory of the three VMs together."""
        return sum(node.rss_bytes() for node in self.nodes)


def _upgrade(command: str, node: BrokerNode, timeout: float = 120.0) -> None:
    result = subprocess.run(
        ["rabbitmq-upgrade", "-n", node.name, command],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"rabbitmq-upgrade {command} {node.name}: {result.stdout}{result.stderr}"
        )


def _join(node: BrokerNode, seed: BrokerNode) -> None:
    node.ctl("stop_app", timeout=120)
    node.ctl("join_cluster", seed.name, timeout=120)
    node.ctl("start_app", timeout=120)


@contextlib.contextmanager
def running_cluster(size: int = 3, start_timeout: float = 120.0) -> Iterator[Cluster]:
    """Start ``size`` private nodes, cluster them, yield the :class:`Cluster`; stop them after.

    :raises RuntimeError: a node did not start, or the cluster did not form in time.
    """
    base = Path(tempfile.mkdtemp(prefix="txamqp091-cluster-"))
    shutil.chown(base, "rabbitmq", "rabbitmq")
    nodes: list[BrokerNode] = []
    launched: list[BrokerNode] = []
    try:
        for i in range(size):
            node = new_node(f"txamqp091-cluster{i + 1}", base / f"node{i + 1}")
            node.prepare(_CONFIG)
            nodes.append(node)
        cluster = Cluster(nodes)
        started = time.monotonic()
        for node in nodes:
            node.launch(start_timeout)
            launched.append(node)
        # The VMs boot concurrently; waiting for each is a CLI call of its own.
        errors: list[BaseException] = []

        def wait(node: BrokerNode) -> None:
            try:
                node.wait_booted(start_timeout)
            except BaseException as exc:  # reported below, on the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=wait, args=(n,)) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        for node in nodes[1:]:
            _join(node, nodes[0])
        cluster.wait_running(size, start_timeout)
        cluster.formation_seconds = time.monotonic() - started
        yield cluster
    finally:
        stoppers = [threading.Thread(target=_stop_quietly, args=(n,)) for n in launched]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        shutil.rmtree(base, ignore_errors=True)


def _stop_quietly(node: BrokerNode) -> None:
    with contextlib.suppress(Exception):
        node.stop()
