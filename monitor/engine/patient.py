"""One patient's engine: validation, session and baseline, estimation, forecast, alert level.

Pure: it takes samples and times and returns what changed. It holds a few dozen floats
(well under the 10 KB a patient the design allows; ``bench/replay_throughput.py`` measures it).
"""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import NamedTuple

from monitor.config import EngineConfig
from monitor.engine.advice import QUALITY_MESSAGES, level_message, recovered_message
from monitor.engine.estimators import ESTIMATORS, Estimator
from monitor.engine.forecast import FORECAST_PARAMS, minutes_to_likely_threshold
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

BASELINE_WINDOW_S = 120.0
"""Rest period at the start of a session whose mean heart rate becomes the baseline."""
DEFAULT_RESTING_HR_BPM = 70.0
REST_HR_CEILING_ABOVE_DEFAULT = 25.0
"""A "rest" mean above default + this is no rest: the default resting heart rate is used."""
SESSION_IDLE_S = 15 * 60.0
"""A session closes after this long without samples; the next sample opens a new one."""
SLOPE_TAU_S = 180.0
"""Time constant of the smoothed rate of rise used for forecasts."""
FALL_TAU_S = 60.0
"""Time constant of the rate of fall behind the recovery countdown: shorter than
``SLOPE_TAU_S``, so the countdown starts within a minute or two of stopping rather than once
three minutes of climbing have been forgotten."""
MIN_FORECAST_SLOPE_C_PER_MIN = 0.004
SENSOR_OFF_AFTER = 3
"""Consecutive no-contact / zero heart-rate samples that mean the sensor is off."""
FUTURE_TOLERANCE_S = 10.0
FUTURE_TICKS = 4.0
"""A sample more than ``FUTURE_TOLERANCE_S`` plus ``FUTURE_TICKS`` of the service's tick
intervals (a simulated clock ticks in large steps, a busy loop late) ahead of the clock the
service last reported through :meth:`PatientEngine.advance` is flagged ``future`` and not
used: taken, it would make every real-time sample after it out of order until the clock
caught up. Without a reported clock (replay) no sample is ahead of it."""
PSI_CORE_CEILING_C = 39.5
PSI_HR_CEILING_BPM = 180.0


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


class PatientEngine:
    __slots__ = (
        "_bad_hr_run",
        "_base_hr_n",
        "_base_hr_sum",
        "_baseline_c",
        "_baseline_skin",
        "_calibrated",
        "_config",
        "_core_n",
        "_core_sum",
        "_est",
        "_events",
        "_fall",
        "_fed",
        "_future_after",
        "_good_once",
        "_hr_n",
        "_hr_sum",
        "_last_delta",
        "_last_hr",
        "_last_hr_time",
        "_last_now",
        "_last_skin",
        "_last_step",
        "_last_time",
        "_phase",
        "_profile",
        "_quality",
        "_resting_hr",
        "_risk",
        "_seq",
        "_session",
        "_session_start",
        "_skin_n",
        "_skin_sum",
        "_slope",
        "_state",
        "_step_s",
        "_validators",
        "_win_end",
        "counters",
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

    def _step(self, end: float, states: list[ThermalState], events: list[Event]) -> None:
        hr = self._hr_sum / self._hr_n if self._hr_n else None
        skin = self._skin_sum / self._skin_n if self._skin_n else None
        core = self._core_sum / self._core_n if self._core_n else None
        self._hr_sum = self._skin_sum = self._core_sum = 0.0
        self._hr_n = self._skin_n = self._core_n = 0
        if not self._config.use_measured_core:
            core = None
        dt = end - self._last_step
        self._last_step = end
        profile = self._profile
        self._update_quality(end, events)
        if not self._calibrated:
            if hr is not None:
                self._base_hr_sum += hr
                self._base_hr_n += 1
            if self._baseline_skin is None and skin is not None:
                self._baseline_skin = skin
            if profile.baseline_core_c is None and core is not None:
                self._baseline_c = core
            if self._resting_hr is None and end - self._session_start < BASELINE_WINDOW_S:
                self._emit_state(end, hr, skin, core, states)
                return
            self._calibrate()
        est = self._est
        est.step(dt, heart_rate=hr, skin_temp=skin, measured_core=core)
        delta = est.core_c - self._baseline_c
        if self._last_delta is not None and dt > 0:
            rate = (delta - self._last_delta) / (dt / 60.0)
            w = min(1.0, dt / SLOPE_TAU_S)
            self._slope += w * (rate - self._slope)
            w = min(1.0, dt / FALL_TAU_S)
            self._fall += w * (rate - self._fall)
        self._last_delta = delta
        process = est.forecast_process()
        if process is None:
            mtt = self._minutes_to_threshold(delta)
        else:
            fast = est.forecast_fast() or (0.0, 0.0, 0.0)
            pull = est.forecast_pull() or (0.0, 0.0)
            mtt = minutes_to_likely_threshold(
                rise=delta,
                variance=process[2],
                equilibrium=process[0],
                loss_per_min=process[1],
                threshold=profile.effective_threshold_c,
                horizon_min=max(profile.forecast_horizon_min, profile.cool_down_lead_min),
                z=FORECAST_PARAMS.z_for(profile.heat_sensitivity),
                forecast_var_per_min=FORECAST_PARAMS.forecast_var_per_min,
                fast_rise=fast[0],
                fast_equilibrium=fast[1],
                fast_loss_per_min=fast[2],
                increment_sd_per_c=FORECAST_PARAMS.increment_sd_per_c,
                pull_per_min=pull[0],
                pull_rise=pull[1],
            )
        if hr is not None or core is not None:
            rising = self._slope >= MIN_FORECAST_SLOPE_C_PER_MIN
            update = self._risk.update(end, delta, mtt, rising=rising)
            if update.changed:
                message, advice = level_message(
                    update.level,
                    delta,
                    mtt,
                    profile,
                    falling=update.level.rank < update.previous.rank,
                )
                events.append(
                    self._event(
                        end,
                        EventKind.LEVEL,
                        update.level,
                        update.previous,
                        delta,
                        message,
                        advice,
                        requires_ack=update.level is Level.COOL_DOWN,
                        minutes_to_threshold=mtt,
                    )
                )
            if update.recovered_after_min is not None:
                events.append(
                    self._event(
                        end,
                        EventKind.RECOVERED,
                        update.level,
                        update.level,
                        delta,
                        recovered_message(update.recovered_after_min),
                        (),
                        recovery_minutes=update.recovered_after_min,
                    )
                )
        self._emit_state(end, hr, skin, core, states, minutes_to_threshold=mtt)

    def _calibrate(self) -> None:
        profile = self._profile
        resting = self._resting_hr
        if resting is None:
            mean = self._base_hr_sum / self._base_hr_n if self._base_hr_n else None
            if mean is None or mean > DEFAULT_RESTING_HR_BPM + REST_HR_CEILING_ABOVE_DEFAULT:
                self.counters["no_rest_baseline"] = self.counters.get("no_rest_baseline", 0) + 1
                resting = DEFAULT_RESTING_HR_BPM
            else:
                resting = mean
            self._resting_hr = resting
        self._est.calibrate(
            baseline_core_c=self._baseline_c,
            resting_hr_bpm=resting,
            max_hr_bpm=profile.effective_max_hr,
            baseline_skin_c=self._baseline_skin,
            heat_sensitivity=profile.heat_sensitivity,
            activity=profile.activity,
        )
        self._calibrated = True

    def _minutes_to_threshold(self, delta: float) -> float | None:
        """Straight-line forecast, for an estimator without a process model (``ectemp``)."""
        threshold = self._profile.effective_threshold_c
        if delta >= threshold:
            return 0.0
        if self._slope < MIN_FORECAST_SLOPE_C_PER_MIN:
            return None
        return (threshold - delta) / self._slope

    def _update_quality(self, now: float, events: list[Event]) -> None:
        if self._bad_hr_run >= SENSOR_OFF_AFTER:
            quality = Quality.SENSOR_OFF
        elif self._last_hr_time == -math.inf:
            quality = Quality.NO_DATA
        elif now - max(self._last_hr_time, self._last_time) > self._config.stale_after_s:
            quality = Quality.STALE
        else:
            quality = Quality.GOOD
        if quality is self._quality:
            return
        previous = self._quality
        self._quality = quality
        if quality is Quality.GOOD and not self._good_once:
            self._good_once = True
            return
        if previous is Quality.NO_DATA and not self._good_once:
            return
        level = self._risk.level
        delta = self._last_delta or 0.0
        events.append(
            self._event(now, EventKind.QUALITY, level, level, delta, QUALITY_MESSAGES[quality], ())
        )

    def _event(
        self,
        time: float,
        kind: EventKind,
        level: Level,
        previous: Level,
        delta: float,
        message: str,
        advice: tuple[str, ...],
        *,
        requires_ack: bool = False,
        minutes_to_threshold: float | None = None,
        recovery_minutes: float | None = None,
    ) -> Event:
        self._seq += 1
        session = self._session or ""
        return Event(
            id=f"{session}:{self._seq}",
            patient=self._profile.id,
            time=time,
            session=session,
            kind=kind,
            level=level,
            previous_level=previous,
            quality=self._quality,
            core_delta_c=delta,
            message=message,
            advice=advice,
            requires_ack=requires_ack,
            minutes_to_threshold=minutes_to_threshold,
            recovery_minutes=recovery_minutes,
        )

    def _emit_state(
        self,
        end: float,
        hr: float | None,
        skin: float | None,
        core: float | None,
        states: list[ThermalState],
        *,
        minutes_to_threshold: float | None = None,
    ) -> None:
        """Record the state at ``end`` (``minutes_to_threshold`` as the step computed it)."""
        est = self._est
        delta = est.core_c - self._baseline_c if self._calibrated else 0.0
        risk = self._risk
        mtr: float | None = None
        if risk.in_episode and self._fall < -MIN_FORECAST_SLOPE_C_PER_MIN:
            mtr = max(0.0, (delta - risk.recovered_c) / -self._fall)
        psi: float | None = None
        base_hr = self._resting_hr
        if hr is not None and base_hr is not None and self._calibrated:
            psi = 5.0 * delta / (PSI_CORE_CEILING_C - self._baseline_c) + 5.0 * (hr - base_hr) / (
                PSI_HR_CEILING_BPM - base_hr
            )
            psi = min(10.0, max(0.0, psi))
        state = ThermalState(
            patient=self._profile.id,
            time=end,
            session=self._session or "",
            level=risk.level,
            quality=self._quality,
            core_temp_c=est.core_c if self._calibrated else self._baseline_c,
            core_temp_sd_c=est.sd_c,
            filter_sd_c=est.filter_sd_c,
            core_delta_c=delta,
            baseline_core_c=self._baseline_c,
            threshold_rise_c=self._profile.effective_threshold_c,
            heart_rate_bpm=hr if hr is not None else self._last_hr,
            skin_temp_c=skin if skin is not None else self._last_skin,
            measured_core_c=core,
            minutes_to_threshold=minutes_to_threshold,
            minutes_to_recovery=mtr,
            strain_index=psi,
            estimator=est.name,
        )
        self._state = state
        states.append(state)
