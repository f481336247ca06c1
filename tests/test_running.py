"""The guards around sinks, the ticker and supervised tasks (monitor/running.py), seen from
outside: what the other sinks still get, what the log says, what /healthz and the MQTT status
topic say."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import aiohttp
import pytest

from adapters.simulator import SimulatedPatientOptions, SimulatorOptions, SimulatorSource
from monitor.engine import MonitorEngine, StepResult
from monitor.model import Event, Sample, SampleFlag, SampleKind, SessionRecord, ThermalState
from monitor.mqtt.sink import MqttSink
from monitor.plugins import PluginContext, Sink
from monitor.profile import PatientProfile
from monitor.running import RECENT_S, Health
from monitor.service import Monitor
from monitor.sinks import JsonlEventSink
from monitor.storage.options import InfluxOptions
from monitor.storage.sink import InfluxSink
from monitor.web.demo import DemoUser, demo_web_config
from monitor.web.sink import WebSink
from tests.fixtures.influxdb import InfluxDatabase
from tests.fixtures.mosquitto import BrokerFactory
from tests.mqtt_helpers import Listener, options, start_broker
from tests.test_service import Collect

START = 1_750_000_000.0


def simulator(speed: float = 200.0) -> SimulatorSource:
    return SimulatorSource(
        options=SimulatorOptions(
            speed=speed,
            interval_s=1.0,
            patients=(SimulatedPatientOptions(patient="p1", scenario="hot_day_aerobic"),),
        ),
        start_time=START,
    )


class Boom(Sink):
    """A sink with a bug: every ``submit_*`` raises."""

    name = "boom"

    def __init__(self) -> None:
        self.calls = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        return cls()

    def submit_sample(self, sample: Sample, flag: SampleFlag) -> None:
        self.calls += 1
        raise KeyError("a bug in a sink")

    def submit_state(self, state: ThermalState) -> None:
        self.calls += 1
        raise ZeroDivisionError("another bug")


class DyingTask(Sink):
    """A sink whose delivery task dies once (the second start's task keeps running)."""

    name = "dying"

    def __init__(self) -> None:
        self.starts = 0
        self.stops = 0
        self.restarted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        return cls()

    async def start(self) -> None:
        self.starts += 1
        self._task = asyncio.create_task(self._deliver())

    async def stop(self) -> None:
        self.stops += 1
        if self._task is not None:
            self._task.cancel()

    async def _deliver(self) -> None:
        if self.starts == 1:
            raise OSError("delivery lost its disk")
        self.restarted.set()
        await asyncio.Event().wait()


class BrokenClockEngine(MonitorEngine):
    """The real engine, but ``advance`` raises the first ``failures`` times (a bug)."""

    def __init__(self, *, failures: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures = failures
        self.advanced = 0
        self.ticking = asyncio.Event()

    def advance(self, now: float) -> StepResult:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("clock bug")
        self.advanced += 1
        if self.advanced >= 2:
            self.ticking.set()
        return super().advance(now)


async def wait_until(predicate: Callable[[], bool], *, timeout_s: float = 30.0) -> None:
    """Poll ``predicate`` (a sink double has no event to wait on) for at most ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if predicate():
            return
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_raising_sink_is_isolated_counted_and_logged_once_per_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    boom, good = Boom(), Collect()
    engine = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
    caplog.set_level(logging.ERROR, logger="monitor.running")
    async with Monitor(engine=engine, sources=[simulator()], sinks=[boom, good]) as monitor:
        await wait_until(lambda: len(good.samples) > 300 and len(good.states) > 3)
        health = monitor.health()
    # The good sink got everything the engine produced, and the engine kept going.
    assert boom.calls >= len(good.samples) + len(good.states) - 50
    assert health["status"] == "degraded" and health["failing"] == ["sink.boom"]
    assert health["components"]["sink.boom"]["errors"] >= 300
    assert health["components"]["sink.boom"]["last_error"] in {
        "KeyError in submit_sample",
        "ZeroDivisionError in submit_state",
    }
    assert "a bug in a sink" not in json.dumps(health), "no exception text in the health"
    logged = [r.getMessage() for r in caplog.records if "sink boom raised" in r.getMessage()]
    assert sorted(logged) == [
        "sink boom raised KeyError in submit_sample; isolated (further errors of this kind "
        "are counted, not logged)",
        "sink boom raised ZeroDivisionError in submit_state; isolated (further errors of "
        "this kind are counted, not logged)",
    ]


async def test_a_sink_whose_task_dies_is_restarted() -> None:
    dying, good = DyingTask(), Collect()
    engine = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
    async with Monitor(engine=engine, sources=[simulator()], sinks=[dying, good]) as monitor:
        async with asyncio.timeout(30):
            await dying.restarted.wait()
        component = monitor.health()["components"]["sink.dying"]
        n = len(good.samples)
        await wait_until(lambda: len(good.samples) > n + 50)
    assert dying.starts == 2 and dying.stops == 2
    assert component["restarts"] == 1
    assert component["last_error"].startswith("OSError in task")


async def test_the_ticker_is_restarted_and_its_failure_shows_on_healthz() -> None:
    engine = BrokenClockEngine(failures=3, profiles={"p1": PatientProfile(id="p1")})
    web = WebSink(config=demo_web_config([DemoUser("carol", "a long passphrase", ("p1",))]))
    monitor = Monitor(engine=engine, sinks=[web], tick_s=0.05)
    web.attach(monitor)
    async with monitor, aiohttp.ClientSession() as http:
        # The first three ticks raise: the ticker is down for its backoff delays (~3.5 s).
        await wait_until(lambda: monitor.health()["components"]["ticker"]["errors"] == 1)
        async with http.get(f"{web.base_url}/healthz") as resp:
            body = await resp.json()
            status = resp.status
        async with asyncio.timeout(30):
            await engine.ticking.wait()
        async with http.get(f"{web.base_url}/healthz") as resp:
            after = await resp.json()
            after_status = resp.status
    assert status == 503 and body["status"] == "degraded" and "ticker" in body["failing"]
    assert body["components"]["ticker"]["last_error"] == "RuntimeError in task"
    assert after_status == 200
    # Ticking again; the failure stays visible (a recent error) with its count and restart.
    assert engine.advanced >= 2
    assert after["components"]["ticker"]["restarts"] == 3
    assert after["components"]["ticker"]["errors"] == 3


async def test_health_is_published_on_the_mqtt_status_topic(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str
) -> None:
    broker = start_broker(mosquitto_factory, mqtt_prefix)
    context = PluginContext(config=None, instance="m1")
    mqtt = MqttSink(
        options=options(broker, mqtt_prefix, "heatmon"),
        instance="m1",
        context=context,
        known_patients=("p1",),
    )
    boom = Boom()
    engine = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
    monitor = Monitor(engine=engine, sinks=[mqtt, boom], tick_s=3600.0)
    context.monitor = monitor
    status = f"{mqtt_prefix}/monitors/m1/status"
    async with (
        Listener(broker, user="anna", topics=[status], identifier="anna") as anna,
        monitor,
    ):
        await anna.wait_for(
            lambda a: any(m.json().get("health") == "ok" for m in a.messages),
            what="online and ok",
        )
        await monitor.ingest(Sample("p1", SampleKind.HEART_RATE, 80.0, START))
        await anna.wait_for(
            lambda a: a.messages[-1].json().get("health") == "degraded",
            what="degraded",
        )
        last = anna.messages[-1].json()
    assert last["status"] == "online" and last["failing"] == ["sink.boom"]


async def test_jsonl_sink_does_not_write_inside_submit(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "events.jsonl"
    sink = JsonlEventSink(path=path)
    engine = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
    async with Monitor(engine=engine, sinks=[sink], tick_s=3600.0) as monitor:
        report = monitor.report_symptom("p1", time=START, note="tingling")
        # Queued, not yet written: submit_* returned without touching the file.
        assert sink.pending == 1
        assert path.read_text(encoding="utf-8") == ""
        await wait_until(lambda: sink.pending == 0)
        assert json.loads(path.read_text(encoding="utf-8"))["note"] == "tingling"
        for n in range(200):
            monitor.report_symptom("p1", time=START + n, note=f"n{n}")
    # stop() drained what was queued.
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 201 and json.loads(lines[-1])["note"] == "n199"
    assert report.note == "tingling"


async def test_jsonl_sink_keeps_lines_when_writing_fails_and_the_service_restarts_it(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "audit"
    sink = JsonlEventSink(path=directory / "events.jsonl")
    engine = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
    async with Monitor(engine=engine, sinks=[sink], tick_s=3600.0) as monitor:
        sink._file.close()  # type: ignore[union-attr]  # the disk goes away under the sink
        monitor.report_symptom("p1", time=START, note="kept")
        await wait_until(lambda: monitor.health()["components"]["sink.jsonl"]["restarts"] == 1)
        await wait_until(lambda: sink.pending == 0)
    assert json.loads((directory / "events.jsonl").read_text(encoding="utf-8"))["note"] == "kept"


def test_health_reports_a_failure_for_a_minute_then_ok_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    health = Health(clock=lambda: now[0])
    seen: list[dict[str, Any]] = []
    health.add_listener(seen.append)
    health.component("ticker")
    assert health.failed("sink.influxdb", "submit_state", ValueError("x")) is True
    assert health.failed("sink.influxdb", "submit_state", ValueError("y")) is False
    assert health.failed("sink.influxdb", "submit_event", ValueError("z")) is True
    assert [s["failing"] for s in seen] == [["sink.influxdb"]]
    now[0] += RECENT_S - 1
    health.check()
    assert health.summary()["status"] == "degraded"
    caplog.set_level(logging.INFO, logger="monitor.running")
    now[0] += 2
    health.check()
    assert seen[-1] == health.summary() and seen[-1]["status"] == "ok"
    assert seen[-1]["components"]["sink.influxdb"]["errors"] == 3
    assert "sink.influxdb ok again (3 errors, 0 restarts so far)" in caplog.text


class BoomOnEvents(Sink):
    """A sink with a bug in ``submit_event`` (what the ticker's stale-data events reach)."""

    name = "boom-events"

    def __init__(self) -> None:
        self.calls = 0

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        return cls()

    def submit_event(self, event: Event) -> None:
        self.calls += 1
        raise RuntimeError("bug")


async def test_a_sink_raising_on_the_tickers_events_does_not_stop_the_clock() -> None:
    now = [START]
    boom, good = BoomOnEvents(), Collect()
    engine = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
    async with Monitor(
        engine=engine, sinks=[boom, good], clock=lambda: now[0], tick_s=0.02
    ) as monitor:
        for t in range(0, 200, 2):
            await monitor.ingest(Sample("p1", SampleKind.HEART_RATE, 80.0, START + t))
        now[0] = START + 260  # readings stopped: the ticker finds the data stale
        await wait_until(lambda: boom.calls >= 1 and any(e.patient == "p1" for e in good.events))
        now[0] = START + 200 + 20 * 60  # 20 min of silence: the ticker ends the session
        await wait_until(
            lambda: any(isinstance(r, SessionRecord) and r.stop is not None for r in good.records)
        )
        health = monitor.health()
    assert health["components"]["ticker"]["errors"] == 0
    assert health["failing"] == ["sink.boom-events"]


async def test_the_influxdb_sink_whose_flusher_dies_is_restarted_and_loses_nothing(
    influx_db: InfluxDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the real InfluxDB sink's flusher raises once (as a bug or a full disk
    would). The guard restarts the sink; every sample still reaches the real InfluxDB once."""
    flushes = [0]
    real_flush_loop = InfluxSink._flush_loop

    async def flush_loop_failing_once(self: InfluxSink) -> None:
        flushes[0] += 1
        if flushes[0] == 1:
            await asyncio.sleep(0.2)
            raise OSError("no space left on device")
        await real_flush_loop(self)

    monkeypatch.setattr(InfluxSink, "_flush_loop", flush_loop_failing_once)
    options = InfluxOptions.model_validate(
        {"url": influx_db.url, "database": influx_db.name, "flush_interval_s": 0.05}
    )
    sink = InfluxSink(options=options, data_dir=tmp_path / "influx-sink")
    engine = MonitorEngine(profiles={"p1": PatientProfile(id="p1")})
    async with Monitor(engine=engine, sinks=[sink], tick_s=3600.0) as monitor:
        for t in range(300):
            await monitor.ingest(Sample("p1", SampleKind.HEART_RATE, 70.0 + t % 7, START + t))
            await asyncio.sleep(0.002)
        await wait_until(lambda: monitor.health()["components"]["sink.influxdb"]["restarts"] == 1)
        await wait_until(lambda: not monitor.health()["components"]["sink.influxdb"]["down"])
        assert await sink.drain(timeout_s=30)
        component = monitor.health()["components"]["sink.influxdb"]
    assert component["last_error"] in {"OSError in stop", "OSError in task influxdb-flush"}
    series = influx_db.query("SELECT count(value) FROM vitals WHERE patient = 'p1'")
    assert series[0]["values"][0][1] == 300
    assert flushes[0] == 2
