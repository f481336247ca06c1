"""One patient's engine: validation, session and baseline, estimation, forecast, alert level.

Pure: it takes samples and times and returns what changed. It holds a few dozen floats
(well under the 10 KB a patient the design allows; ``bench/replay_throughput.py`` measures it).
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import NamedTuple

from monitor.config import EngineConfig
from monitor.engine.estimators import ESTIMATORS, Estimator
from monitor.engine.judging import WindowJudgment
from monitor.engine.params import DEFAULT_START_CORE_C
from monitor.engine.quality import KindValidator
from monitor.engine.risk import RiskStateMachine
from monitor.engine.windows import window_phase
from monitor.errors import ConfigError, InputError
from monitor.model import (
    Event,
    EventKind,
    Level,
    Quality,
    Sample,
    SampleFlag,
    SampleKind,
    SessionRecord,
    ThermalState,
)
from monitor.profile import PatientProfile

SESSION_IDLE_S = 15 * 60.0
"""A session closes after this long without samples; the next sample opens a new one."""
FUTURE_TOLERANCE_S = 10.0
FUTURE_TICKS = 4.0
"""A sample more than ``FUTURE_TOLERANCE_S`` plus ``FUTURE_TICKS`` of the service's tick
intervals (a simulated clock ticks in large steps, a busy loop late) ahead of the clock the
service last reported through :meth:`PatientEngine.advance` is flagged ``future`` and not
used: taken, it would make every real-time sample after it out of order until the clock
caught up. Without a reported clock (replay) no sample is ahead of it."""


class StepResult(NamedTuple):
    flag: SampleFlag
    states: tuple[ThermalState, ...] = ()
    events: tuple[Event, ...] = ()
    records: tuple[SessionRecord, ...] = ()


QUIET: MappingProxyType[SampleFlag, StepResult] = MappingProxyType(
    {flag: StepResult(flag) for flag in SampleFlag}
)
"""Shared results for the common case where a sample changes nothing visible."""


def make_estimator(name: str) -> Estimator:
    try:
        factory = ESTIMATORS[name]
    except KeyError:
        known = ", ".join(sorted(ESTIMATORS))
        raise ConfigError(f"engine.estimator: unknown estimator {name!r}; known: {known}") from None
    return factory()


class PatientEngine(WindowJudgment):
    __slots__ = (
        "_events",
        "_fed",
        "_future_after",
        "_last_now",
        "_phase",
        "_step_s",
        "_validators",
        "_win_end",
    )

    def __init__(self, *, profile: PatientProfile, config: EngineConfig | None = None) -> None:
        self._profile = profile
        self._config = config or EngineConfig()
        self._step_s = self._config.step_s
        self._phase = window_phase(profile.id, self._step_s, self._config.window_phase)
        """Where this patient's windows end within a step (see :func:`window_phase`)."""
        make_estimator(self._config.estimator)  # fail early on a bad name
        self.counters: dict[str, int] = {}
        self._validators: dict[tuple[SampleKind, str], KindValidator] = {}
        self._session: str | None = None
        self._state: ThermalState | None = None
        self._seq = 0
        self._last_time = -math.inf
        self._last_now = -math.inf
        self._fed = False
        """A reading came since the last :meth:`advance`: the stream is flowing."""
        self._future_after = math.inf
        self._win_end = math.inf
        self._last_hr: float | None = None
        self._last_skin: float | None = None
        self._baseline_skin: float | None = None
        self._last_delta: float | None = None
        self._reset_session_state()

    # -- public API ---------------------------------------------------------------------

    @property
    def profile(self) -> PatientProfile:
        return self._profile

    @property
    def state(self) -> ThermalState | None:
        return self._state

    @property
    def session(self) -> str | None:
        return self._session

    @property
    def session_start(self) -> float:
        """Time of the current session's first sample (0 without a session)."""
        return self._session_start

    @property
    def level(self) -> Level:
        return self._risk.level

    def set_threshold(self, threshold_rise_c: float) -> PatientProfile:
        """Use ``threshold_rise_c`` from the next step on (a person accepted it; the engine
        never calls this itself). Raises :class:`InputError` if the profile would be invalid."""
        try:
            profile = PatientProfile.model_validate(
                {**self._profile.model_dump(), "threshold_rise_c": threshold_rise_c}
            )
        except ValueError as err:
            raise InputError(
                f"threshold {threshold_rise_c!r} is not valid for this profile", where="engine"
            ) from err
        self._profile = profile
        self._risk.set_thresholds(
            threshold_c=profile.effective_threshold_c, caution_c=profile.caution_at_c
        )
        return profile

    def set_profile(self, profile: PatientProfile) -> PatientProfile:
        """Use an edited ``profile`` (a person changed it through the care team): thresholds,
        margins, forecast settings and activity from the next step on; what calibrates the
        estimator (resting and maximal heart rate, baseline, age, heat sensitivity) from the
        next session. Raises :class:`InputError` for another patient's profile."""
        if profile.id != self._profile.id:
            raise InputError(
                f"profile of {profile.id!r} given to the engine of {self._profile.id!r}",
                where="engine",
            )
        self._profile = profile
        self._risk.set_thresholds(
            threshold_c=profile.effective_threshold_c, caution_c=profile.caution_at_c
        )
        return profile

    def ingest(self, sample: Sample) -> StepResult:
        return self.ingest_value(
            sample.kind, sample.value, sample.time, sample.device, sample.sensor_contact
        )

    def ingest_value(
        self,
        kind: SampleKind,
        value: float,
        time: float,
        device: str = "",
        contact: bool | None = None,
    ) -> StepResult:
        """Take one reading. Fast path for replay; :meth:`ingest` wraps it."""
        if time > self._future_after:
            counters = self.counters
            counters["future"] = counters.get("future", 0) + 1
            return QUIET[SampleFlag.FUTURE]
        self._fed = True
        records: list[SessionRecord] = []
        states: list[ThermalState] = []
        events: list[Event] = []
        if self._session is None:
            self._open_session(time, records)
        elif time - self._last_time > SESSION_IDLE_S:
            self._close_windows(self._win_end, states, events)
            self._close_session(records)
            self._open_session(time, records)
        key = (kind, device)
        validator = self._validators.get(key)
        if validator is None:
            validator = self._validators[key] = KindValidator(kind)
        flag = validator.check(value, time, contact)
        if time >= self._win_end:
            self._close_windows(time, states, events)
        if flag is SampleFlag.OK or flag is SampleFlag.GAP:
            if time > self._last_time:
                self._last_time = time
            if kind is SampleKind.HEART_RATE:
                self._hr_sum += value
                self._hr_n += 1
                self._last_hr = value
                self._last_hr_time = time
                self._bad_hr_run = 0
            elif kind is SampleKind.SKIN_TEMP:
                self._skin_sum += value
                self._skin_n += 1
                self._last_skin = value
            elif kind is SampleKind.CORE_TEMP:
                self._core_sum += value
                self._core_n += 1
        else:
            counters = self.counters
            counters[flag.value] = counters.get(flag.value, 0) + 1
            if flag is SampleFlag.ZERO or flag is SampleFlag.NO_CONTACT:
                self._bad_hr_run += 1
                if time > self._last_time:
                    self._last_time = time
        if not (states or events or records):
            return QUIET[flag]
        return StepResult(flag, tuple(states), tuple(events), tuple(records))

    def advance(self, now: float) -> StepResult:
        """Time passes without samples: close due windows, report stale data, end a session."""
        # a reading came between the last tick and this one (before a first tick, unknown)
        fed = self._fed and self._last_now > -math.inf
        self._fed = False
        self.note_clock(now)
        if self._session is None:
            return QUIET[SampleFlag.OK]
        states: list[ThermalState] = []
        events: list[Event] = []
        records: list[SessionRecord] = []
        if now >= self._win_end and not fed and (self._hr_n or self._skin_n or self._core_n):
            # The stream has paused for a tick: close the window that holds readings, and no
            # more. While readings flow, their own times close windows, even minutes behind
            # this clock (a gateway sending what it buffered during an outage); empty
            # windows are skipped when the next reading comes.
            self._close_windows(self._win_end, states, events)
        # readings that keep coming are late, not stale: judged at their own time (a strap
        # off its skin is still seen at once)
        self._update_quality(self._last_time if fed else now, events)
        if not fed and now - self._last_time > SESSION_IDLE_S:
            self._close_session(records)
        return StepResult(SampleFlag.OK, tuple(states), tuple(events), tuple(records))

    def note_clock(self, now: float) -> None:
        """The service's clock says ``now``: a sample later than ``FUTURE_TOLERANCE_S`` plus
        four clock intervals after it is ``future``. The first reading only starts the clock
        (its step is not known yet, and a simulated clock's step is large)."""
        if now > self._last_now:
            if self._last_now > -math.inf:  # the clock's step is known from its second reading
                spacing = now - self._last_now
                self._future_after = now + FUTURE_TOLERANCE_S + FUTURE_TICKS * spacing
            self._last_now = now

    def forget_clock(self) -> None:
        """Forget every clock reading (a checkpoint restored in another process, later: its
        clock is not this one's); the next reading starts the clock again, as for a new
        engine. Until then no sample is ``future``."""
        self._last_now = -math.inf
        self._future_after = math.inf

    def note_gap(self, device: str, *, start: float, end: float) -> StepResult:
        """A source reports that ``device`` sent nothing from ``start`` to ``end`` (a dropped
        connection, now back): a data-quality event beside the level."""
        self.counters["gaps"] = self.counters.get("gaps", 0) + 1
        seconds = max(0.0, end - start)
        role = f" ({device})" if device else ""
        message = (
            f"A wearable{role} was out of touch for {seconds:.0f} s and is back; "
            "nothing was estimated from it in that time."
        )
        level = self._risk.level
        event = self._event(
            end, EventKind.QUALITY, level, level, self._last_delta or 0.0, message, ()
        )
        return StepResult(SampleFlag.GAP, (), (event,))

    def flush(self) -> StepResult:
        """End of input (replay): close the last, partial window."""
        if self._session is None:
            return QUIET[SampleFlag.OK]
        states: list[ThermalState] = []
        events: list[Event] = []
        if self._hr_n or self._skin_n or self._core_n:
            self._close_windows(self._win_end, states, events)
        return StepResult(SampleFlag.OK, tuple(states), tuple(events))

    def close(self) -> StepResult:
        """Stop: close the window and the session."""
        result = self.flush()
        records: list[SessionRecord] = []
        if self._session is not None:
            self._close_session(records)
        return result._replace(records=tuple(records))

    # -- sessions -----------------------------------------------------------------------

    def _reset_session_state(self) -> None:
        profile = self._profile
        self._est = make_estimator(self._config.estimator)
        self._risk = RiskStateMachine(
            threshold_c=profile.effective_threshold_c,
            caution_c=profile.caution_at_c,
            horizon_min=profile.forecast_horizon_min,
            lead_min=profile.cool_down_lead_min,
        )
        self._calibrated = False
        self._baseline_c = profile.baseline_core_c or DEFAULT_START_CORE_C
        self._resting_hr = profile.resting_hr_bpm
        self._baseline_skin = None
        self._base_hr_sum = 0.0
        self._base_hr_n = 0
        self._hr_sum = self._skin_sum = self._core_sum = 0.0
        self._hr_n = self._skin_n = self._core_n = 0
        self._last_hr = None
        self._last_skin = None
        self._last_hr_time = -math.inf
        self._bad_hr_run = 0
        self._slope = 0.0
        self._fall = 0.0
        self._last_delta = None
        self._quality = Quality.NO_DATA
        self._good_once = False
        self._session_start = 0.0
        self._last_step = 0.0
        self._win_end = math.inf

    def _open_session(self, time: float, records: list[SessionRecord]) -> None:
        self._reset_session_state()
        self._session = f"{self._profile.id}-{int(time)}"
        self._session_start = time
        step = self._step_s
        start = math.floor((time - self._phase) / step) * step + self._phase
        self._last_step = start
        self._win_end = start + step
        self._last_time = time
        records.append(
            SessionRecord(
                patient=self._profile.id,
                session=self._session,
                start=time,
                stop=None,
                activity=self._profile.activity.value,
            )
        )

    def _close_session(self, records: list[SessionRecord]) -> None:
        assert self._session is not None
        records.append(
            SessionRecord(
                patient=self._profile.id,
                session=self._session,
                start=self._session_start,
                stop=self._last_time,
                activity=self._profile.activity.value,
            )
        )
        self._session = None
        self._win_end = math.inf

    # -- steps --------------------------------------------------------------------------

    def _close_windows(self, time: float, states: list[ThermalState], events: list[Event]) -> None:
        """Close the window that ends at ``_win_end`` and skip empty ones up to ``time``."""
        end = self._win_end
        if self._hr_n or self._skin_n or self._core_n:
            self._step(end, states, events)
        else:
            self._update_quality(end, events)
        step = self._step_s
        if time >= end:
            self._win_end = end + (math.floor((time - end) / step) + 1) * step
