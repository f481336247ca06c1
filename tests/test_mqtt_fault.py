"""Fault test: Mosquitto restarts while samples flow, and an alert is raised while it is
down. The alert arrives once after the restart, the retained state is current, the
gateway's buffered samples all arrive, and nothing is duplicated."""

from __future__ import annotations

import asyncio

import pytest

from monitor.model import iso_utc
from monitor.mqtt.acl import render_acl
from monitor.mqtt.gateway import Gateway
from monitor.mqtt.options import MqttOptions
from tests.fixtures.mosquitto import BrokerFactory
from tests.mqtt_helpers import (
    ACL,
    PASSWORDS,
    Listener,
    QueueSource,
    options,
    ramp,
    running_monitor,
    start_time,
    until,
    until_count,
)

pytestmark = pytest.mark.slow


async def test_broker_restart_alert_raised_during_outage_arrives_once(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str
) -> None:
    broker = mosquitto_factory(
        users=PASSWORDS, acl=render_acl(MqttOptions(topic_prefix=mqtt_prefix, acl=ACL))
    )
    t0 = start_time()
    source = QueueSource()
    async with (
        running_monitor(broker, mqtt_prefix) as run,
        Listener(
            broker,
            user="anna",
            topics=[f"{mqtt_prefix}/patients/p1/alerts", f"{mqtt_prefix}/patients/p1/state"],
            identifier="anna-persistent",
            persistent=True,
        ) as anna,
        Gateway(
            source=source,
            options=options(broker, mqtt_prefix, "gw-b"),
            patients=["p2"],
            identifier="gw-b-1",
        ) as gateway,
    ):
        gw_task = asyncio.create_task(gateway.run())
        p2 = list(ramp("p2", t0, range(200)))
        # before the outage: p1 from a local wearable, p2 through the gateway
        for sample in ramp("p1", t0, range(200)):
            await run.monitor.ingest(sample)
        for sample in p2[:200]:
            source.queue.put_nowait(sample)
        await until_count(run.sink, "samples_in", 200)
        await until(lambda: gateway.buffered == 0, gateway.counted, what="gateway idle")
        await anna.wait_for(lambda a: bool(a.on("/state")), what="a state before the outage")
        assert anna.on("/alerts") == []

        broker.stop()
        # during the outage: p1 heats up (alerts raised now), p2 samples keep coming
        for sample in ramp("p1", t0, range(200, 300)):
            await run.monitor.ingest(sample)
        for sample in p2[200:]:
            source.queue.put_nowait(sample)
        await until(
            lambda: gateway.counters.get("buffered", 0) == len(p2),
            gateway.counted,
            what="gateway took all samples",
        )
        assert run.sink.pending_alerts == 2, "caution and cool-down wait in the outbox"
        assert gateway.buffered > 0

        broker.start()
        await anna.wait_for(lambda a: len(a.on("/alerts")) >= 2, what="alerts after restart")
        await until_count(run.sink, "samples_in", len(p2))
        current = run.monitor.state("p1")
        assert current is not None
        await anna.wait_for(
            lambda a: a.on("/state")[-1].json()["time"] == iso_utc(current.time),
            what="the current state after the restart",
        )
        alerts = [m.json() for m in anna.on("/alerts")]
        assert [a["level"] for a in alerts] == ["caution", "cool_down"]
        assert len({a["id"] for a in alerts}) == 2
        assert all(a["time"] > iso_utc(t0 + 200) for a in alerts), "raised during the outage"
        assert anna.on("/state")[-1].json()["level"] == "cool_down"
        assert run.sink.pending_alerts == 0
        assert run.sink.counters["alerts_published"] == 2
        # every gateway sample arrived exactly once
        assert run.sink.counters["samples_in"] == len(p2)
        assert gateway.buffered == 0
        assert run.monitor.counters.get("flag.duplicate", 0) == 0
        assert run.monitor.counters.get("flag.out_of_order", 0) == 0
        assert run.sink.counters["connects"] >= 2
        gw_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gw_task
