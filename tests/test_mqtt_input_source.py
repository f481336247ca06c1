"""The MQTT input is a source of the monitor (reading the connection the MQTT sink keeps):
gateway samples come in through it, and it follows the sink to a new connection after the
broker restarts."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from monitor.mqtt import payloads
from monitor.mqtt.source import MqttInput
from tests.fixtures.mosquitto import BrokerFactory
from tests.mqtt_helpers import PASSWORDS, ramp, running_monitor, start_broker, start_time, until

pytestmark = pytest.mark.slow


async def _publish(broker: object, prefix: str, body: bytes) -> None:
    async with aiomqtt.Client(
        broker.host,  # type: ignore[attr-defined]
        broker.port,  # type: ignore[attr-defined]
        username="gw-a",
        password=PASSWORDS["gw-a"],
        identifier="gw-test",
    ) as gw:
        await gw.publish(f"{prefix}/patients/p1/samples", body, qos=1)


async def test_samples_enter_through_the_input_source_across_a_broker_restart(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str
) -> None:
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    t0 = start_time()
    samples = list(ramp("p1", t0, range(20)))
    first = payloads.encode_batch([payloads.sample_dict(s) for s in samples[:20]])
    second = payloads.encode_batch([payloads.sample_dict(s) for s in samples[20:]])
    async with running_monitor(broker, mqtt_prefix) as run:
        inputs = [s for s in run.monitor.sources if isinstance(s, MqttInput)]
        assert inputs == [run.sink.input]
        assert "source.mqtt-input" in run.monitor.health()["components"]
        await _publish(broker, mqtt_prefix, first)
        await until(
            lambda: run.sink.counters.get("samples_in", 0) >= 20, run.sink.counted, what="20"
        )
        connects = run.sink.counters["connects"]
        broker.restart()
        await until(
            lambda: run.sink.counters.get("connects", 0) > connects,
            run.sink.counted,
            what="a new connection",
        )
        async with asyncio.timeout(30):
            await run.sink.connected.wait()
        await _publish(broker, mqtt_prefix, second)
        await until(
            lambda: run.sink.counters.get("samples_in", 0) >= 40, run.sink.counted, what="40"
        )
        await until(  # acknowledged once kept safe (a few ms after being taken)
            lambda: run.sink.counters.get("acked", 0) >= 2, run.sink.counted, what="2 acks"
        )
        assert run.monitor.counters.get("source_failures.mqtt-input", 0) == 0
