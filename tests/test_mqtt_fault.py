"""Fault test: Mosquitto restarts while samples flow through a gateway, and alerts are
raised while it is down. The alerts arrive once after the restart, the retained state is
current, the gateway's buffered samples all arrive, and nothing is used twice."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiomqtt
import pytest

from monitor.model import Sample, SampleKind, iso_utc
from monitor.mqtt import alerts as alerts_module
from monitor.mqtt import payloads
from monitor.mqtt.gateway import Gateway
from tests.fixtures.mosquitto import BrokerFactory
from tests.mqtt_helpers import (
    PASSWORDS,
    Listener,
    QueueSource,
    options,
    ramp,
    running_monitor,
    start_broker,
    start_time,
    until,
    until_count,
)

pytestmark = pytest.mark.slow

FEED_STEP_S = 0.005
"""Wall-clock seconds between two steps of the p2 wearable (2 samples a step)."""


async def test_broker_restart_alert_raised_during_outage_arrives_once(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str
) -> None:
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    t0 = start_time()
    source = QueueSource()
    fed: list[Sample] = []
    keep_feeding = asyncio.Event()
    keep_feeding.set()

    async def wearable_p2() -> None:
        """p2 at rest, 2 samples a step, paced like a wearable, until told to stop."""
        i = 0
        while keep_feeding.is_set():
            for kind, value in ((SampleKind.HEART_RATE, 70.0), (SampleKind.CORE_TEMP, 37.0)):
                sample = Sample("p2", kind, value, t0 + i, "gw-dev", "test")
                fed.append(sample)
                source.queue.put_nowait(sample)
            i += 1
            await asyncio.sleep(FEED_STEP_S)

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
        feeder = asyncio.create_task(wearable_p2())
        # before the outage: p1 from a local wearable, p2 flowing through the gateway
        for sample in ramp("p1", t0, range(200)):
            await run.monitor.ingest(sample)
        await until_count(run.sink, "samples_in", 100)
        await anna.wait_for(lambda a: bool(a.on("/state")), what="a state before the outage")
        assert anna.on("/alerts") == []

        broker.stop()
        # during the outage: p1 heats up (both alerts raised now), p2 samples keep coming
        for sample in ramp("p1", t0, range(200, 300)):
            await run.monitor.ingest(sample)
        assert run.sink.pending_alerts == 2, "caution and cool-down wait in the outbox"
        await until(lambda: gateway.buffered >= 50, gateway.counted, what="gateway buffering")
        taken_before_restart = run.sink.counters["samples_in"]

        broker.start()
        assert not feeder.done(), "samples flow across the restart"
        # after the restart, p2 keeps flowing and p1 goes on (the state moves on)
        await until_count(run.sink, "samples_in", taken_before_restart + 100)
        for sample in ramp("p1", t0, range(300, 320)):
            await run.monitor.ingest(sample)
        keep_feeding.clear()
        await feeder
        await anna.wait_for(lambda a: len(a.on("/alerts")) >= 2, what="alerts after restart")
        await until(lambda: gateway.buffered == 0, gateway.counted, what="gateway drained")
        await until_count(run.sink, "samples_in", len(fed))
        current = run.monitor.state("p1")
        assert current is not None and current.time >= t0 + 310
        await anna.wait_for(
            lambda a: a.on("/state")[-1].json()["time"] == iso_utc(current.time),
            what="the current state after the restart",
        )
        # the alerts arrived once each, raised during the outage
        alerts = [m.json() for m in anna.on("/alerts")]
        assert [a["level"] for a in alerts] == ["caution", "cool_down"]
        assert len({a["id"] for a in alerts}) == 2
        assert all(iso_utc(t0 + 200) < a["time"] < iso_utc(t0 + 300) for a in alerts)
        assert run.sink.pending_alerts == 0
        assert run.sink.counters["alerts_published"] == 2
        assert run.sink.counters["connects"] >= 2
        # a newcomer gets the current state (retained across the restart), not an old one
        async with Listener(
            broker, user="anna", topics=[f"{mqtt_prefix}/patients/p1/state"], identifier="late"
        ) as late:
            await late.wait_for(lambda x: bool(x.messages), what="retained state")
            assert late.messages[0].retain
            assert late.messages[0].json() == payloads.state_dict(current)
        # every p2 sample reached the engine; a copy QoS 1 re-sent after a lost PUBACK was
        # recognised and not used twice
        extra = run.sink.counters["samples_in"] - len(fed)
        assert extra >= 0
        assert extra == run.monitor.counters.get("flag.duplicate", 0) + run.monitor.counters.get(
            "flag.out_of_order", 0
        )
        session = run.monitor.engine.engine("p2")
        assert session.session is not None
        gw_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gw_task


async def test_heatmon_restart_keeps_its_session_and_its_outbox(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str, tmp_path: Path
) -> None:
    """heatmon stops while the broker is down with two alerts not yet sent; gateways go on
    publishing while heatmon is away. After both are back, the alerts (from the outbox on
    disk) arrive once, and the samples queued in heatmon's persistent session arrive."""
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    outbox = str(tmp_path / "outbox.sqlite")
    t0 = start_time()
    async with running_monitor(broker, mqtt_prefix, outbox_path=outbox) as first:
        broker.stop()
        for sample in ramp("p1", t0, range(300)):
            await first.monitor.ingest(sample)
        assert first.sink.pending_alerts == 2
    broker.start()
    late = list(ramp("p1", t0, range(300, 310)))
    async with (
        Listener(
            broker, user="anna", topics=[f"{mqtt_prefix}/patients/p1/alerts"], identifier="anna"
        ) as anna,
        aiomqtt.Client(broker.host, broker.port, username="gw-a", password=PASSWORDS["gw-a"]) as gw,
    ):
        for sample in late:
            await gw.publish(
                f"{mqtt_prefix}/patients/p1/samples", payloads.encode_sample(sample), qos=1
            )
        async with running_monitor(broker, mqtt_prefix, outbox_path=outbox) as second:
            await anna.wait_for(lambda a: len(a.on("/alerts")) >= 2, what="the kept alerts")
            await until_count(second.sink, "samples_in", len(late))
            await until(lambda: second.sink.pending_alerts == 0, second.sink.counted, what="sent")
            alerts = [m.json() for m in anna.on("/alerts")]
            assert [a["level"] for a in alerts] == ["caution", "cool_down"]
            assert len({a["id"] for a in alerts}) == 2
            assert second.sink.counters["samples_in"] == len(late)


async def test_a_broker_that_stops_answering_is_left_and_the_alerts_go_once_it_answers(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hung broker (the process frozen, its connection still open) never answers the
    alerts' PUBLISH: after ``PUBLISH_TIMEOUT_S`` without a PUBACK the sink leaves that
    connection and reconnects, and the alerts go once the broker answers again."""
    monkeypatch.setattr(alerts_module, "PUBLISH_TIMEOUT_S", 1.0)
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    t0 = start_time()
    topic = f"{mqtt_prefix}/patients/p1/alerts"
    async with (
        running_monitor(broker, mqtt_prefix) as run,
        Listener(broker, user="anna", topics=[topic], identifier="anna", persistent=True) as anna,
    ):
        for sample in ramp("p1", t0, range(200)):
            await run.monitor.ingest(sample)
        proc = broker._proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            for sample in ramp("p1", t0, range(200, 300)):
                await run.monitor.ingest(sample)
            assert run.sink.pending_alerts == 2
            await until_count(run.sink, "disconnects", 1)
            assert run.sink.pending_alerts == 2, "no PUBACK: both stay in the outbox"
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        await anna.wait_for(lambda a: len(a.on("/alerts")) >= 2, what="alerts after the hang")
        await until(lambda: run.sink.pending_alerts == 0, run.sink.counted, what="outbox empty")
        got = [m.json() for m in anna.on("/alerts")]
        assert {a["level"] for a in got} == {"caution", "cool_down"}
        assert len({a["id"] for a in got}) == 2  # QoS 1: a copy may come, never a third alert
