"""The test and benchmark NATS cluster (``monitor/cluster/localnats.py``) starts even when
another process takes one of the free ports it picked before a server binds it — as the
other pytest worker's servers do: a server that already answers on its client port fails
its next bind (here its cluster port), and the cluster used to fail after waiting 30 s for
a meta leader that could not come; now it starts again on fresh ports (here after that
wait: 31 s)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from monitor.cluster.localnats import LocalNatsCluster, nats_server_path

pytestmark = pytest.mark.timeout(120)


def test_a_port_taken_before_a_server_binds_it_gives_a_healthy_cluster_on_fresh_ports(
    tmp_path: Path,
) -> None:
    if nats_server_path() is None:
        pytest.fail("nats-server is missing: run scripts/setup.sh (the dev extra has it)")
    cluster = LocalNatsCluster(workdir=tmp_path / "nats")
    taken = cluster.nodes[1].cluster_port
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        try:
            cluster.start()
            assert all(n.running and n.healthy() for n in cluster.nodes)
            assert cluster.nodes[1].cluster_port != taken
        finally:
            cluster.stop()
