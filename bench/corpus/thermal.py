"""The two thermoregulation models behind the corpus, both from pythermalcomfort.

* ``jos3`` — JOS-3 (Takahashi et al. 2021), 17 body segments, stepped every 30 s through
  pythermalcomfort's ``JOS3`` class. Core temperature is the pelvis core (a rectal / pill
  proxy); the wearable's skin temperature is the chest skin.
* ``gagge`` — the two-node model of Gagge et al. (1986), pythermalcomfort's equations stepped
  minute by minute with the state kept (:mod:`bench.corpus.gagge`). Core is the core node, the
  wearable's skin the mean skin.

Neither is heatmon's own simulator (``adapters/simulator.py``) nor its estimator.
Impaired sweating scales the regulatory sweating of either model by ``Person.sweat_gain``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.corpus.gagge import GaggeTwoNode
from bench.corpus.people import Environment, Person

MET_W_M2 = 58.2
SEATED_MET = 1.1
STANDING_MET = 1.4
PRE_REST_MIN = 60
"""The person sits in the room this long before the recording starts (settled baseline)."""
JOS3_STEP_S = 30

FloatArray = NDArray[np.float64]


def met_of(person: Person, intensity: FloatArray, seated: NDArray[np.bool_]) -> FloatArray:
    """Metabolic rate (met) each second: a fraction of the aerobic reserve over standing."""
    met = STANDING_MET + intensity * (person.fitness_met - STANDING_MET)
    return np.where(seated, SEATED_MET, met)


@contextmanager
def _sweat_gain(gain: float) -> Iterator[None]:
    """JOS-3 with its sweating scaled by ``gain`` while the block runs (single-threaded use)."""
    from pythermalcomfort.jos3_functions import thermoregulation as threg

    original: Callable[..., Any] = threg.evaporation

    def scaled(*args: Any, **kwargs: Any) -> Any:
        wet, _e_sk, e_max, e_sweat = original(*args, **kwargs)
        e_sweat = e_sweat * gain
        wet = 0.06 + 0.94 * e_sweat / e_max
        return wet, wet * e_max, e_max, e_sweat

    threg.evaporation = scaled
    try:
        yield
    finally:
        threg.evaporation = original


def run_jos3(
    person: Person, env: Environment, met: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Core, mean skin and chest skin temperature at every second of ``met``."""
    from pythermalcomfort.models import JOS3

    model = JOS3(
        height=person.height_m,
        weight=person.weight_kg,
        age=person.age,
        sex=person.sex,
    )
    model.tdb = env.tdb
    model.tr = env.tdb
    model.rh = env.rh
    model.v = env.v
    model.clo = env.clo
    bmr = float(model.bmr)
    n = len(met)
    steps = int(np.ceil(n / JOS3_STEP_S))
    times = np.arange(steps + 1) * JOS3_STEP_S
    core = np.empty(steps + 1)
    skin = np.empty(steps + 1)
    chest = np.empty(steps + 1)
    with _sweat_gain(person.sweat_gain):
        model.par = SEATED_MET * MET_W_M2 / bmr
        model.simulate(times=PRE_REST_MIN, dtime=60, output=False)
        core[0], skin[0], chest[0] = model.t_core[4], model.t_skin_mean, model.t_skin[2]
        for i in range(steps):
            chunk = met[i * JOS3_STEP_S : (i + 1) * JOS3_STEP_S]
            model.par = float(chunk.mean()) * MET_W_M2 / bmr
            model.simulate(times=1, dtime=JOS3_STEP_S, output=False)
            core[i + 1], skin[i + 1], chest[i + 1] = (
                model.t_core[4],
                model.t_skin_mean,
                model.t_skin[2],
            )
    t = np.arange(n, dtype=np.float64)
    return np.interp(t, times, core), np.interp(t, times, skin), np.interp(t, times, chest)


def run_gagge(
    person: Person, env: Environment, met: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Core, mean skin and (the same) mean skin as the sensor's site, every second."""
    bsa = 0.007184 * (person.weight_kg**0.425) * ((person.height_m * 100) ** 0.725)
    model = GaggeTwoNode(
        tdb=env.tdb,
        tr=env.tdb,
        v=env.v,
        rh=env.rh,
        clo=env.clo,
        body_weight=person.weight_kg,
        body_surface_area=bsa,
        sweat_gain=person.sweat_gain,
    )
    for _ in range(PRE_REST_MIN):
        model.minute(SEATED_MET)
    n = len(met)
    steps = int(np.ceil(n / 60))
    times = np.arange(steps + 1) * 60.0
    core = np.empty(steps + 1)
    skin = np.empty(steps + 1)
    core[0], skin[0] = model.t_core, model.t_skin
    for i in range(steps):
        model.minute(float(met[i * 60 : (i + 1) * 60].mean()))
        core[i + 1], skin[i + 1] = model.t_core, model.t_skin
    t = np.arange(n, dtype=np.float64)
    s = np.interp(t, times, skin)
    return np.interp(t, times, core), s, s.copy()


MODELS: Mapping[
    str, Callable[[Person, Environment, FloatArray], tuple[FloatArray, FloatArray, FloatArray]]
] = MappingProxyType({"jos3": run_jos3, "gagge": run_gagge})
