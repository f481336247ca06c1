"""Sources and sinks: small interfaces, chosen by name from configuration.

Like Telegraf's inputs and outputs, each plugin is self-contained: it validates its own
options (``from_options``), has its own section in the README and a sample block in
``heatmon.sample.toml``. The names are registered below, in one immutable table; the
module is only imported when a configuration names it.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Protocol, Self, TypeVar

from pydantic import BaseModel, ValidationError

from monitor.errors import ConfigError
from monitor.model import (
    Acknowledgement,
    Event,
    Sample,
    SampleFlag,
    SessionRecord,
    SymptomReport,
    ThermalState,
)

Emit = Callable[[Sample], Awaitable[None]]
"""What a source calls for every sample it produces."""

OptionsT = TypeVar("OptionsT", bound=BaseModel)


def validate_options(
    model: type[OptionsT],
    options: Mapping[str, Any],
    *,
    section: str,
    ignore: Sequence[str] = (),
) -> OptionsT:
    """The one way a plugin validates its options: ``model`` (a pydantic model, its bounds in
    its fields) checks them, and every problem is named by its key, as ``section.key:
    message``, in one :class:`ConfigError`. ``ignore``: keys the service itself uses."""
    try:
        return model.model_validate({k: v for k, v in options.items() if k not in ignore})
    except ValidationError as err:
        known = ", ".join(sorted(model.model_fields))
        problems = "; ".join(
            f"{section}.{'.'.join(str(p) for p in e['loc']) or '(options)'}: {e['msg']}"
            + (f" (known: {known})" if e["type"] == "extra_forbidden" else "")
            for e in err.errors()
        )
        raise ConfigError(problems) from err


class Source(abc.ABC):
    """Produces samples until cancelled. Bad input is counted and logged, never raised."""

    name: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        """Validate this plugin's options; raise :class:`ConfigError` naming the key."""

    @abc.abstractmethod
    async def run(self, emit: Emit) -> None:
        """Produce samples through ``emit`` until cancelled."""


class Sink(abc.ABC):
    """Receives everything the engine produces. ``submit_*`` never block and never raise:
    a sink queues what it gets and delivers it from its own task, so the engine and the
    alerts never wait on an output. The service wraps every sink in
    :class:`monitor.running.RunningSink`, so a sink that raises anyway is counted, logged
    once per kind of error and isolated, and a task it started that dies gets it restarted."""

    name: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        """Validate this plugin's options; raise :class:`ConfigError` naming the key."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect and start the delivery task."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Flush what can be flushed, persist the rest, and stop."""

    def submit_sample(self, sample: Sample, flag: SampleFlag) -> None:  # noqa: B027
        """A raw sample with the quality flag the engine gave it."""

    def submit_samples(self, samples: Sequence[Sample], flags: Sequence[SampleFlag]) -> None:
        """A batch of raw samples (one gateway message), each with its flag; by default
        :meth:`submit_sample` for each. A sink that can take a batch at once (storage)
        overrides this."""
        for sample, flag in zip(samples, flags, strict=True):
            self.submit_sample(sample, flag)

    def submit_state(self, state: ThermalState) -> None:  # noqa: B027
        """A derived thermal state (one per engine step)."""

    def submit_event(self, event: Event) -> None:  # noqa: B027
        """An alert level change, a recovery, a quality change."""

    def submit_record(self, record: SymptomReport | Acknowledgement | SessionRecord) -> None:  # noqa: B027
        """A symptom report, an acknowledgement, or a session opened/closed."""

    def submit_health(self, summary: Mapping[str, Any]) -> None:  # noqa: B027
        """The service's health changed (:meth:`monitor.running.Health.summary`): a sink
        with a status channel (MQTT) publishes it."""


class MonitorControl(Protocol):
    """What a plugin may call on the running service (:class:`monitor.service.Monitor`)."""

    async def ingest(self, sample: Sample) -> None: ...

    async def ingest_batch(self, samples: Sequence[Sample]) -> None: ...

    def acknowledge(
        self, patient: str, event_id: str, *, by: str, time: float
    ) -> Acknowledgement: ...

    def report_symptom(self, patient: str, *, time: float, note: str = "") -> SymptomReport: ...

    def state(self, patient: str) -> ThermalState | None: ...

    def open_alerts(self, patient: str) -> list[Event]: ...

    def report_gap(self, patient: str, device: str, *, start: float, end: float) -> None: ...

    def health(self) -> Mapping[str, Any]: ...


class PluginContext:
    """What a plugin may know about the rest of the service: the configuration, the instance
    name, and (once the service is built) the :class:`monitor.service.Monitor`, through which
    a plugin with an input side (acknowledgements, symptom reports, gateway samples) calls
    back."""

    __slots__ = ("config", "instance", "monitor")

    def __init__(
        self, *, config: Any, instance: str, monitor: MonitorControl | None = None
    ) -> None:
        self.config = config
        self.instance = instance
        self.monitor = monitor


SOURCES: Mapping[str, str] = MappingProxyType(
    {
        "simulator": "adapters.simulator:SimulatorSource",
        "ble": "adapters.ble.source:BleSource",
    }
)
SINKS: Mapping[str, str] = MappingProxyType(
    {
        "influxdb": "monitor.storage.sink:InfluxSink",
        "jsonl": "monitor.sinks:JsonlEventSink",
        "mqtt": "monitor.mqtt.sink:MqttSink",
        "thresholds": "monitor.thresholds.learner:ThresholdLearner",
        "web": "monitor.web.sink:WebSink",
    }
)


def _load(table: Mapping[str, str], kind: str, name: str) -> type[Any]:
    try:
        target = table[name]
    except KeyError:
        known = ", ".join(sorted(table))
        raise ConfigError(f"{kind}s.{name}: unknown {kind} {name!r}; known: {known}") from None
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Any] = getattr(module, attr)
    return cls


def source_class(name: str) -> type[Source]:
    return _load(SOURCES, "source", name)


def sink_class(name: str) -> type[Sink]:
    return _load(SINKS, "sink", name)
