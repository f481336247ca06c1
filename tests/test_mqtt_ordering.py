"""Time and copies on the MQTT input, through a real Mosquitto (and a real InfluxDB):

- one sample minutes ahead of the clock (inside the 5-min allowance) is flagged ``future``
  and does not stall the patient's real-time stream;
- a batch a gateway sends again (its PUBACK lost) is recognised sample by sample as
  ``duplicate`` and stored once, and the stored readings keep their own flags.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import aiomqtt
import pytest

from monitor.engine import MonitorEngine
from monitor.model import Acknowledgement, Sample, SampleFlag, SampleKind, ThermalState
from monitor.mqtt import inbound, payloads
from monitor.mqtt.sink import MqttSink
from monitor.plugins import PluginContext, Sink
from monitor.profile import PatientProfile
from monitor.service import Monitor
from monitor.storage.options import InfluxOptions
from monitor.storage.sink import InfluxSink
from tests.fixtures.influxdb import InfluxDatabase
from tests.fixtures.mosquitto import BrokerFactory
from tests.mqtt_helpers import (
    PASSWORDS,
    RecordingSink,
    options,
    ramp,
    start_broker,
    until,
    until_count,
)


class Flags(Sink):
    """Keeps every sample's flag and every state."""

    name = "flags"

    def __init__(self) -> None:
        self.samples: list[tuple[Sample, SampleFlag]] = []
        self.states: list[ThermalState] = []
        self.changed = asyncio.Event()

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        return cls()

    def submit_sample(self, sample: Sample, flag: SampleFlag) -> None:
        self.samples.append((sample, flag))
        self.changed.set()

    def submit_state(self, state: ThermalState) -> None:
        self.states.append(state)
        self.changed.set()


def items(t0: float, seconds: range) -> Iterator[dict[str, Any]]:
    for i in seconds:
        yield {"kind": "heart_rate", "value": 70.0 + i % 5, "unit": "bpm", "time": t0 + i}
        yield {"kind": "skin_temp", "value": 33.0, "unit": "degC", "time": t0 + i}


async def publish(broker: Any, prefix: str, batches: list[list[dict[str, Any]]]) -> None:
    async with aiomqtt.Client(
        broker.host, broker.port, username="gw-a", password=PASSWORDS["gw-a"], identifier="gw-a"
    ) as client:
        for batch in batches:
            body = payloads.encode_batch(batch)
            await client.publish(f"{prefix}/patients/p1/samples", body, qos=1)


def build(
    broker: Any, prefix: str, sinks: list[Sink], *, tick_s: float
) -> tuple[Monitor, MqttSink]:
    context = PluginContext(config=None, instance="m1")
    mqtt = MqttSink(
        options=options(broker, prefix, "heatmon"),
        instance="m1",
        context=context,
        known_patients=("p1",),
    )
    engine = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
    monitor = Monitor(engine=engine, sinks=[mqtt, *sinks], tick_s=tick_s)
    context.monitor = monitor
    return monitor, mqtt


async def test_one_sample_minutes_ahead_is_flagged_and_does_not_stall_the_stream(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str
) -> None:
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    flags = Flags()
    monitor, mqtt = build(broker, mqtt_prefix, [flags], tick_s=0.1)
    now = time.time()
    t0 = float(int(now) - 180)  # a real-time stream, caught up to the present
    async with monitor:
        async with asyncio.timeout(15):
            await mqtt.connected.wait()
        await asyncio.sleep(0.3)  # the service has told the engine the time
        await publish(broker, mqtt_prefix, [list(items(t0, range(60)))])
        ahead = {"kind": "heart_rate", "value": 72.0, "unit": "bpm", "time": now + 240}
        await publish(broker, mqtt_prefix, [[ahead], list(items(t0, range(60, 170)))])
        await until_count(mqtt, "samples_in", 2 * 170 + 1)
    by_time = {(s.kind, s.time): f for s, f in flags.samples}
    assert by_time[(SampleKind.HEART_RATE, now + 240)] is SampleFlag.FUTURE
    later = [f for s, f in flags.samples if t0 + 60 <= s.time < t0 + 170]
    assert later and all(f is SampleFlag.OK for f in later), "nothing after it out of order"
    # states went on for the windows after the early sample, up to the last sample
    assert max(s.time for s in flags.states) >= t0 + 160
    assert monitor.counters.get("flag.out_of_order", 0) == 0


async def test_a_batch_sent_again_is_recognised_and_stored_once(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str, influx_db: InfluxDatabase, tmp_path: Path
) -> None:
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    flags = Flags()
    influx = InfluxSink(
        options=InfluxOptions.model_validate(
            {"url": influx_db.url, "database": influx_db.name, "flush_interval_s": 0.05}
        ),
        data_dir=tmp_path,
    )
    monitor, mqtt = build(broker, mqtt_prefix, [flags, influx], tick_s=3600.0)
    t0 = float(int(time.time()) - 600)
    first = list(items(t0, range(0, 40)))
    second = list(items(t0, range(40, 80)))
    async with monitor:
        async with asyncio.timeout(15):
            await mqtt.connected.wait()
        # the gateway re-sends the first batch after the second (its PUBACK was lost), and
        # the second batch once more straight away
        await publish(broker, mqtt_prefix, [first, second, first, second])
        await until_count(mqtt, "samples_in", 4 * 80)
        await until(lambda: mqtt.counters.get("acked", 0) >= 4, mqtt.counted, what="acked")
    copies = [f for _, f in flags.samples[160:]]
    assert copies == [SampleFlag.DUPLICATE] * 160, "every copy recognised"
    assert monitor.counters["flag.duplicate"] == 160
    assert influx.stats.duplicates_not_stored == 160
    series = influx_db.query('SELECT "flag", "value" FROM "vitals" GROUP BY "kind"')
    rows = {s["tags"]["kind"]: s["values"] for s in series}
    assert {k: len(v) for k, v in rows.items()} == {"heart_rate": 80, "skin_temp": 80}
    assert {row[1] for v in rows.values() for row in v} == {"ok"}, "flags of the originals"
    assert [row[2] for row in rows["heart_rate"]] == [70.0 + i % 5 for i in range(80)]


async def test_an_acknowledgement_delivered_again_is_taken_once(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str
) -> None:
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    records = RecordingSink()
    monitor, mqtt = build(broker, mqtt_prefix, [records], tick_s=3600.0)
    t0 = float(int(time.time()) - 600)
    async with monitor:
        async with asyncio.timeout(15):
            await mqtt.connected.wait()
        for sample in ramp("p1", t0, range(300)):
            await monitor.ingest(sample)
        [cool_down] = monitor.open_alerts("p1")
        ack = payloads.encode_ack(event_id=cool_down.id, by="anna")
        async with aiomqtt.Client(
            broker.host, broker.port, username="anna", password=PASSWORDS["anna"]
        ) as client:
            for _ in range(2):  # the second as QoS 1 may deliver it after a lost PUBACK
                await client.publish(f"{mqtt_prefix}/patients/p1/ack", ack, qos=1)
        await until_count(mqtt, "acks_repeated", 1)
    assert mqtt.counters["acks_in"] == 1 and "rejected" not in mqtt.counters
    assert [r.event_id for r in records.records if isinstance(r, Acknowledgement)] == [cool_down.id]
    assert monitor.open_alerts("p1") == []


class StuckStore(Sink):
    """Storage whose spool cannot be written until ``healthy`` is set (a full disk)."""

    name = "stuck"

    def __init__(self) -> None:
        self.healthy = asyncio.Event()

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        return cls()

    async def durable(self) -> None:
        await self.healthy.wait()


async def test_stuck_storage_delays_acknowledgement_but_never_stops_the_input(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbound, "HANDOFF_TIMEOUT_S", 1.0)
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    store = StuckStore()
    monitor, mqtt = build(broker, mqtt_prefix, [store], tick_s=3600.0)
    t0 = float(int(time.time()) - 600)
    async with monitor:
        async with asyncio.timeout(15):
            await mqtt.connected.wait()
        await publish(broker, mqtt_prefix, [list(items(t0, range(10)))])
        await until_count(mqtt, "acked", 1)
        assert mqtt.counters["acked_unsafe"] == 1, "acknowledged after the timeout, counted"
        assert mqtt.counters["samples_in"] == 20, "the input went on"
        store.healthy.set()
        await publish(broker, mqtt_prefix, [list(items(t0, range(10, 20)))])
        await until_count(mqtt, "acked", 2)
        assert mqtt.counters["acked_unsafe"] == 1, "safe again: acknowledged after storage"
