"""The MQTT input's per-patient limit on symptom reports, against a real Mosquitto: a
gateway bug or an attacker flooding "I feel symptoms" for a patient neither fills storage
nor skews the threshold learning, and the input goes on."""

from __future__ import annotations

import logging
import time

import aiomqtt
import pytest

from monitor.model import SymptomReport
from monitor.mqtt import payloads
from monitor.mqtt.options import MqttOptions
from tests.fixtures.mosquitto import BrokerFactory
from tests.mqtt_helpers import PASSWORDS, running_monitor, start_broker, until, until_count

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


async def test_symptom_reports_over_the_limit_are_dropped_counted_and_acknowledged(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """25 reports for p1 in a few seconds from its app (QoS 1): the first 10 (the default
    ``symptoms_per_minute``, as the dashboard's) are taken, the other 15 dropped, counted,
    logged without the patient, and PUBACKed like any handled message; p2's reports, sent
    in the middle of the flood, are all taken. Before: all 25 taken and stored."""
    caplog.set_level(logging.INFO)
    limit = MqttOptions().symptoms_per_minute
    assert limit == 10
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    now = time.time()
    flood = [payloads.encode_symptom(time=now - 60 + i, note=f"r{i}") for i in range(25)]
    async with running_monitor(broker, mqtt_prefix) as run:
        async with aiomqtt.Client(
            broker.host, broker.port, username="app-p1", password=PASSWORDS["app-p1"]
        ) as app:
            for body in flood:
                await app.publish(f"{mqtt_prefix}/patients/p1/symptoms", body, qos=1)
        async with aiomqtt.Client(
            broker.host, broker.port, username="heatmon", password=PASSWORDS["heatmon"]
        ) as other:
            for i in range(3):
                body = payloads.encode_symptom(time=now - 30 + i, note="p2")
                await other.publish(f"{mqtt_prefix}/patients/p2/symptoms", body, qos=1)
        await until_count(run.sink, "symptoms_limited", 15)
        await until_count(run.sink, "symptoms_in", limit + 3)
        await until_count(run.sink, "acked", 25 + 3)  # the dropped ones too
        await until(
            lambda: len(run.records.records) >= limit + 3,
            run.records.changed,
            what="the reports taken reach the sinks",
        )
        taken = [r for r in run.records.records if isinstance(r, SymptomReport)]
        assert sorted(r.patient for r in taken) == ["p1"] * limit + ["p2"] * 3
        assert [r.note for r in taken if r.patient == "p1"] == [f"r{i}" for i in range(limit)]
        assert run.sink.counters["symptoms_limited"] == 15
        assert run.sink.counters.get("rejected", 0) == 0  # dropped by policy, not refused
        assert run.sink.counters.get("input_errors", 0) == 0
        # the input goes on after the flood: another patient's report is taken at once
        async with aiomqtt.Client(
            broker.host, broker.port, username="heatmon", password=PASSWORDS["heatmon"]
        ) as other:
            body = payloads.encode_symptom(time=now - 1, note="later")
            await other.publish(f"{mqtt_prefix}/patients/p2/symptoms", body, qos=1)
        await until_count(run.sink, "symptoms_in", limit + 4)
    said = [r.getMessage() for r in caplog.records if "symptoms_limited" in r.getMessage()]
    assert said, "the refusals are logged"
    assert len(said) == 1, said  # the first, then every 100th
    assert all("p1" not in m and "r1" not in m for m in said), said
