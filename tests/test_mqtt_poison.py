"""Poison messages against a real Mosquitto and a real InfluxDB: every payload that crashed
the reader in issue 10 (1,000-level nesting on the samples, symptoms and ack topics, a
sample time of 1e308, a symptom time of 1e20, future-dated symptom reports and
acknowledgements), sent live and retained, is answered on the errors topic and counted; the
sink never reconnects; and the valid input sent right behind them is all taken and stored."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import NamedTuple

import aiomqtt

from monitor.engine import MonitorEngine
from monitor.model import SampleKind, SymptomReport, iso_utc
from monitor.mqtt import payloads
from monitor.mqtt.localbroker import MosquittoBroker
from monitor.mqtt.sink import MqttSink
from monitor.plugins import PluginContext
from monitor.profile import PatientProfile
from monitor.service import Monitor
from monitor.storage.options import InfluxOptions
from monitor.storage.sink import InfluxSink
from tests.fixtures.influxdb import InfluxDatabase
from tests.fixtures.mosquitto import BrokerFactory
from tests.mqtt_helpers import (
    PASSWORDS,
    Listener,
    options,
    running_monitor,
    start_broker,
    until,
    until_count,
)

DEEP = 1000
"""Nesting depth of the deep payloads (what issue 10 sent)."""
VALID_SYMPTOMS = 60


def deep(document_key: str) -> bytes:
    """``{"v": 1, KEY: [[[…]]]}`` nested ``DEEP`` levels."""
    return b'{"v": 1, "' + document_key.encode() + b'": ' + b"[" * DEEP + b"]" * DEEP + b"}"


def poison(now: float) -> list[tuple[str, str, bytes]]:
    """(channel, publishing user, payload) of every crashing input of issue 10, and more."""
    hour_ahead = iso_utc(now + 3600)
    huge_value = b'{"v":1,"kind":"heart_rate","value":1' + b"0" * 400 + b',"unit":"bpm","time":1}'
    ack_ahead = {"v": 1, "event_id": "e", "by": "anna", "time": hour_ahead}
    return [
        ("samples", "gw-a", deep("samples")),
        ("samples", "gw-a", b"[" * DEEP + b"]" * DEEP),
        ("samples", "gw-a", b'{"v":1,"kind":"heart_rate","value":70,"unit":"bpm","time":1e308}'),
        ("samples", "gw-a", huge_value),
        ("symptoms", "app-p1", deep("note")),
        ("symptoms", "app-p1", b'{"v": 1, "time": 1e20}'),
        ("symptoms", "app-p1", b'{"v": 1, "time": "2100-01-01T00:00:00Z"}'),
        ("symptoms", "app-p1", json.dumps({"v": 1, "time": hour_ahead}).encode()),
        ("ack", "anna", deep("by")),
        ("ack", "anna", json.dumps(ack_ahead).encode()),
        ("ack", "anna", b'{"v": 1, "event_id": "e", "by": "anna", "time": 1e308}'),
        # a lone surrogate passes JSON but no UTF-8 encoder: stored, it stopped every write
        ("samples", "gw-a", b'{"v":1,"kind":"heart_rate","value":70,"unit":"bpm","time":%d,'
         b'"device":"\\udc00"}' % now),
        ("symptoms", "app-p1", b'{"v": 1, "time": %d, "note": "a\\ud800b"}' % now),
        ("ack", "anna", b'{"v": 1, "event_id": "e", "by": "\\ud800", "time": %d}' % now),
    ]  # fmt: skip


class Stack(NamedTuple):
    monitor: Monitor
    mqtt: MqttSink
    influx: InfluxSink


@asynccontextmanager
async def stack(
    broker: MosquittoBroker, prefix: str, db: InfluxDatabase, data_dir: Path
) -> AsyncIterator[Stack]:
    """The real Monitor with the MQTT sink (its input side) and the InfluxDB sink."""
    context = PluginContext(config=None, instance="m1")
    mqtt = MqttSink(
        options=options(broker, prefix, "heatmon", symptoms_per_minute=600),  # 60 at once
        instance="m1",
        context=context,
        known_patients=("p1", "p2"),
    )
    influx = InfluxSink(
        options=InfluxOptions.model_validate(
            {"url": db.url, "database": db.name, "flush_interval_s": 0.05}
        ),
        data_dir=data_dir,
    )
    engine = MonitorEngine(profiles={p: PatientProfile(id=p) for p in ("p1", "p2")})
    monitor = Monitor(engine=engine, sinks=[mqtt, influx], tick_s=3600.0)
    context.monitor = monitor
    async with monitor:
        async with asyncio.timeout(15):
            await mqtt.connected.wait()
        yield Stack(monitor, mqtt, influx)


async def publish(
    broker: MosquittoBroker, user: str, topic: str, bodies: list[bytes], *, retain: bool = False
) -> None:
    async with aiomqtt.Client(
        broker.host, broker.port, username=user, password=PASSWORDS[user], identifier=user
    ) as client:
        for body in bodies:
            await client.publish(topic, body, qos=1, retain=retain)


async def send_poison(broker: MosquittoBroker, prefix: str) -> int:
    items = poison(time.time())
    for channel, user, body in items:
        await publish(broker, user, f"{prefix}/patients/p1/{channel}", [body])
    return len(items)


async def send_retained_poison(broker: MosquittoBroker, prefix: str) -> int:
    """A broker keeps one retained message a topic: the deep ones on p1's topics, a sample
    time of 1e308, a symptom time of 1e20 and an ack an hour ahead on p2's."""
    now = time.time()
    items = {
        "p1/samples": deep("samples"),
        "p1/symptoms": deep("note"),
        "p1/ack": deep("by"),
        "p2/samples": b'{"v":1,"kind":"heart_rate","value":70,"unit":"bpm","time":1e308}',
        "p2/symptoms": b'{"v": 1, "time": 1e20}',
        "p2/ack": payloads.encode_ack(event_id="e", by="anna", time=now + 3600),
    }
    for topic, body in items.items():
        # the monitor's own login may publish anywhere under the prefix
        await publish(broker, "heatmon", f"{prefix}/patients/{topic}", [body], retain=True)
    return len(items)


def stored_symptoms(db: InfluxDatabase) -> list[str]:
    series = db.query('SELECT "note" FROM "symptoms"')
    return [row[1] for s in series for row in s["values"]]


async def test_poison_live_and_retained_is_answered_and_nothing_valid_is_lost(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str, influx_db: InfluxDatabase, tmp_path: Path
) -> None:
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    errors_topic = f"{mqtt_prefix}/monitors/m1/errors"
    # retained poison waits on the broker before heatmon subscribes
    retained = await send_retained_poison(broker, mqtt_prefix)
    async with Listener(
        broker, user="heatmon", topics=[errors_topic], identifier="watcher"
    ) as watcher:
        async with stack(broker, mqtt_prefix, influx_db, tmp_path / "a") as run:
            await until_count(run.mqtt, "rejected", retained)
            live = await send_poison(broker, mqtt_prefix)
            # 60 valid symptom reports right behind the poison, from the patient's app
            now = time.time()
            reports = [
                payloads.encode_symptom(time=now - 120 + i, note=f"report {i}")
                for i in range(VALID_SYMPTOMS)
            ]
            await publish(broker, "app-p1", f"{mqtt_prefix}/patients/p1/symptoms", reports)
            await until_count(run.mqtt, "symptoms_in", VALID_SYMPTOMS)
            # five of them delivered again (as QoS 1 may): recognised, taken once
            await publish(broker, "app-p1", f"{mqtt_prefix}/patients/p1/symptoms", reports[:5])
            await until_count(run.mqtt, "symptoms_repeated", 5)
            await until_count(run.mqtt, "rejected", retained + live)
            # every message is acknowledged to the broker, once it is safe
            await until_count(run.mqtt, "acked", retained + live + VALID_SYMPTOMS + 5)
            await watcher.wait_for(
                lambda w: len(w.messages) >= retained + live, what="every rejection answered"
            )
            assert run.mqtt.counters["connects"] == 1, "the reader never died"
            assert "disconnects" not in run.mqtt.counters
            assert run.mqtt.counters["rejected"] == retained + live
            assert run.mqtt.counters.get("input_errors", 0) == 0, "all foreseen, none a bug"
            assert run.mqtt.counters["rejected.samples"] == 5 + 2
            assert run.mqtt.counters["rejected.symptoms"] == 5 + 2
            assert run.mqtt.counters["rejected.ack"] == 4 + 2
            # acknowledged means in the spool already, before any stop or drain
            assert run.influx.spool.pending_points + run.influx.stats.written >= VALID_SYMPTOMS
        reasons = [m.json()["reason"] for m in watcher.messages]
        assert sum("levels deep; at most 8" in r for r in reasons) == 4 + 3
        assert sum("in the future" in r for r in reasons) == 2 + 1  # symptom reports, acks
        assert sum("between 2000 and 2100" in r for r in reasons) == 1  # year 2100
        assert sum("lone UTF-16 surrogate" in r for r in reasons) == 3
        assert sum(r.startswith("time") for r in reasons) >= 4 + 3  # 1e308, 1e20, future
        notes = stored_symptoms(influx_db)
        assert sorted(notes) == sorted(f"report {i}" for i in range(VALID_SYMPTOMS))
        assert run.mqtt.counters["symptoms_in"] == VALID_SYMPTOMS

        # heatmon again: the retained poison comes back once, is rejected once, and a
        # valid sample behind it is taken
        async with stack(broker, mqtt_prefix, influx_db, tmp_path / "b") as again:
            await until_count(again.mqtt, "rejected", retained)
            sample = payloads.encode_batch(
                [
                    {
                        "kind": SampleKind.HEART_RATE.value,
                        "value": 72.0,
                        "unit": "bpm",
                        "time": time.time() - 1,
                    }
                ]
            )
            await publish(broker, "gw-a", f"{mqtt_prefix}/patients/p1/samples", [sample])
            await until_count(again.mqtt, "samples_in", 1)
            await until(
                lambda: again.mqtt.counters.get("acked", 0) >= retained + 1,
                again.mqtt.counted,
                what="acked",
            )
            assert again.mqtt.counters["rejected"] == retained
            assert again.mqtt.counters["connects"] == 1


async def test_retained_input_is_taken_once_not_at_every_restart(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str
) -> None:
    """A patient's app (or a gateway) that publishes with the retain flag by mistake: the
    monitor takes the message when it is sent, but the broker keeps a copy and hands it to
    every new subscription. Taken again at each restart, the same symptom report was
    stored once a restart. A retained copy (always a replay: the monitor's session is
    persistent) is answered on the errors topic, counted and not taken."""
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    now = time.time()
    symptom = payloads.encode_symptom(time=now - 5, note="tingling")
    async with running_monitor(broker, mqtt_prefix) as first:
        await publish(
            broker, "app-p1", f"{mqtt_prefix}/patients/p1/symptoms", [symptom], retain=True
        )
        await until_count(first.sink, "symptoms_in", 1)
        await until_count(first.sink, "acked", 1)  # not delivered again for want of a PUBACK
    errors_topic = f"{mqtt_prefix}/patients/p1/errors"
    async with Listener(broker, user="heatmon", topics=[errors_topic], identifier="w") as watch:
        for _ in range(2):  # heatmon restarted twice
            async with running_monitor(broker, mqtt_prefix) as again:
                await until_count(again.sink, "rejected", 1)
                await until_count(again.sink, "acked", 1)
                assert again.sink.counters.get("symptoms_in", 0) == 0
                assert not [r for r in again.records.records if isinstance(r, SymptomReport)]
        await watch.wait_for(lambda w: len(w.messages) >= 2, what="both rejections answered")
    assert all("retained" in m.json()["reason"] for m in watch.messages)
