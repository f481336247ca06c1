"""A simulated exerciser: heart rate, skin and core temperature that respond to workout
intensity, environment, sweating capacity and cooling.

This is heatmon's test and demo physiology. It is deliberately *not* the estimators' model:

* core temperature: heat production grows with intensity; heat loss grows with the rise over
  baseline, scaled by sweating capacity (about half of people with MS sweat less, Mulcare et
  al.) and by how much the air allows (hot, humid air removes less heat);
* skin temperature follows the air, falls with sweating during exercise and rises a little
  with core temperature, with a lag of minutes: it can fall while core rises;
* heart rate follows intensity with a lag of tens of seconds and drifts upward with core
  temperature (cardiovascular drift) and heat.

It must never be the only evidence that an estimator works: the estimators are also tested
against the published equations and hand-computed steps.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time as _time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, Self

from pydantic import ConfigDict, Field

from monitor.errors import ConfigError
from monitor.model import Sample, SampleKind
from monitor.plugins import Emit, PluginContext, Source, validate_options
from monitor.profile import Activity
from monitor.strict import StrictModel

log = logging.getLogger(__name__)

PRODUCTION_C_PER_MIN = 0.07
"""Core warming at full intensity before any heat loss (°C/min)."""
LOSS_PER_MIN = 0.05
"""Heat-loss rate constant for a normal sweater in neutral air (1/min)."""
SKIN_TAU_MIN = 4.0
SKIN_PER_AIR_C = 0.2
"""Resting skin temperature rises this much per °C of air above 25 °C."""
HR_TAU_UP_S = 25.0
HR_TAU_DOWN_S = 45.0
HR_DRIFT_BPM_PER_C = 15.0
HR_HEAT_BPM_PER_C = 0.4
"""Extra heart rate per °C of air above 26 °C."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Phase:
    duration_s: float
    intensity: float
    """Fraction of heart-rate reserve the effort demands, 0–1."""
    label: str
    cooling_c_per_min: float = 0.0
    """Active cooling (cold drinks, cooling vest), applied while core is above baseline."""
    set_s: float = 0.0
    """For strength work: seconds of effort per set (then ``rest_s`` at ``rest_intensity``)."""
    rest_s: float = 0.0
    rest_intensity: float = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str
    description: str
    air_temp_c: float
    humidity: float
    phases: tuple[Phase, ...]
    activity: Activity
    sweat_capacity: float = 1.0
    resting_hr_bpm: float = 68.0
    age: int = 45
    baseline_core_c: float = 37.0
    baseline_skin_c: float = 33.5
    hr_noise_bpm: float = 2.0
    hot: bool = False
    """True for the sessions in which the rise must reach the threshold (tests use it)."""

    @property
    def resting_skin_c(self) -> float:
        """Skin temperature at rest in this room (the patient arrives settled in it)."""
        return self.baseline_skin_c + SKIN_PER_AIR_C * (self.air_temp_c - 25.0)

    @property
    def max_hr_bpm(self) -> float:
        return 208.0 - 0.7 * self.age

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.phases)


REST = 180.0

SCENARIOS: Mapping[str, Scenario] = MappingProxyType(
    {
        "cool_gym_strength": Scenario(
            name="cool_gym_strength",
            description="Light strength session in a cool gym (18 °C): sets and long rests.",
            air_temp_c=18.0,
            humidity=0.4,
            activity=Activity.STRENGTH,
            phases=(
                Phase(duration_s=REST, intensity=0.0, label="rest"),
                Phase(
                    duration_s=40 * 60.0,
                    intensity=0.45,
                    label="strength sets",
                    set_s=45.0,
                    rest_s=90.0,
                ),
                Phase(duration_s=10 * 60.0, intensity=0.0, label="rest"),
            ),
        ),
        "hot_day_aerobic": Scenario(
            name="hot_day_aerobic",
            description="Steady cycling on a hot, humid day (32 °C): core climbs steadily.",
            air_temp_c=32.0,
            humidity=0.6,
            activity=Activity.AEROBIC,
            hot=True,
            phases=(
                Phase(duration_s=REST, intensity=0.0, label="rest"),
                Phase(duration_s=45 * 60.0, intensity=0.6, label="cycling"),
                Phase(
                    duration_s=25 * 60.0, intensity=0.0, label="cool-down", cooling_c_per_min=0.01
                ),
            ),
        ),
        "intervals": Scenario(
            name="intervals",
            description="Interval training indoors (24 °C): 2 min hard, 2 min easy.",
            air_temp_c=24.0,
            humidity=0.5,
            activity=Activity.AEROBIC,
            phases=(
                Phase(duration_s=REST, intensity=0.0, label="rest"),
                Phase(duration_s=5 * 60.0, intensity=0.3, label="warm-up"),
                *(
                    phase
                    for _ in range(8)
                    for phase in (
                        Phase(duration_s=120.0, intensity=0.85, label="hard"),
                        Phase(duration_s=120.0, intensity=0.3, label="easy"),
                    )
                ),
                Phase(duration_s=15 * 60.0, intensity=0.0, label="rest"),
            ),
        ),
        "heat_sensitive": Scenario(
            name="heat_sensitive",
            description="A heat-sensitive patient who sweats little, brisk walking at 26 °C.",
            air_temp_c=26.0,
            humidity=0.5,
            sweat_capacity=0.5,
            activity=Activity.AEROBIC,
            hot=True,
            age=52,
            resting_hr_bpm=72.0,
            phases=(
                Phase(duration_s=REST, intensity=0.0, label="rest"),
                Phase(duration_s=45 * 60.0, intensity=0.5, label="brisk walk"),
                Phase(
                    duration_s=25 * 60.0, intensity=0.0, label="cool-down", cooling_c_per_min=0.01
                ),
            ),
        ),
    }
)


class Vitals(NamedTuple):
    time_s: float
    """Seconds since the start of the scenario."""
    heart_rate_bpm: float
    skin_temp_c: float
    core_temp_c: float
    intensity: float
    phase: str


class SimulatedPatient:
    """Integrates the physiology in small steps. ``heed_cool_down()`` makes the patient stop
    and cool down as advised (the demo does this; tests of the detector do not)."""

    __slots__ = ("_core", "_heeding", "_hr", "_rng", "_skin", "_t", "scenario")

    def __init__(self, *, scenario: Scenario, seed: int = 0) -> None:
        self.scenario = scenario
        self._rng = random.Random(seed)
        self._t = 0.0
        self._core = scenario.baseline_core_c
        self._skin = scenario.resting_skin_c
        self._hr = scenario.resting_hr_bpm
        self._heeding = False

    @property
    def time_s(self) -> float:
        return self._t

    @property
    def core_rise_c(self) -> float:
        return self._core - self.scenario.baseline_core_c

    @property
    def finished(self) -> bool:
        return self._t >= self.scenario.duration_s

    def heed_cool_down(self) -> None:
        self._heeding = True

    def _phase_at(self, t: float) -> tuple[Phase, float]:
        elapsed = 0.0
        for phase in self.scenario.phases:
            if t < elapsed + phase.duration_s:
                intensity = phase.intensity
                if phase.set_s > 0:
                    within = (t - elapsed) % (phase.set_s + phase.rest_s)
                    if within >= phase.set_s:
                        intensity = phase.rest_intensity
                return phase, intensity
            elapsed += phase.duration_s
        last = self.scenario.phases[-1]
        return last, last.intensity

    def step(self, dt_s: float) -> Vitals:
        """Advance ``dt_s`` seconds (integrated in steps of at most one second)."""
        sc = self.scenario
        remaining = dt_s
        phase, intensity = self._phase_at(self._t)
        while remaining > 1e-9:
            h = min(1.0, remaining)
            phase, intensity = self._phase_at(self._t)
            cooling = phase.cooling_c_per_min
            if self._heeding:
                intensity = 0.0
                cooling = max(cooling, 0.01)
            rise = self._core - sc.baseline_core_c
            air = 1.0 - (sc.air_temp_c - 22.0) / 25.0 * (0.5 + sc.humidity)
            air = min(1.5, max(0.2, air))
            d_core = (
                PRODUCTION_C_PER_MIN * intensity - LOSS_PER_MIN * sc.sweat_capacity * air * rise
            )
            if rise > 0:
                d_core -= cooling
            self._core += d_core * h / 60.0
            skin_eq = (
                sc.baseline_skin_c
                + SKIN_PER_AIR_C * (sc.air_temp_c - 25.0)
                - 1.5 * intensity * sc.sweat_capacity * (1.0 - 0.5 * sc.humidity)
                + 0.5 * rise
            )
            self._skin += (skin_eq - self._skin) * h / (SKIN_TAU_MIN * 60.0)
            reserve = sc.max_hr_bpm - sc.resting_hr_bpm
            hr_eq = (
                sc.resting_hr_bpm
                + reserve * 0.95 * intensity
                + HR_DRIFT_BPM_PER_C * max(rise, 0.0)
                + HR_HEAT_BPM_PER_C * max(sc.air_temp_c - 26.0, 0.0)
            )
            tau = HR_TAU_UP_S if hr_eq > self._hr else HR_TAU_DOWN_S
            self._hr += (hr_eq - self._hr) * (1.0 - math.exp(-h / tau))
            self._t += h
            remaining -= h
        hr = self._hr + self._rng.gauss(0.0, sc.hr_noise_bpm)
        skin = self._skin + self._rng.gauss(0.0, 0.05)
        return Vitals(self._t, round(hr, 1), round(skin, 2), self._core, intensity, phase.label)


class SimulatedPatientOptions(StrictModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    patient: str
    scenario: str = "hot_day_aerobic"
    seed: int = 0


class SimulatorOptions(StrictModel):
    """``[sources.simulator]``: simulated patients straight into the engine (no BLE)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interval_s: float = Field(default=1.0, gt=0, le=60)
    speed: float = Field(default=1.0, gt=0, le=1000)
    """Simulated seconds per wall-clock second."""
    patients: tuple[SimulatedPatientOptions, ...] = ()


class SimulatorSource(Source):
    """Source "simulator": emits heart-rate, skin- and core-temperature samples for simulated
    patients, time-stamped on a clock that runs ``speed`` times faster than the wall clock."""

    name = "simulator"

    def __init__(self, *, options: SimulatorOptions, start_time: float | None = None) -> None:
        for p in options.patients:
            if p.scenario not in SCENARIOS:
                known = ", ".join(SCENARIOS)
                raise ConfigError(
                    f"sources.simulator.patients: unknown scenario {p.scenario!r}; known: {known}"
                )
        self._options = options
        self._start = start_time
        self.patients = {
            p.patient: SimulatedPatient(scenario=SCENARIOS[p.scenario], seed=p.seed)
            for p in options.patients
        }

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        return cls(options=validate_options(SimulatorOptions, options, section="sources.simulator"))

    async def run(self, emit: Emit) -> None:
        opts = self._options
        start = self._start if self._start is not None else _time.time()
        wall0 = _time.monotonic()
        sim_t = 0.0
        while True:
            sim_t += opts.interval_s
            delay = wall0 + sim_t / opts.speed - _time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = start + sim_t
            for pid, patient in self.patients.items():
                v = patient.step(opts.interval_s)
                await emit(
                    Sample(pid, SampleKind.HEART_RATE, v.heart_rate_bpm, now, "sim-hr", "simulator")
                )
                await emit(
                    Sample(pid, SampleKind.SKIN_TEMP, v.skin_temp_c, now, "sim-skin", "simulator")
                )
