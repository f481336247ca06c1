"""The test and benchmark NATS cluster (``monitor/cluster/localnats.py``) starts even when
another process takes one of the free ports it picked before a server binds it — as the
other pytest worker's servers do: a server that already answers on its client port fails
its next bind (here its cluster port), and the cluster used to fail after waiting 30 s for
a meta leader that could not come; now it starts again on fresh ports, at once. The same
when its client port itself is bound by another process that does not listen yet: the
server exits, and the cluster used to wait 30 s for that port to answer."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from monitor.cluster.localnats import LocalNatsCluster, nats_server_path

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(("port", "listening"), [("cluster_port", True), ("port", False)])
def test_a_port_taken_before_a_server_binds_it_gives_a_healthy_cluster_on_fresh_ports(
    tmp_path: Path, port: str, listening: bool
) -> None:
    if nats_server_path() is None:
        pytest.fail("nats-server is missing: run scripts/setup.sh (the dev extra has it)")
    cluster = LocalNatsCluster(workdir=tmp_path / "nats")
    taken = getattr(cluster.nodes[1], port)
    with socket.socket() as holder:
        if listening:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", taken))  # (bound, not listening: no SO_REUSEADDR to share)
        if listening:
            holder.listen()
        began = time.monotonic()
        try:
            cluster.start()
            assert all(n.running and n.healthy() for n in cluster.nodes)
            assert getattr(cluster.nodes[1], port) != taken
            assert time.monotonic() - began < 20, "waited for a server that had exited"
        finally:
            cluster.stop()
