"""Helpers of the cluster tests: a worker configuration, workers as subprocesses, a
simulated hot session as gateway sample batches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from adapters.simulator import SCENARIOS, SimulatedPatient
from monitor.cluster.subjects import Names
from monitor.model import Sample, SampleKind
from monitor.mqtt.payloads import encode_batch, sample_dict
from tests.passwords import seeded_hash

T0 = 1_750_000_000.0
PASSWORDS = {"heatmon": "monitor-pw", "gw1": "gateway-pw", "carol": "carer-pw"}
PATIENTS = ("p1", "p2", "p3", "p4")
NAMES = Names(root="hm", topic_prefix="heatmon/v1", partitions=4)
MQTT_ACL = {"gateways": {"gw1": ["p1"]}, "caregivers": {"carol": ["p1"]}}
CAROL_SEES = ("p1", "p2", "p3")
"""Carol's patients on the workers' dashboards (p4 is someone else's)."""


def write_config(
    path: Path, urls: list[str], *, worker: str, web_port: int | None = None, extra: str = ""
) -> Path:
    """A worker's TOML; with ``web_port``, its dashboard too (caregiver carol, whose
    password is ``PASSWORDS["carol"]``, sees :data:`CAROL_SEES`); ``extra`` is appended."""
    patients = "\n".join(f'[[patients]]\nid = "{p}"\n' for p in PATIENTS)
    servers = ", ".join(json.dumps(u) for u in urls)
    web = ""
    if web_port is not None:
        web = (
            f"[sinks.web]\nport = {web_port}\n\n[web.users.carol]\n"
            f"password_hash = {json.dumps(seeded_hash(PASSWORDS['carol']))}\n"
            f"patients = {json.dumps(list(CAROL_SEES))}\n"
        )
    path.write_text(
        f"""[monitor]
instance = "{worker}"
data_dir = "{path.parent / worker}"

{patients}
[cluster]
servers = [{servers}]
user = "heatmon"
partitions = {NAMES.partitions}
worker_id = "{worker}"
lease_ttl_s = 4.0
checkpoint_interval_s = 5.0
clock = "samples"

{web}
{extra}""",
        encoding="utf-8",
    )
    return path


class Worker:
    """``heatmon run`` with ``[cluster]`` as a subprocess."""

    def __init__(self, config: Path, log: Path, *, password: str = PASSWORDS["heatmon"]) -> None:
        env = {**os.environ, "HEATMON_CLUSTER_PASSWORD": password}
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "monitor.cli", "run", "--config", str(config)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]


def hot_session(patient: str, *, seconds: int, seed: int = 1) -> list[list[Sample]]:
    """``hot_day_aerobic`` at 1 Hz, heart rate and skin temperature, in 10-s batches."""
    sim = SimulatedPatient(scenario=SCENARIOS["hot_day_aerobic"], seed=seed)
    batches: list[list[Sample]] = []
    for n in range(seconds):
        v = sim.step(1.0)
        t = T0 + v.time_s
        if n % 10 == 0:
            batches.append([])
        batches[-1] += [
            Sample(patient, SampleKind.HEART_RATE, v.heart_rate_bpm, t, device="strap"),
            Sample(patient, SampleKind.SKIN_TEMP, v.skin_temp_c, t, device="patch"),
        ]
    return batches


def payloads(batches: list[list[Sample]]) -> Iterator[bytes]:
    for batch in batches:
        yield encode_batch([sample_dict(s) for s in batch])
