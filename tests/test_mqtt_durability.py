"""Fault test at the real-world rate: many patients' wearables (heart rate and skin
temperature at 1 Hz) through gateways → Mosquitto → ``heatmon run`` (a real process) →
InfluxDB, while InfluxDB is stopped and started, ``heatmon run`` is killed with SIGKILL
and started again, and Mosquitto is restarted. Straps come off during the faults, so the
engine raises alerts (``sensor_off``) then.

Afterwards every sample the broker acknowledged to a gateway (the gateways' outboxes are
empty) is in InfluxDB exactly once, and every alert heatmon stored was delivered to the
caregiver over MQTT, including one for each strap that came off."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from monitor.model import Sample, SampleKind
from monitor.mqtt.acl import render_acl
from monitor.mqtt.gateway import Gateway
from monitor.mqtt.localbroker import MosquittoBroker
from monitor.mqtt.options import AclOptions, MqttOptions
from tests.fixtures.influxdb import InfluxDatabase
from tests.fixtures.mosquitto import BrokerFactory
from tests.mqtt_helpers import Listener, QueueSource

pytestmark = pytest.mark.slow

PATIENTS = [f"p{n:03d}" for n in range(200)]
GATEWAYS = 4
STRAPS_OFF = ("p000", "p001")
"""Patients whose heart-rate strap comes off during a fault (an alert each)."""
USERS = {"heatmon": "pw-monitor", "anna": "pw-anna"} | {
    f"gw{n}": f"pw-gw{n}" for n in range(GATEWAYS)
}
WAIT_S = 60.0


def gateway_patients(n: int) -> list[str]:
    return PATIENTS[n::GATEWAYS]


def mqtt_options(broker: MosquittoBroker, prefix: str, user: str) -> MqttOptions:
    return MqttOptions.model_validate(
        {
            "host": broker.host,
            "port": broker.port,
            "username": user,
            "password": USERS[user],
            "topic_prefix": prefix,
            "reconnect_base_s": 0.1,
            "reconnect_max_s": 0.5,
        }
    )


def write_config(path: Path, broker: MosquittoBroker, prefix: str, db: InfluxDatabase) -> Path:
    patients = "".join(f'[[patients]]\nid = "{p}"\n' for p in PATIENTS)
    path.write_text(
        f"""
[monitor]
instance = "central"
data_dir = "{path.parent / "var"}"

{patients}
[sinks.mqtt]
host = "{broker.host}"
port = {broker.port}
username = "heatmon"
topic_prefix = "{prefix}"
reconnect_base_s = 0.1
reconnect_max_s = 0.5

[sinks.influxdb]
url = "{db.url}"
database = "{db.name}"
flush_interval_s = 0.2
""",
        encoding="utf-8",
    )
    return path


class Feeder:
    """Every patient's strap and skin sensor at 1 Hz (times on the wall clock), split over
    the gateways; ``strap_off`` patients send zero heart rate without skin contact."""

    def __init__(self, sources: list[QueueSource]) -> None:
        self.sources = sources
        self.fed: dict[tuple[str, str], set[float]] = {}
        self.strap_off: set[str] = set()
        self.running = True

    async def run(self) -> None:
        """Like real wearables, not all at the same instant: each 50 ms slice of a second
        sends the patients of that slice, so data is always in flight."""
        t = float(int(time.time()))
        slices = 20
        while self.running:
            for k in range(slices):
                for n, source in enumerate(self.sources):
                    for patient in gateway_patients(n)[k::slices]:
                        self._emit(source, patient, t)
                await asyncio.sleep(max(0.0, t + (k + 1) / slices - time.time()))
            t += 1.0

    def _emit(self, source: QueueSource, patient: str, t: float) -> None:
        off = patient in self.strap_off
        for sample in (
            Sample(
                patient, SampleKind.HEART_RATE, 0.0 if off else 70.0 + t % 7, t,
                "strap", "gw", sensor_contact=not off,
            ),
            Sample(patient, SampleKind.SKIN_TEMP, 33.0, t, "skin", "gw"),
        ):  # fmt: skip
            source.queue.put_nowait(sample)
            self.fed.setdefault((patient, sample.kind.value), set()).add(t)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.fed.values())


class Heatmon:
    """``heatmon run`` as a process of its own."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.log = config.parent / "heatmon.log"

    async def start(self) -> None:
        env = {**os.environ, "HEATMON_MQTT_PASSWORD": USERS["heatmon"]}
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "monitor.cli", "run", "--config", str(self.config)),
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)
        async with asyncio.timeout(30):
            await self.proc.wait()


async def until(what: str, predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Poll ``predicate`` (InfluxDB and the gateways' outboxes have no event to wait on)."""
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():  # noqa: ASYNC110 - polling a server
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def query(db: InfluxDatabase, influxql: str) -> list[dict[str, Any]]:
    """``db.query``, or nothing while InfluxDB does not answer."""
    try:
        return db.query(influxql)
    except OSError:
        return []


def stored_counts(db: InfluxDatabase) -> dict[tuple[str, str], int]:
    series = query(db, 'SELECT count("accepted") FROM "vitals" GROUP BY "patient", "kind"')
    return {
        (str(s["tags"]["patient"]), str(s["tags"]["kind"])): int(s["values"][0][1]) for s in series
    }


@asynccontextmanager
async def gateways(
    broker: MosquittoBroker, prefix: str, sources: list[QueueSource]
) -> AsyncIterator[list[Gateway]]:
    async with AsyncExitStack() as stack:
        gws = [
            await stack.enter_async_context(
                Gateway(
                    source=sources[n],
                    options=mqtt_options(broker, prefix, f"gw{n}"),
                    patients=gateway_patients(n),
                    identifier=f"gw{n}",
                )
            )
            for n in range(GATEWAYS)
        ]
        tasks = [asyncio.create_task(gw.run()) for gw in gws]
        try:
            yield gws
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_every_acknowledged_sample_stored_once_and_every_alert_delivered_across_faults(
    mosquitto_factory: BrokerFactory,
    mqtt_prefix: str,
    private_influxdb: InfluxDatabase,
    tmp_path: Path,
) -> None:
    acl = AclOptions(
        gateways={f"gw{n}": gateway_patients(n) for n in range(GATEWAYS)},
        caregivers={"anna": list(STRAPS_OFF)},
    )
    broker = mosquitto_factory(
        users=USERS, acl=render_acl(MqttOptions(topic_prefix=mqtt_prefix, acl=acl))
    )
    db = private_influxdb
    heatmon = Heatmon(write_config(tmp_path / "heatmon.toml", broker, mqtt_prefix, db))
    status = f"{mqtt_prefix}/monitors/central/status"
    alerts = [f"{mqtt_prefix}/patients/{p}/alerts" for p in STRAPS_OFF]
    sources = [QueueSource() for _ in range(GATEWAYS)]
    feeder = Feeder(sources)

    def online(a: Listener) -> bool:
        says = a.on("/status")
        return bool(says) and says[-1].json()["status"] == "online"

    async with Listener(
        broker, user="anna", topics=[status, *alerts], identifier="anna", persistent=True
    ) as anna:
        await heatmon.start()
        try:
            await anna.wait_for(online, what="heatmon online")
            async with gateways(broker, mqtt_prefix, sources) as gws:
                feeding = asyncio.create_task(feeder.run())
                await asyncio.sleep(3)
                # InfluxDB goes away; a strap comes off meanwhile
                await asyncio.to_thread(db.server.stop)
                feeder.strap_off.add("p000")
                await asyncio.sleep(5)
                feeder.strap_off.discard("p000")
                await asyncio.to_thread(db.server.start)
                await asyncio.sleep(2)
                # heatmon killed while samples flow, started again 2 s later
                await heatmon.kill()
                await anna.wait_for(lambda a: not online(a), what="the last will")
                await asyncio.sleep(1)
                await heatmon.start()
                await anna.wait_for(online, what="heatmon online again")
                # Mosquitto restarts; a strap comes off while it is down
                feeder.strap_off.add("p001")
                await asyncio.sleep(1)
                await asyncio.to_thread(broker.stop)
                await asyncio.sleep(3)
                await asyncio.to_thread(broker.start)
                await asyncio.sleep(2)
                feeder.strap_off.discard("p001")
                await asyncio.sleep(2)
                feeder.running = False
                await feeding
                await until(
                    "the broker acknowledged every sample",
                    lambda: all(gw.buffered == 0 for gw in gws),
                )
            expected = {key: len(times) for key, times in feeder.fed.items()}
            assert len(expected) == 2 * len(PATIENTS)
            try:
                await until("every sample stored", lambda: stored_counts(db) == expected)
            except AssertionError:
                got = stored_counts(db)
                wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
                raise AssertionError(f"(stored, sent) differ for {len(wrong)}: {wrong}") from None
            # every alert heatmon stored for the two patients reached their caregiver
            await until(
                "a sensor_off alert for each strap that came off",
                lambda: (
                    {
                        m.json()["patient"]
                        for m in anna.on("/alerts")
                        if m.json().get("quality") == "sensor_off"
                    }
                    >= set(STRAPS_OFF)
                ),
            )
        finally:
            await heatmon.kill(signal.SIGTERM)
    stored_ids = {
        str(row[1])
        for s in query(db, 'SELECT "event_id" FROM "alerts" WHERE "patient" =~ /^p00[01]$/')
        for row in s["values"]
    }
    delivered = {m.json()["id"] for m in anna.on("/alerts")}
    assert stored_ids and stored_ids <= delivered
    print(f"{feeder.count} samples from {len(PATIENTS)} patients stored exactly once")
