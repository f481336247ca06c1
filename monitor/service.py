"""The service: sources → engine → sinks, in one asyncio process.

:class:`Monitor` owns the pure engine, the sources (each in its own task, restarted with
backoff if it fails) and the sinks (which queue and deliver on their own, so the engine and
the alerts never wait on an output). Inputs that come back from people (acknowledgements,
symptom reports) enter through :meth:`Monitor.acknowledge` and :meth:`Monitor.report_symptom`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from monitor.config import HeatmonConfig
from monitor.engine import MonitorEngine, StepResult
from monitor.errors import ConfigError, HeatmonError, InputError, SinkError
from monitor.model import (
    Acknowledgement,
    Event,
    Sample,
    SampleFlag,
    SessionRecord,
    SymptomReport,
    ThermalState,
)
from monitor.plugins import PluginContext, Sink, Source, sink_class, source_class
from monitor.running import Health, RunningSink, Supervisor

log = logging.getLogger(__name__)

TICK_S = 1.0
"""How often the engine is told that time passes (stale data, session end)."""
MAX_OPEN_ALERTS = 50
"""Unacknowledged alerts kept per patient (the oldest go first)."""


class Monitor:
    """The running service. Use as ``async with Monitor(...) as monitor:``.

    Every sink is wrapped in a :class:`monitor.running.RunningSink` (what it raises is
    counted, logged once per kind and isolated); the ticker and every source run under a
    :class:`monitor.running.Supervisor` (restarted with backoff when they raise); failures
    show in :meth:`health` (``/healthz``) and go to every sink's ``submit_health`` (the MQTT
    status topic)."""

    def __init__(
        self,
        *,
        engine: MonitorEngine,
        sources: Sequence[Source] = (),
        sinks: Sequence[Sink] = (),
        clock: Callable[[], float] = time.time,
        tick_s: float = TICK_S,
    ) -> None:
        self.engine = engine
        self._sources = list(sources)
        self._health = Health()
        self._running = [RunningSink(sink, health=self._health) for sink in sinks]
        self._supervisor = Supervisor(health=self._health)
        self._clock = clock
        self._tick_s = tick_s
        self._started = False
        self._open_alerts: dict[str, dict[str, Event]] = {}
        self.counters: dict[str, int] = {}
        self._listeners: list[Callable[[ThermalState | Event], None]] = []
        self._listener_errors: set[str] = set()
        self._health.add_listener(self._publish_health)

    # -- lifetime ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        started: list[RunningSink] = []
        try:
            for running in self._running:
                try:
                    await running.start()
                except HeatmonError:
                    raise
                except Exception as err:
                    raise SinkError(
                        f"sinks.{running.name}: could not start "
                        f"({type(err).__name__}: {str(err)[:200]})",
                        action="drop",
                    ) from err
                started.append(running)
        except BaseException:
            for running in reversed(started):
                await running.stop()
            raise
        self._started = True
        self._health.component("ticker")
        self._supervisor.spawn("ticker", self._ticker)
        for source in self._sources:
            self._spawn_source(source)
        self._publish_health(self._health.summary())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._started = False
        await self._supervisor.stop()
        for result in self.engine.close():
            self._fan_out(result)
        for running in reversed(self._running):
            await running.stop()

    def _spawn_source(self, source: Source) -> None:
        name = f"source.{source.name}"
        self._health.component(name)

        def failed(err: BaseException) -> None:
            self._count(f"source_failures.{source.name}")

        self._supervisor.spawn(name, lambda: source.run(self.ingest), on_failure=failed)

    def add_source(self, source: Source) -> None:
        self._sources.append(source)
        if self._started:
            self._spawn_source(source)

    @property
    def sources(self) -> tuple[Source, ...]:
        return tuple(self._sources)

    @property
    def sinks(self) -> tuple[Sink, ...]:
        return tuple(r.sink for r in self._running)

    def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded", "failing": [...], "components": {...}}``."""
        return self._health.summary()

    def add_listener(self, listener: Callable[[ThermalState | Event], None]) -> None:
        """Call ``listener`` with every state and event (the terminal view uses this)."""
        self._listeners.append(listener)

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            self._fan_out(self.engine.advance(self._clock()))
            self._health.check()

    def _publish_health(self, summary: dict[str, Any]) -> None:
        if summary["status"] != "ok":
            log.warning("health: degraded (failing: %s)", ", ".join(summary["failing"]))
        for running in self._running:
            running.submit_health(summary)

    def _notify(self, item: ThermalState | Event) -> None:
        for listener in self._listeners:
            try:
                listener(item)
            except Exception as err:
                self._count("listener_errors")
                who = getattr(listener, "__qualname__", type(listener).__name__)
                kind = f"{who}:{type(err).__name__}"
                if kind not in self._listener_errors:
                    self._listener_errors.add(kind)
                    log.exception("listener %s failed (counted from now on)", kind)

    # -- inputs -----------------------------------------------------------------------

    async def ingest(self, sample: Sample) -> None:
        """Take one sample from any source. Never raises for bad input: counts it."""
        try:
            result = self.engine.ingest(sample)
        except InputError as err:
            self._count("rejected_samples")
            log.warning("sample rejected: %s", err.reason)
            return
        for running in self._running:
            running.submit_sample(sample, result.flag)
        if result.flag is not SampleFlag.OK:
            self._count(f"flag.{result.flag.value}")
        if result.states or result.events or result.records:
            self._fan_out(result)

    async def ingest_batch(self, samples: Sequence[Sample]) -> None:
        """Take a batch of samples (one gateway message) in one pass: the engine steps
        through them in order, every sink gets the batch at once (storage writes it as one
        block), then what they produced (states, alerts) fans out. Never raises for bad
        input: counts it."""
        taken: list[Sample] = []
        flags: list[SampleFlag] = []
        produced: list[StepResult] = []
        for sample, result in zip(samples, self.engine.ingest_batch(samples), strict=True):
            if isinstance(result, InputError):
                self._count("rejected_samples")
                log.warning("sample rejected: %s", result.reason)
                continue
            taken.append(sample)
            flags.append(result.flag)
            if result.flag is not SampleFlag.OK:
                self._count(f"flag.{result.flag.value}")
            if result.states or result.events or result.records:
                produced.append(result)
        if taken:
            for running in self._running:
                running.submit_samples(taken, flags)
        for result in produced:
            self._fan_out(result)

    def acknowledge(self, patient: str, event_id: str, *, by: str, time: float) -> Acknowledgement:
        """A caregiver acknowledged ``event_id``; raises :class:`InputError` if there is no
        such open alert for ``patient``."""
        alerts = self._open_alerts.get(patient, {})
        if event_id not in alerts:
            raise InputError(f"no open alert {event_id!r} for this patient", where="acknowledge")
        del alerts[event_id]
        ack = Acknowledgement(patient=patient, event_id=event_id, time=time, by=by)
        self._submit_record(ack)
        return ack

    def report_symptom(self, patient: str, *, time: float, note: str = "") -> SymptomReport:
        report = self.engine.report_symptom(patient, time=time, note=note)
        self._submit_record(report)
        return report

    def report_gap(self, patient: str, device: str, *, start: float, end: float) -> None:
        """A source lost ``device`` from ``start`` to ``end`` (and has it back): a
        data-quality event for the patient's caregivers and the store."""
        try:
            result = self.engine.engine(patient).note_gap(device, start=start, end=end)
        except InputError as err:
            log.warning("gap report rejected: %s", err.reason)
            return
        self._fan_out(result)

    async def durable(self) -> None:
        """Return once everything handed to the sinks so far is kept safely by every sink
        that keeps things on disk (a sink with a ``durable()`` coroutine: the InfluxDB
        spool): an input (an MQTT message) is acknowledged only then, so a crash can deliver
        it again but never lose it."""
        waits = [w() for s in self.sinks if (w := getattr(s, "durable", None)) is not None]
        if len(waits) == 1:  # the usual case: no task to make for it
            await waits[0]
        elif waits:
            await asyncio.gather(*waits)

    # -- outputs ----------------------------------------------------------------------

    def state(self, patient: str) -> ThermalState | None:
        return self.engine.state(patient)

    def open_alerts(self, patient: str) -> list[Event]:
        """Alerts that still need acknowledging, oldest first."""
        return list(self._open_alerts.get(patient, {}).values())

    def restore_open_alerts(self, patient: str, events: Sequence[Event]) -> None:
        """Alerts still waiting for acknowledgement, from a checkpoint (cluster mode)."""
        self._open_alerts[patient] = {e.id: e for e in events[-MAX_OPEN_ALERTS:]}

    def _fan_out(self, result: StepResult) -> None:
        for record in result.records:
            self._submit_record(record)
        for state in result.states:
            for running in self._running:
                running.submit_state(state)
            self._notify(state)
        for event in result.events:
            if event.requires_ack:
                alerts = self._open_alerts.setdefault(event.patient, {})
                alerts[event.id] = event
                while len(alerts) > MAX_OPEN_ALERTS:
                    del alerts[next(iter(alerts))]
            for running in self._running:
                running.submit_event(event)
            self._notify(event)

    def _submit_record(self, record: SymptomReport | Acknowledgement | SessionRecord) -> None:
        for running in self._running:
            running.submit_record(record)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1


def build_plugins(
    config: HeatmonConfig, *, instance: str | None = None
) -> tuple[list[Source], list[Sink], PluginContext]:
    """Instantiate the sources and sinks that ``config`` names, each validating its options."""
    context = PluginContext(config=config, instance=instance or config.monitor.instance)
    sources: list[Source] = []
    sinks: list[Sink] = []
    for name, opts in _enabled(config.sources, "sources"):
        sources.append(source_class(name).from_options(opts, context=context))
    for name, opts in _enabled(config.sinks, "sinks"):
        sinks.append(sink_class(name).from_options(opts, context=context))
    return sources, sinks, context


def _enabled(
    plugins: Mapping[str, Mapping[str, Any]], group: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each plugin not switched off with ``enabled = false``, with its options less that key."""
    for name, options in plugins.items():
        enabled = options.get("enabled", True)
        if isinstance(enabled, str) and enabled.lower() in ("true", "false"):
            enabled = enabled.lower() == "true"  # from HEATMON_<NAME>_ENABLED
        if not isinstance(enabled, bool):
            raise ConfigError(f"{group}.{name}.enabled must be true or false, not {enabled!r}")
        if enabled:
            yield name, {k: v for k, v in options.items() if k != "enabled"}


def build_monitor(config: HeatmonConfig) -> Monitor:
    """The service as ``config`` describes it (``heatmon run``)."""
    sources, sinks, context = build_plugins(config)
    engine = MonitorEngine(profiles={p.id: p for p in config.patients}, config=config.engine)
    monitor = Monitor(engine=engine, sources=sources, sinks=sinks)
    context.monitor = monitor
    return monitor


__all__ = ["HeatmonError", "Monitor", "build_monitor", "build_plugins"]
