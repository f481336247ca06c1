"""The forecast: run the estimator's own process model forward, with its uncertainty.

Under the current (smoothed) workload and skin temperature the heat-balance process is linear,
d(rise)/dt = −L·(rise − E), with E the equilibrium rise it is heading for. From the filter's
mean m₀ and variance v₀ (the filter's own, without the model term the band adds), in steps of
``STEP_MIN`` (a = e^(−L·Δ)):

    m(t+Δ) = E + (m(t) − E)·a
    v(t+Δ) = a²·v(t) + q·Δ

(with a fast compartment, ``fast=``, its part f of the rise moves the same way towards its
own equilibrium at its own rate, f(t+Δ) = E_f + (f(t) − E_f)·e^(−L_f·Δ), and m is the rest
of the rise; the forecast rise is m + f) where q (``forecast_var_per_min``) is how much the
rise may stray per minute from the process under a constant workload (the workload will
change; the filter's process noise is smaller).
The threshold T is *likely reached* at the first t with P(rise(t) ≥ T) ≥ p, that is
m(t) + z·√(v(t) + (k·max(0, m(t) − m₀))²) ≥ T with z = Φ⁻¹(p) (interpolated between
steps), m₀ the rise now and k (``increment_sd_per_c``) the forecast's own error per °C of
further rise it predicts. That time is the
``minutes_to_threshold`` the risk state machine compares with the lead window (cool_down)
and the horizon (caution): the alert fires on the probability of reaching the threshold
within the window. A rise that levels off under the threshold never alerts, however fast it
climbed. z grows with the room (seventh round): z + z_room_slope·(skin₀ − 33 °C), skin₀ the
resting skin temperature (held within ±3 °C of 33), so a warm room, where the estimate runs
low and alerts came late, gets more margin and a cool one, where leads were longest, less.
Pure arithmetic; ``tests/test_forecast.py`` checks it against steps worked by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from monitor.engine.params import ROOM_SKIN_REF_C
from monitor.profile import HeatSensitivity

STEP_MIN = 0.5
ROOM_SKIN_SPAN_C = 3.0
"""The room term of z counts resting skin at most this far from 33 °C."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ForecastParams:
    forecast_var_per_min: float
    """Variance the forecast rise gains per minute ahead (°C²/min)."""
    z: float
    """Alert when the rise reaches the threshold with probability Φ(z) (z = 0: 50 %)."""
    z_heat_sensitive: float
    """The same for a heat-sensitive profile (history of Uhthoff's or impaired sweating):
    a quarter of an SD more margin, so they are warned a little earlier."""
    increment_sd_per_c: float = 0.0
    """SD of the forecast's own error per °C of further rise it predicts: the process is a
    fitted average and a person's rise may climb faster than it (the same per-person error as
    ``model_sd_per_c`` in the band). A rise forecast to keep climbing gets a wider margin; one
    that levels off gets none."""
    z_room_slope: float = 0.0
    """z grows by this per °C of resting skin above 33 °C (the room, as the skin sensor sees
    it at rest), within ±3 °C: more margin in a warm room, less in a cool one."""

    def z_for(self, sensitivity: HeatSensitivity, baseline_skin_c: float | None = None) -> float:
        """z for this profile; ``baseline_skin_c`` the resting skin (``None``: unknown, no
        room term)."""
        z = self.z if sensitivity is HeatSensitivity.NONE else self.z_heat_sensitive
        if self.z_room_slope and baseline_skin_c is not None:
            offset = baseline_skin_c - ROOM_SKIN_REF_C
            z += self.z_room_slope * max(-ROOM_SKIN_SPAN_C, min(ROOM_SKIN_SPAN_C, offset))
        return z


FORECAST_PARAMS = ForecastParams(
    forecast_var_per_min=0.001,
    z=2.0,
    z_heat_sensitive=2.25,
    increment_sd_per_c=0.3,
    z_room_slope=0.1,
)
"""Tuned on the training split (docs/physiology.md, "Fitted parameters")."""


def minutes_to_likely_threshold(
    *,
    rise: float,
    variance: float,
    equilibrium: float,
    loss_per_min: float,
    threshold: float,
    horizon_min: float,
    z: float,
    forecast_var_per_min: float,
    step_min: float = STEP_MIN,
    fast_rise: float = 0.0,
    fast_equilibrium: float = 0.0,
    fast_loss_per_min: float = 0.0,
    increment_sd_per_c: float = 0.0,
    pull_per_min: float = 0.0,
    pull_rise: float = 0.0,
) -> float | None:
    """Minutes until P(rise ≥ threshold) ≥ Φ(z), or ``None`` if not within ``horizon_min``.

    ``fast_rise`` / ``fast_equilibrium`` / ``fast_loss_per_min``: a fast compartment (its part
    of ``rise``, its equilibrium, its loss rate) that approaches its own equilibrium at its
    own rate; ``equilibrium`` and ``loss_per_min`` are then the slow compartment's (the rest
    of the rise). All 0: one compartment.

    ``pull_per_min`` / ``pull_rise``: the filter's heart-rate observation under the current
    (smoothed) heart rate, which pulls the estimate towards the rise that heart rate implies
    (``pull_rise``) at ``pull_per_min`` (the Kalman–Bucy gain c²·v/R). With it the slow part
    heads for (L·E + G·(X − f))/(L + G) at rate L + G: the path the estimate itself will take
    if the workload stays as it is, levelling off where process and observation balance.
    0: the process alone."""
    v = variance if variance > 0.0 else 0.0
    g_prev = rise + z * math.sqrt(v)
    if g_prev >= threshold:
        return 0.0
    a = math.exp(-loss_per_min * step_min)
    g = pull_per_min if pull_per_min > 0.0 else 0.0
    total = loss_per_min + g
    a_mean = math.exp(-total * step_min) if g else a
    qd = forecast_var_per_min * step_min
    f, f_eq = fast_rise, fast_equilibrium
    f_a = math.exp(-fast_loss_per_min * step_min)
    m = rise - f
    k2 = increment_sd_per_c * increment_sd_per_c
    t = 0.0
    while t < horizon_min - 1e-9:
        target = (loss_per_min * equilibrium + g * (pull_rise - f)) / total if g else equilibrium
        m = target + (m - target) * a_mean
        f = f_eq + (f - f_eq) * f_a
        v = a * a * v + qd
        up = m + f - rise
        bound = m + f + z * math.sqrt(v + k2 * up * up if up > 0.0 else v)
        if bound >= threshold:
            return t + step_min * (threshold - g_prev) / (bound - g_prev)
        t += step_min
        g_prev = bound
    return None


class ForecastModel(Protocol):
    """What :func:`forecast_minutes` reads of an estimator (``monitor.engine.estimators``)."""

    def forecast_process(self) -> tuple[float, float, float] | None: ...

    def forecast_fast(self) -> tuple[float, float, float] | None: ...

    def forecast_pull(self) -> tuple[float, float] | None: ...


def forecast_minutes(
    est: ForecastModel,
    *,
    process: tuple[float, float, float] | None = None,
    rise: float,
    threshold: float,
    horizon_min: float,
    heat_sensitivity: HeatSensitivity,
    baseline_skin_c: float | None,
    params: ForecastParams = FORECAST_PARAMS,
) -> float | None:
    """:func:`minutes_to_likely_threshold` with the estimator's own process, fast
    compartment and heart-rate pull, as the engine judges each window (and the corpus
    benchmarks replay it); ``None`` also when the model has no process to run forward
    (the engine then extrapolates). ``process``: ``est.forecast_process()`` if the caller
    has it already."""
    process = process or est.forecast_process()
    if process is None:
        return None
    fast = est.forecast_fast() or (0.0, 0.0, 0.0)
    pull = est.forecast_pull() or (0.0, 0.0)
    return minutes_to_likely_threshold(
        rise=rise,
        variance=process[2],
        equilibrium=process[0],
        loss_per_min=process[1],
        threshold=threshold,
        horizon_min=horizon_min,
        z=params.z_for(heat_sensitivity, baseline_skin_c),
        forecast_var_per_min=params.forecast_var_per_min,
        fast_rise=fast[0],
        fast_equilibrium=fast[1],
        fast_loss_per_min=fast[2],
        increment_sd_per_c=params.increment_sd_per_c,
        pull_per_min=pull[0],
        pull_rise=pull[1],
    )
