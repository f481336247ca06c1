"""What a closed window says: the estimator's step over the window, the smoothed rate of
rise and of fall, the forecast and the alert level, the data quality, and the state and
events that report them. :class:`WindowJudgment` is the part of
:class:`~monitor.engine.patient.PatientEngine` that judges a window (the engine keeps the
input side: validation, sessions, windows). A checkpoint (``monitor/cluster/snapshot.py``)
walks the slots of both classes, so its content is the same as before the split.
"""

from __future__ import annotations

import math

from monitor.config import EngineConfig
from monitor.engine.advice import QUALITY_MESSAGES, level_message, recovered_message
from monitor.engine.estimators import Estimator
from monitor.engine.forecast import forecast_minutes
from monitor.engine.risk import RiskStateMachine
from monitor.model import (
    Event,
    EventKind,
    Level,
    Quality,
    ThermalState,
)
from monitor.profile import PatientProfile

BASELINE_WINDOW_S = 120.0
"""Rest period at the start of a session whose mean heart rate becomes the baseline."""
DEFAULT_RESTING_HR_BPM = 70.0
REST_HR_CEILING_ABOVE_DEFAULT = 25.0
"""A "rest" mean above default + this is no rest: the default resting heart rate is used."""
SLOPE_TAU_S = 180.0
"""Time constant of the smoothed rate of rise used for forecasts."""
FALL_TAU_S = 60.0
"""Time constant of the rate of fall behind the recovery countdown: shorter than
``SLOPE_TAU_S``, so the countdown starts within a minute or two of stopping rather than once
three minutes of climbing have been forgotten."""
MIN_FORECAST_SLOPE_C_PER_MIN = 0.004
SENSOR_OFF_AFTER = 3
"""Consecutive no-contact / zero heart-rate samples that mean the sensor is off."""
PSI_CORE_CEILING_C = 39.5
PSI_HR_CEILING_BPM = 180.0


class WindowJudgment:
    """Judges each closed window of a :class:`~monitor.engine.patient.PatientEngine`. Its
    slots are the engine's state that judging reads or writes (the engine's input side
    reads some of them too); a checkpoint holds them like the engine's own."""

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
        "_fall",
        "_good_once",
        "_hr_n",
        "_hr_sum",
        "_last_delta",
        "_last_hr",
        "_last_hr_time",
        "_last_skin",
        "_last_step",
        "_last_time",
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
        "counters",
    )

    counters: dict[str, int]
    _baseline_c: float
    _baseline_skin: float | None
    _base_hr_n: int
    _base_hr_sum: float
    _bad_hr_run: int
    _calibrated: bool
    _config: EngineConfig
    _core_n: int
    _core_sum: float
    _est: Estimator
    _fall: float
    _good_once: bool
    _hr_n: int
    _hr_sum: float
    _last_delta: float | None
    _last_hr: float | None
    _last_hr_time: float
    _last_skin: float | None
    _last_step: float
    _last_time: float
    _profile: PatientProfile
    _quality: Quality
    _resting_hr: float | None
    _risk: RiskStateMachine
    _seq: int
    _session: str | None
    _session_start: float
    _skin_n: int
    _skin_sum: float
    _slope: float
    _state: ThermalState | None

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
            mtt = forecast_minutes(
                est,
                process=process,
                rise=delta,
                threshold=profile.effective_threshold_c,
                horizon_min=max(profile.forecast_horizon_min, profile.cool_down_lead_min),
                heat_sensitivity=profile.heat_sensitivity,
                baseline_skin_c=self._baseline_skin,
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
