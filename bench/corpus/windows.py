"""The training sessions as the engine sees them: each recording cut once into the engine's
10-s windows (same validation as ``PatientEngine``), heatmon's own simulator sessions cut
the same way, and :func:`training_windows`, the one way ``fit``, ``tune``, ``probe`` and
``pool`` read the seen splits (a held-out split not seen yet is refused)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.corpus.generate import SEEN
from monitor.engine.quality import KindValidator
from monitor.evaluate.metrics import Truth
from monitor.model import SampleFlag, SampleKind
from monitor.profile import PatientProfile
from monitor.replay import load_profiles

STEP_S = 10.0


@dataclass(slots=True)
class Windows:
    patient: str
    profile: PatientProfile
    start: float
    ends: list[float]
    hr: list[float | None]
    skin: list[float | None]
    truth: Truth


def cut(recording: Path, profiles: dict[str, PatientProfile]) -> list[Windows]:
    rows: dict[str, list[tuple[float, float | None, float | None, float | None]]] = {}
    with recording.open(newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for t_text, pid, hr_text, skin_text, core_text in reader:
            rows.setdefault(pid, []).append(
                (
                    float(t_text),
                    float(hr_text) if hr_text else None,
                    float(skin_text) if skin_text else None,
                    float(core_text) if core_text else None,
                )
            )
    out: list[Windows] = []
    ok = (SampleFlag.OK, SampleFlag.GAP)
    for pid, rs in rows.items():
        start = rs[0][0]
        v_hr, v_skin = KindValidator(SampleKind.HEART_RATE), KindValidator(SampleKind.SKIN_TEMP)
        end0 = math.floor(start / STEP_S) * STEP_S + STEP_S
        n = int((rs[-1][0] - end0) // STEP_S) + 2
        hs, hn = np.zeros(n), np.zeros(n)
        ss, sn = np.zeros(n), np.zeros(n)
        any_ = np.zeros(n, dtype=bool)
        tt: list[float] = []
        cc: list[float] = []
        for t, hr, skin, core in rs:
            k = int((t - end0) // STEP_S) + 1
            if hr is not None and v_hr.check(hr, t) in ok:
                hs[k] += hr
                hn[k] += 1
                any_[k] = True
            if skin is not None and v_skin.check(skin, t) in ok:
                ss[k] += skin
                sn[k] += 1
                any_[k] = True
            if core is not None:
                any_[k] = True
                tt.append(t)
                cc.append(core)
        idx = np.nonzero(any_)[0]
        out.append(
            Windows(
                patient=pid,
                profile=profiles.get(pid) or PatientProfile(id=pid),
                start=start,
                ends=[end0 + k * STEP_S for k in idx],
                hr=[hs[k] / hn[k] if hn[k] else None for k in idx],
                skin=[ss[k] / sn[k] if sn[k] else None for k in idx],
                truth=Truth(tt, cc, start=start),
            )
        )
    return out


SIMULATOR_SEEDS = range(100, 105)
SIMULATOR_T0 = 1_900_000_000.0


def simulator_windows(profiles: dict[str, PatientProfile]) -> list[Windows]:
    """Training sessions from heatmon's own simulator (``adapters/simulator.py``, a faster
    core response than JOS-3's pelvis), seeds 100–104 (the tests use 0–2). Written as a
    recording and cut like the corpus."""
    import tempfile

    from adapters.simulator import SCENARIOS, SimulatedPatient
    from monitor.profile import HeatSensitivity

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim.csv"
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(("time", "patient", "heart_rate_bpm", "skin_temp_c", "core_temp_c"))
            for i, (name, sc) in enumerate(sorted(SCENARIOS.items())):
                for seed in SIMULATOR_SEEDS:
                    pid = f"sim-{name}-{seed}"
                    profiles[pid] = PatientProfile(
                        id=pid,
                        age=sc.age,
                        activity=sc.activity,
                        heat_sensitivity=HeatSensitivity.IMPAIRED_SWEATING
                        if sc.sweat_capacity < 1.0
                        else HeatSensitivity.NONE,
                    )
                    sim = SimulatedPatient(scenario=sc, seed=seed)
                    t0 = SIMULATOR_T0 + (i * 10 + seed) * 86_400
                    while not sim.finished:
                        v = sim.step(1.0)
                        s = int(v.time_s)
                        core = f"{v.core_temp_c:.3f}" if s % 20 == 0 else ""
                        w.writerow(
                            (
                                int(t0 + s),
                                pid,
                                f"{v.heart_rate_bpm:.0f}",
                                f"{v.skin_temp_c:.2f}",
                                core,
                            )
                        )
        return cut(path, profiles)


POOL = ",".join(SEEN)
"""``--splits pool``: every seen split (``bench.corpus.generate.SEEN``)."""


def training_windows(corpus: Path, splits: str, *, simulator: bool = True) -> list[Windows]:
    """The sessions of the training ``splits`` (comma-separated folders of ``corpus``, or
    ``pool`` for every seen split), plus heatmon's simulator sessions for the same people. A
    held-out split whose figures were not seen yet is refused (:class:`ValueError`): nothing
    is fitted or tuned on it."""
    windows: list[Windows] = []
    profiles: dict[str, PatientProfile] = {}
    names = list(dict.fromkeys(splits.replace("pool", POOL).split(",")))
    for split in names:
        if split not in SEEN:
            raise ValueError(
                f"--splits: {split} is a held-out split not seen yet; fit and tune on seen "
                f"splits only ({', '.join(SEEN)})"
            )
    for split in names:
        split_profiles = load_profiles(corpus / split / "profiles.toml")
        profiles.update(split_profiles)
        windows += cut(corpus / split / "recording.csv", split_profiles)
    if simulator:
        windows += simulator_windows(profiles)
    return windows
