"""The numbers of heatmon's core-temperature models: ECTemp's published constants and the
heat-balance parameters fitted on the validation corpus's training split
(``bench/corpus/fit.py``, ``bench/corpus/tune.py``; values and provenance in
``docs/physiology.md``). The estimators (:mod:`monitor.engine.estimators`) and the forecast use
them; a fit or a tuning run changes this file only."""

from __future__ import annotations

import math
from dataclasses import dataclass

# ECTemp (Buller et al. 2013), per one-minute step.
ECTEMP_A = 1.0
ECTEMP_GAMMA = 0.022**2
"""Process variance per minute (°C²)."""
ECTEMP_B0 = -7887.1
ECTEMP_B1 = 384.4286
ECTEMP_B2 = -4.5714
ECTEMP_SIGMA2 = 18.88**2
"""Heart-rate observation variance (bpm²) for one-minute mean heart rate."""
DEFAULT_START_CORE_C = 37.1

MEASURED_CORE_SIGMA2 = 0.05**2
"""Variance (°C²) of one measured core temperature reading (CORE sensor, ingestible pill): its
reading-to-reading noise, not its absolute accuracy. With the fitted process noise a larger
value lets the model outweigh what the person's sensor measures (docs/physiology.md)."""

ROOM_SKIN_REF_C = 33.0
"""Resting skin temperature of a neutral room; the room term of the heat loss is relative to it."""
ROOM_LOSS_LOG_LIMIT = 1.0
"""The room changes the heat-loss rate by at most a factor e either way."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HeatBalanceParams:
    """The heat-balance process and its noise, per minute. Defaults: :data:`HEAT_BALANCE_PARAMS`."""

    production_c_per_min: float
    """Slow compartment: core warming rate at 100 % heart-rate reserve with no heat loss
    (°C/min), counted above ``production_r_offset``."""
    loss_per_min: float
    """Slow compartment: fraction of its rise (over the skin-shifted equilibrium) lost per
    minute (1/min)."""
    skin_coupling: float
    """How much a warming of the skin shifts the core equilibrium up (°C per °C). Only warming
    counts: a falling skin temperature during exercise is ambiguous (sweat and airflow cool the
    skin while the core still rises), so it never lowers the estimate."""
    process_var_per_min: float
    """Process noise of the filter (°C² per minute): how far the truth may stray from the
    process in a minute. Sets the width of the band."""
    hr_obs_var: float
    """Variance of the one-minute mean heart rate around the observation model (bpm²)."""
    impaired_sweating_loss_factor: float
    """Heat loss multiplier for a profile with ``heat_sensitivity = "impaired_sweating"``."""
    loss_skin_slope: float = 0.0
    """How the room changes heat loss: L × e^(−slope·(skin₀ − 33 °C)), skin₀ the skin
    temperature at rest in that room (warm room: less loss; cool room: more). 0 = off."""
    skin_warming_cap_c: float = math.inf
    """Skin warming beyond this (°C over the rest value) shifts the equilibrium no further: a
    skin that warms by several degrees in a cool room is vasodilation shedding heat, not a
    smaller core-to-skin gradient. ``inf`` = no cap."""
    skin_vasodilation_coupling: float = 0.0
    """How much skin warming beyond ``skin_warming_cap_c`` shifts the equilibrium *down*
    (°C per °C): a skin that keeps warming past the cap is carrying heat away from the core."""
    skin_vasodilation_limit_c: float = math.inf
    """The most that ``skin_vasodilation_coupling`` shifts the equilibrium down (°C): skin
    blood flow sheds heat up to a ceiling, so a skin several degrees warmer in a hot room
    does not keep lowering the core's equilibrium. ``inf`` = no limit."""
    production_r_offset: float = 0.0
    """Heart-rate reserve fraction below which the slow compartment gains no heat: light work
    is compensable (sweating and skin blood flow shed its heat), so the production term is
    P·max(0, r − offset). 0 = production in proportion to the whole reserve."""
    fast_production_c_per_min: float = 0.0
    """A second, fast compartment of the rise (°C/min at 100 % heart-rate reserve): the part
    of the core that follows the workload within minutes and levels off (a well-perfused core,
    as in Gagge's two-node model). 0 = off (one slow compartment)."""
    fast_loss_per_min: float = 0.2
    """Loss rate of the fast compartment (1/min); its time constant is the inverse."""
    fast_room_slope: float = 0.0
    """How the room changes the fast compartment's heat gain: P_f × e^(slope·(skin₀ − 33 °C))
    (within the same factor-e limit as the slow loss): in a warm, humid room less of the
    work's heat leaves through the skin from the first minutes, so the core's quick rise is
    larger; in a cool room smaller. 0 = off."""
    intermittent_hr_work_share: float = 0.0
    """For a profile whose activity is strength, balance or flexibility: the share of the
    (smoothed) heart-rate rise above rest that the observation model attributes to the work
    itself, not to the core. Resistance sets and standing work raise heart rate
    through the pressor reflex, posture and slow recovery between sets far more than they
    produce heat; read as heat, that heart rate holds the estimate too high. 0 = off."""
    aerobic_hr_work_share: float = 0.0
    """The same for aerobic activity, at the start of exercise: the share of the smoothed
    heart-rate rise above rest attributed to the work (cardiac output for the working muscle)
    rather than to the core. It fades out linearly as the skin warms by
    ``aerobic_share_fade_c`` over its rest value (skin blood flow opens once the core has
    warmed, and from then on the heart rate carries heat). Without a current skin reading it
    is off (the heart-rate-only model, which errs early rather than late). 0 = off."""
    aerobic_share_fade_c: float = 1.0
    """Skin warming (°C over its rest value) over which ``aerobic_hr_work_share`` fades to 0."""
    intermittent_hr_var_factor: float = 1.0
    """Heart-rate observation variance multiplier for those activities: their heart rate
    swings with each set and says less about the core (1 = as aerobic work)."""
    fast_skin_gate_c: float = 0.0
    """The fast part's gain opens with skin warming: P_f × (g₀ + (1 − g₀)·min(1, w / this)),
    w the skin warming over its rest value (°C). Skin blood flow, and with it the skin,
    rises once the core has warmed past the onset of vasodilation, so a skin that stays at
    its rest value says the core has not yet risen quickly. Without a skin reading the gate
    is open. 0 = off (no gate)."""
    fast_gate_floor: float = 1.0
    """g₀: the share of the fast part's gain before the skin warms."""
    capacity_exponent: float = 0.0
    """How the heat production scales with the person's aerobic capacity: P and P_f are
    multiplied by (C / ``capacity_ref_met``)^this, with C the capacity estimated without exercise
    from the maximal and resting heart rate (Uth et al. 2004: VO2max ≈ 15.3 ml/kg/min ×
    HRmax / HRrest, here in METs). The same fraction of the heart-rate reserve is more work,
    and more heat, for a fitter person. 0 = off."""
    capacity_ref_met: float = 11.0
    """Capacity (METs) at which the production is P as given (about the training median)."""
    pull_gain_factor: float = 0.0
    """The forecast runs the heart-rate observation's pull forward beside the process
    (:meth:`~monitor.engine.heat_balance.HeatBalanceEstimator.forecast_pull`), its Kalman–Bucy
    gain × this. 0 = the process alone (the forecast of rounds one to three)."""
    workload_tau_s: float
    """Time constant of the smoothed workload the forecast runs forward (s)."""
    model_sd_per_c: float
    """Uncertainty of the model itself, as SD per °C of estimated rise: a person's heat balance
    differs from the fitted one (fitness, sweating, drift), so the error grows with the rise.
    Added to the filter's variance in the band shown (``sd_c``); neither the filter nor the
    forecast sees it (the forecast adds its own growth, ``ForecastParams``)."""


HEAT_BALANCE_PARAMS = HeatBalanceParams(
    production_c_per_min=0.012,
    loss_per_min=0.02918,
    skin_coupling=0.2502,
    process_var_per_min=0.000442,
    hr_obs_var=300.9,
    impaired_sweating_loss_factor=0.5,
    loss_skin_slope=0.161,
    skin_warming_cap_c=0.85,
    skin_vasodilation_coupling=0.3,
    skin_vasodilation_limit_c=0.4,
    production_r_offset=0.3,
    fast_production_c_per_min=0.1,
    fast_loss_per_min=0.25,
    fast_room_slope=0.0,
    intermittent_hr_work_share=0.3,
    aerobic_hr_work_share=0.3,
    aerobic_share_fade_c=0.5,
    intermittent_hr_var_factor=1.5,
    fast_skin_gate_c=0.3,
    fast_gate_floor=0.5,
    capacity_exponent=1.0,
    pull_gain_factor=1.5,
    workload_tau_s=180.0,
    model_sd_per_c=0.44,
)
"""Fitted on the training split, tuned on the pool of seen splits in the sixth round
(docs/physiology.md, "Fitted parameters")."""


def ectemp_hr_model(core_c: float) -> float:
    """Heart rate that ECTemp's observation model expects at ``core_c``."""
    return ECTEMP_B2 * core_c * core_c + ECTEMP_B1 * core_c + ECTEMP_B0
