"""``heatmon demo``: the whole pipeline with embedded defaults.

Four simulated patients (one per scenario) exercise on a clock that runs faster than the
wall clock; their vitals flow through the engine; a live terminal view shows each patient's
level, and simulated patients heed "cool down now" the way a person would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from pydantic import SecretStr
from rich.console import Console, Group
from rich.live import Live
from rich.logging import RichHandler
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from adapters.ble.demo import DemoWearables
from adapters.simulator import (
    SCENARIOS,
    SimulatedPatient,
    SimulatedPatientOptions,
    SimulatorOptions,
    SimulatorSource,
)
from monitor.config import EngineConfig
from monitor.engine import MonitorEngine
from monitor.model import Event, EventKind, Level, Quality, ThermalState
from monitor.mqtt.localbroker import local_mosquitto
from monitor.mqtt.options import MqttOptions
from monitor.mqtt.sink import MqttSink
from monitor.plugins import PluginContext, Sink, Source
from monitor.profile import HeatSensitivity, PatientProfile
from monitor.service import Monitor
from monitor.storage.localserver import local_influxdb
from monitor.storage.options import InfluxOptions
from monitor.storage.sink import InfluxSink
from monitor.web.config import HistoryConfig
from monitor.web.demo import DemoUser, demo_dashboard, demo_links
from monitor.web.sink import WebSink

log = logging.getLogger(__name__)

DISCLAIMER = "heatmon is not a medical device. Thresholds and advice must be set with a clinician."


DEMO_DATA_DIR = Path("var") / "demo"
"""The demo's InfluxDB data and spool (kept between runs)."""


@dataclass(frozen=True, slots=True)
class DemoPatient:
    id: str
    display_name: str
    scenario: str
    age: int


DEMO_PATIENTS: tuple[DemoPatient, ...] = (
    DemoPatient("p-ana", "Ana", "hot_day_aerobic", 41),
    DemoPatient("p-ben", "Ben", "cool_gym_strength", 45),
    DemoPatient("p-cas", "Cas", "intervals", 38),
    DemoPatient("p-dia", "Dia", "heat_sensitive", 52),
)

LEVEL_STYLE: Mapping[Level, str] = MappingProxyType(
    {
        Level.OK: "bold green",
        Level.CAUTION: "bold yellow",
        Level.COOL_DOWN: "bold white on red",
    }
)
LEVEL_TEXT: Mapping[Level, str] = MappingProxyType(
    {
        Level.OK: "ok",
        Level.CAUTION: "getting warm",
        Level.COOL_DOWN: "COOL DOWN NOW",
    }
)


def demo_profiles() -> dict[str, PatientProfile]:
    """The demo patients; whoever sweats less in the simulation has it in the profile, and
    each profile names the patient's activity (as docker/heatmon/heatmon.toml does)."""
    return {
        p.id: PatientProfile(
            id=p.id,
            display_name=p.display_name,
            age=p.age,
            activity=SCENARIOS[p.scenario].activity,
            heat_sensitivity=HeatSensitivity.IMPAIRED_SWEATING
            if SCENARIOS[p.scenario].sweat_capacity < 1.0
            else HeatSensitivity.NONE,
        )
        for p in DEMO_PATIENTS
    }


class TerminalView:
    """Keeps the latest state and message of each patient and renders them as a table."""

    def __init__(
        self, *, profiles: Mapping[str, PatientProfile], speed: float, print_events: bool = False
    ) -> None:
        self._print_events = print_events
        self._profiles = profiles
        self._speed = speed
        self._states: dict[str, ThermalState] = {}
        self._messages: dict[str, str] = {}
        self._log: list[str] = []

    def __call__(self, item: ThermalState | Event) -> None:
        if isinstance(item, ThermalState):
            self._states[item.patient] = item
            return
        if item.kind is not EventKind.QUALITY or item.quality is not Quality.GOOD:
            self._messages[item.patient] = item.message
        stamp = time.strftime("%H:%M:%S", time.gmtime(item.time))
        line = f"{stamp} {item.patient}: {item.message}"
        self._log.append(line)
        del self._log[:-6]
        if self._print_events:
            print(line, flush=True)

    def render(self) -> Group:
        table = Table(expand=True, title=f"heatmon demo — simulated time ×{self._speed:g}")
        for col in ("patient", "level", "heart rate", "skin", "core rise", "to limit", "data"):
            table.add_column(col)
        table.add_column("message", ratio=3)
        for pid in sorted(self._profiles):
            s = self._states.get(pid)
            name = self._profiles[pid].display_name or pid
            if s is None:
                table.add_row(name, "…", "", "", "", "", "no data", "")
                continue
            table.add_row(
                name,
                Text(LEVEL_TEXT[s.level], style=LEVEL_STYLE[s.level]),
                f"{s.heart_rate_bpm:.0f} bpm" if s.heart_rate_bpm is not None else "–",
                f"{s.skin_temp_c:.1f} °C" if s.skin_temp_c is not None else "–",
                f"+{s.core_delta_c:.2f} ± {s.core_temp_sd_c:.2f} °C",
                f"{s.minutes_to_threshold:.0f} min" if s.minutes_to_threshold else "–",
                s.quality.value,
                self._messages.get(pid, ""),
            )
        events = Text("\n".join(self._log) or "(no alerts yet)", style="dim")
        return Group(table, Panel(events, title="alerts"), Text(DISCLAIMER, style="italic"))


async def run_demo(
    *,
    speed: float,
    duration_s: float | None,
    live: bool,
    wearables: bool = True,
    web_port: int | None = None,
    data_dir: Path = DEMO_DATA_DIR,
) -> Monitor:
    """Run the demo. With ``wearables`` (the default) the simulated patients wear virtual
    Bluetooth wearables (bumble GATT servers) read by the ``ble`` source through bleak;
    without, the simulator feeds the engine directly. Everything is stored to a local
    InfluxDB when one is present (see :func:`monitor.storage.localserver.local_influxdb`).
    With ``web_port`` (0: any free port) the live dashboard is served too (its history view
    reading that InfluxDB) and its URLs are printed. Local state (InfluxDB data, spool,
    MQTT outbox) lives in ``data_dir``."""
    context = PluginContext(config=None, instance="demo")
    stop = asyncio.Event()
    # Signals are handled for the whole run, shutdown included: the servers (in their own
    # process groups, so Ctrl-C does not reach them) stop last, after the sinks drained.
    with stop_on_signals(stop):
        return await _run_with_servers(
            speed=speed,
            duration_s=duration_s,
            live=live,
            wearables=wearables,
            web_port=web_port,
            data_dir=data_dir,
            context=context,
            stop=stop,
        )


async def _run_with_servers(
    *,
    speed: float,
    duration_s: float | None,
    live: bool,
    wearables: bool,
    web_port: int | None,
    data_dir: Path,
    context: PluginContext,
    stop: asyncio.Event,
) -> Monitor:
    async with (
        local_influxdb(data_dir / "influxdb") as influx_url,
        local_mosquitto(data_dir / "mosquitto") as broker,
    ):
        sinks: list[Sink] = []
        if broker is not None:
            sinks.append(
                MqttSink(
                    options=MqttOptions(
                        host=broker.host,
                        port=broker.port,
                        username=broker.monitor_user,
                        password=SecretStr(broker.monitor_password),
                        homeassistant=True,
                    ),
                    instance="demo",
                    context=context,
                    outbox_path=data_dir / "mqtt-outbox.sqlite",
                    known_patients=tuple(p.id for p in DEMO_PATIENTS),
                )
            )
            print(
                "MQTT (live state and alerts): mosquitto_sub -h 127.0.0.1 "
                f"-p {broker.port} -u {broker.viewer_user} -P {broker.viewer_password} "
                "-t 'heatmon/v1/#' -v",
                flush=True,
            )
        if influx_url is not None:
            options = InfluxOptions(url=influx_url, database="heatmon")
            sinks.append(InfluxSink(options=options, data_dir=data_dir / "influx-sink"))
        web = None
        if web_port is not None:
            history = HistoryConfig(url=influx_url or "", database="heatmon")
            web = demo_dashboard(demo_profiles(), port=web_port, history=history)
            sinks.append(web[0])
        return await _run_demo(
            speed=speed,
            duration_s=duration_s,
            live=live,
            wearables=wearables,
            sinks=sinks,
            web=web,
            context=context,
            stop=stop,
        )


async def _run_demo(
    *,
    speed: float,
    duration_s: float | None,
    live: bool,
    wearables: bool,
    sinks: list[Sink],
    web: tuple[WebSink, DemoUser] | None = None,
    context: PluginContext | None = None,
    stop: asyncio.Event | None = None,
) -> Monitor:
    profiles = demo_profiles()
    start_wall = time.time()

    def clock() -> float:
        return start_wall + (time.time() - start_wall) * speed

    patients: Mapping[str, SimulatedPatient]
    source: Source
    kit: DemoWearables | None = None
    if wearables:
        patients = {
            p.id: SimulatedPatient(scenario=SCENARIOS[p.scenario], seed=n)
            for n, p in enumerate(DEMO_PATIENTS)
        }
        kit = DemoWearables(
            patients={pid: sim.step for pid, sim in patients.items()},
            speed=speed,
            clock=clock,
            on_gap=lambda patient, device, start, end: monitor.report_gap(
                patient, device, start=start, end=end
            ),
        )
        source = kit.source
    else:
        simulator = SimulatorSource(
            options=SimulatorOptions(
                speed=speed,
                patients=tuple(
                    SimulatedPatientOptions(patient=p.id, scenario=p.scenario, seed=n)
                    for n, p in enumerate(DEMO_PATIENTS)
                ),
            ),
        )
        patients, source = simulator.patients, simulator
    engine = MonitorEngine(profiles=profiles, config=EngineConfig())
    monitor = Monitor(engine=engine, sources=[source], sinks=sinks, clock=clock)
    if context is not None:
        context.monitor = monitor
    if web is not None:
        web[0].attach(monitor)
    view = TerminalView(profiles=profiles, speed=speed, print_events=not live)
    monitor.add_listener(view)

    def heed(item: ThermalState | Event) -> None:
        if isinstance(item, Event) and item.level is Level.COOL_DOWN and item.requires_ack:
            sim = patients.get(item.patient)
            if sim is not None:
                sim.heed_cool_down()

    monitor.add_listener(heed)
    stop = stop or asyncio.Event()
    async with (
        kit if kit is not None else contextlib.nullcontext(),
        monitor,
    ):
        if web is not None:
            print(demo_links(*web), flush=True)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        live_ctx = Live(view.render(), refresh_per_second=4) if live else None
        with (
            live_ctx if live_ctx is not None else contextlib.nullcontext(),
            logs_through(live_ctx.console) if live_ctx is not None else contextlib.nullcontext(),
        ):
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.25):
                        await stop.wait()
                if live_ctx is not None:
                    live_ctx.update(view.render())
        if stop.is_set():
            log.info("stopping: the sinks deliver what they hold, then the local servers stop")
    return monitor


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM set ``stop``: the demo leaves its loop and shuts down in
    order (sources, sinks drained, then the local servers). A second Ctrl-C cancels."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def on_signal() -> None:
        if stop.is_set() and main is not None:
            main.cancel()
        stop.set()

    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
        except (NotImplementedError, RuntimeError):
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


@contextlib.contextmanager
def logs_through(console: Console) -> Iterator[None]:
    """Route every log line through ``console`` (the live view's), so log lines print above
    the view instead of tearing through it; the previous handlers come back afterwards."""
    root = logging.getLogger()
    handler = RichHandler(console=console, show_path=False, markup=False)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    saved = list(root.handlers)
    for h in saved:
        root.removeHandler(h)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for h in saved:
            root.addHandler(h)
