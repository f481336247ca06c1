"""What the wearables would have sent: heart rate with lag, drift, noise, artefacts and
dropouts; a skin sensor at one site; an ingestible pill every 20 s (the truth)."""

from __future__ import annotations

import random

import numpy as np
from numpy.typing import NDArray

from bench.corpus.people import Person

FloatArray = NDArray[np.float64]
PILL_EVERY_S = 20
PILL_NOISE_C = 0.02
SKIN_NOISE_C = 0.05


def heart_rate(
    rng: random.Random,
    person: Person,
    intensity: FloatArray,
    seated: NDArray[np.bool_],
    core_rise: FloatArray,
    skin_rise: FloatArray,
) -> FloatArray:
    """Heart rate each second (NaN = nothing sent). The target follows the effort (heart-rate
    reserve ≈ VO2 reserve, Swain 1997), plus cardiovascular drift with the core rise and a skin
    term, reached with a first-order lag, plus AR(1) noise and artefacts."""
    n = len(intensity)
    reserve = person.max_hr - person.resting_hr
    posture = np.where(seated, 0.0, 6.0)
    target = (
        person.resting_hr
        + posture
        + intensity * reserve
        + person.drift_bpm_per_c * np.maximum(core_rise, 0.0)
        + person.skin_bpm_per_c * np.maximum(skin_rise, 0.0)
    )
    target = np.minimum(target, person.max_hr)
    hr = np.empty(n)
    h = person.resting_hr
    a_up = 1.0 - np.exp(-1.0 / person.hr_tau_up_s)
    a_down = 1.0 - np.exp(-1.0 / person.hr_tau_down_s)
    noise = 0.0
    seed = rng.getrandbits(32)
    gen = np.random.default_rng(seed)
    shocks = gen.normal(0.0, person.hr_noise_bpm * np.sqrt(1 - 0.95**2), n)
    for i in range(n):
        tgt = target[i]
        h += (a_up if tgt > h else a_down) * (tgt - h)
        noise = 0.95 * noise + shocks[i]
        hr[i] = h + noise
    hr = np.asarray(np.round(np.clip(hr, 35.0, 215.0)), dtype=np.float64)
    # Artefacts: doubled / halved beat counts, strap-off zeros, dropouts (nothing sent).
    for _ in range(gen.poisson(n / 900)):
        i = int(gen.integers(0, n))
        hr[i] = hr[i] * (2.0 if gen.random() < 0.5 else 0.5)
    for _ in range(gen.poisson(n / 2400)):
        i = int(gen.integers(0, n))
        hr[i : i + int(gen.integers(3, 20))] = 0.0
    for _ in range(gen.poisson(n / 1200)):
        i = int(gen.integers(0, n))
        hr[i : i + int(gen.integers(5, 90))] = np.nan
    if gen.random() < 0.1:  # a long dropout in one session in ten
        i = int(gen.integers(n // 4, 3 * n // 4))
        hr[i : i + int(gen.integers(120, 360))] = np.nan
    return hr


def skin_sensor(rng: random.Random, person: Person, site_skin: FloatArray) -> FloatArray:
    """The wearable's skin temperature at its site: offset, lag of ~1 min, noise, gaps."""
    gen = np.random.default_rng(rng.getrandbits(32))
    n = len(site_skin)
    out = np.empty(n)
    s = site_skin[0]
    a = 1.0 - np.exp(-1.0 / 60.0)
    for i in range(n):
        s += a * (site_skin[i] - s)
        out[i] = s
    out = out + person.skin_sensor_offset_c + gen.normal(0.0, SKIN_NOISE_C, n)
    out = np.asarray(np.round(out, 2), dtype=np.float64)
    for _ in range(gen.poisson(n / 1500)):
        i = int(gen.integers(0, n))
        out[i : i + int(gen.integers(5, 120))] = np.nan
    return out


def pill(rng: random.Random, core: FloatArray) -> FloatArray:
    gen = np.random.default_rng(rng.getrandbits(32))
    out = np.full(len(core), np.nan)
    idx = np.arange(0, len(core), PILL_EVERY_S)
    out[idx] = np.round(core[idx] + gen.normal(0.0, PILL_NOISE_C, len(idx)), 3)
    return out
