"""The cluster fixture: three private RabbitMQ nodes, formed once per test session.

The cluster tests (marker ``cluster``) run only when ``TXAMQP091_CLUSTER=1``:
forming a cluster takes 20-30 s, about 400 MiB and root (the nodes run as the
``rabbitmq`` user). ``./scripts/test`` sets it and runs them under
``flock /tmp/txamqp091-private-node.lock``, so that two runs on one machine
never start private nodes at the same time. Asked for and not formed, the
cluster fails the tests rather than skipping them.

Tests print their figures (``-s`` shows them). ``TXAMQP091_CLUSTER_KILLS``
(default 1) sets how many kills a failover test makes, for the median.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.cluster.nodes import Cluster, running_cluster


def kills() -> int:
    """How many times a failover test kills a node (``TXAMQP091_CLUSTER_KILLS``, default 1)."""
    return max(1, int(os.environ.get("TXAMQP091_CLUSTER_KILLS", "1")))


@pytest.fixture(scope="session")
def cluster_session() -> Iterator[Cluster]:
    if os.environ.get("TXAMQP091_CLUSTER") != "1":
        pytest.skip(
            "cluster tests need TXAMQP091_CLUSTER=1 (./scripts/test sets it, under "
            "flock /tmp/txamqp091-private-node.lock)"
        )
    if os.geteuid() != 0:
        pytest.fail("cluster tests need root: the private nodes run as the rabbitmq user")
    with running_cluster() as formed:
        print(
            f"\ncluster: formed in {formed.formation_seconds:.1f} s, "
            f"{formed.rss_bytes() / 2**20:.0f} MiB RSS for {len(formed.nodes)} nodes"
        )
        yield formed


@pytest.fixture
def cluster(cluster_session: Cluster) -> Cluster:
    """The session's cluster with every node up (a node a failed test left down is booted)."""
    for node in cluster_session.nodes:
        if node.os_pid() is None:
            cluster_session.start(node)
    running = cluster_session.running_nodes()
    for node in cluster_session.nodes:
        if node.name not in running:
            cluster_session.start_app(node)
    return cluster_session
