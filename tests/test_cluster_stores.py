"""Cluster mode: the workers must share one thresholds store (symptom reports, suggestions,
accepted thresholds). Two workers each on a SQLite file of their own (each under its own
``data_dir``, the default) tell it: each logs an error naming the other worker, counts
``thresholds_store_mismatch``, and ``heatmon cluster status`` shows it. (Workers on a shared
store count none: tests/test_cluster_profiles.py.)"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import nats
import pytest

from tests.cluster_helpers import PASSWORDS, Worker, write_config
from tests.fixtures.nats import NatsClusterFactory
from tests.test_cluster import authorization, wait_for
from tests.test_cluster_profiles import counter

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def test_workers_on_different_thresholds_stores_say_so(
    nats_cluster_factory: NatsClusterFactory, tmp_path: Path
) -> None:
    cluster = nats_cluster_factory(authorization=authorization())
    configs = {
        w: write_config(
            tmp_path / f"{w}.toml", cluster.urls, worker=w, extra="[sinks.thresholds]\n"
        )
        for w in ("w1", "w2")
    }
    workers = {w: Worker(configs[w], tmp_path / f"{w}.log") for w in configs}
    nc = await nats.connect(cluster.urls, user="heatmon", password=PASSWORDS["heatmon"])
    try:

        async def both_told() -> bool:
            counts = [await counter(nc, w, "thresholds_store_mismatch") for w in workers]
            return all(n >= 1 for n in counts)

        await wait_for(both_told, within_s=60, what="both workers to see the other store")
        for me, other in (("w1", "w2"), ("w2", "w1")):
            log = workers[me].log.read_text()
            assert f"worker {other} uses another thresholds store than this worker" in log
        assert (tmp_path / "w1" / "thresholds.sqlite").exists()
        env = {**os.environ, "HEATMON_CLUSTER_PASSWORD": PASSWORDS["heatmon"]}
        status = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "monitor.cli",
                "cluster",
                "status",
                "--config",
                str(configs["w1"]),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        assert "the workers use different thresholds stores" in status.stdout
    finally:
        for w in workers.values():
            w.stop()
        await nc.close()
