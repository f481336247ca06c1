"""The validation corpus generator: the Gagge port against pythermalcomfort, and sessions
that behave as the people, rooms and workouts they describe."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pythermalcomfort")

from bench.corpus.gagge import GaggeTwoNode
from bench.corpus.generate import SessionSpec, plan, session
from bench.corpus.people import Room, Workout
from bench.corpus.trial import run_session
from bench.corpus.windows import Windows, cut


@pytest.mark.parametrize(
    ("tdb", "rh", "met", "clo", "v"),
    [(25, 50, 1.2, 0.5, 0.1), (30, 60, 3.0, 0.4, 0.3), (34, 70, 4.0, 0.3, 0.2)],
)
def test_gagge_port_matches_pythermalcomfort(
    tdb: float, rh: float, met: float, clo: float, v: float
) -> None:
    from pythermalcomfort.models import two_nodes_gagge

    ref = two_nodes_gagge(tdb=tdb, tr=tdb, v=v, rh=rh, met=met, clo=clo, round_output=False)
    model = GaggeTwoNode(tdb=tdb, tr=tdb, v=v, rh=rh, clo=clo)
    for _ in range(59):  # pythermalcomfort runs minutes 2…60 from the neutral state
        model.minute(met)
    assert model.t_core == pytest.approx(float(ref.t_core), abs=1e-5)
    assert model.t_skin == pytest.approx(float(ref.t_skin), abs=1e-5)


def test_impaired_sweating_runs_hotter() -> None:
    normal = GaggeTwoNode(tdb=30, tr=30, v=0.2, rh=60, clo=0.4)
    impaired = GaggeTwoNode(tdb=30, tr=30, v=0.2, rh=60, clo=0.4, sweat_gain=0.4)
    for _ in range(40):
        normal.minute(4.0)
        impaired.minute(4.0)
    assert impaired.t_core > normal.t_core + 0.1


def _spec(model: str, workout: Workout, room: Room, seed: int = 7) -> SessionSpec:
    return SessionSpec("train", model, 0, seed, workout, room, heat_sensitive=False)


@pytest.mark.parametrize("model", ["jos3", "gagge"])
def test_hot_aerobic_heats_more_than_cool_balance(model: str) -> None:
    hot, rows_hot = session(_spec(model, Workout.STEADY_AEROBIC, Room.HOT_HUMID))
    cool, rows_cool = session(_spec(model, Workout.BALANCE_FLEXIBILITY, Room.COOL))
    assert float(hot["max_true_rise_c"]) > float(cool["max_true_rise_c"]) + 0.3  # type: ignore[arg-type]
    # Rows: seconds, heart rate, skin, pill. Heart rate is plausible but for rare artefacts
    # (zeros, doubled or halved beats, which the engine must flag), the pill reads every
    # 20 s, and the skin sensor sits in a skin range.
    for rows in (rows_hot, rows_cool):
        hr = rows[:, 1][~np.isnan(rows[:, 1])]
        plausible = (hr >= 35) & (hr <= 215)
        assert 0.97 < plausible.mean() < 1.0
        assert np.count_nonzero(~np.isnan(rows[:, 3])) == math.ceil(len(rows) / 20)
        skin = rows[:, 2][~np.isnan(rows[:, 2])]
        assert 25.0 < skin.mean() < 38.0


def test_the_split_keeps_models_and_seeds_apart() -> None:
    train, held = plan("train"), plan("heldout")
    assert {s.model for s in train} == {"jos3"}
    assert {s.model for s in held} == {"gagge", "jos3"}
    assert not {s.seed for s in train} & {s.seed for s in held}
    for split in (train, held):
        assert {s.workout for s in split} == set(Workout)
        assert {s.room for s in split} == set(Room)
        assert 0.2 < sum(s.heat_sensitive for s in split) / len(split) < 0.3


def test_the_second_round_splits_share_no_seed_with_any_other() -> None:
    """``train_gagge`` (the Gagge part of the training data) and ``heldout3`` … ``heldout10``
    (each scored once, at the end of a round) draw people from seeds no other split uses."""
    splits = {name: plan(name) for name in ("train", "heldout", "heldout2", "train_gagge")}
    splits["heldout3"] = plan("heldout3")
    splits["heldout4"] = plan("heldout4")
    for name in ("heldout5", "heldout6", "heldout7", "heldout8", "heldout9", "heldout10"):
        splits[name] = plan(name)
    assert {s.model for s in splits["train_gagge"]} == {"gagge"}
    assert {s.model for s in splits["heldout3"]} == {"gagge", "jos3"}
    assert {s.model for s in splits["heldout4"]} == {"gagge", "jos3"}
    for name in ("heldout5", "heldout6", "heldout7"):
        assert {s.model for s in splits[name]} == {"gagge", "jos3"}
        assert len(splits[name]) == len(splits["heldout5"])
    assert {s.model for s in splits["heldout8"]} == {"gagge", "jos3"}
    assert len(splits["heldout8"]) == 2 * len(splits["heldout7"])
    assert 0.2 < sum(s.heat_sensitive for s in splits["heldout8"]) / len(splits["heldout8"]) < 0.3
    assert len(splits["heldout9"]) == len(splits["heldout8"])
    assert len(splits["heldout10"]) == len(splits["heldout9"])
    for name in (
        "train_gagge",
        "heldout3",
        "heldout4",
        "heldout5",
        "heldout6",
        "heldout7",
        "heldout8",
        "heldout9",
        "heldout10",
    ):
        others = set().union(*({s.seed for s in v} for k, v in splits.items() if k != name))
        assert not {s.seed for s in splits[name]} & others, name
        assert {s.workout for s in splits[name]} == set(Workout)
        assert {s.room for s in splits[name]} == set(Room)


@pytest.mark.parametrize("split", ["heldout8", "heldout9", "heldout10", "pool,heldout10"])
def test_fitting_and_tuning_refuse_a_held_out_split(split: str, tmp_path: Path) -> None:
    """``bench.corpus.fit`` and ``bench.corpus.tune`` read their sessions through
    ``training_windows``: a held-out split not seen yet is refused before any file is read."""
    from bench.corpus.windows import training_windows

    with pytest.raises(ValueError, match="held-out"):
        training_windows(tmp_path, f"train,{split}", simulator=False)


@pytest.mark.parametrize("split", ["heldout", "heldout7", "pool"])
def test_seen_splits_are_in_the_tuning_pool(split: str, tmp_path: Path) -> None:
    """The sixth round fits on every seen split: they pass the check (and then the missing
    files are the error)."""
    from bench.corpus.windows import training_windows
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError, match=r"profiles\.toml"):
        training_windows(tmp_path, f"train,{split}", simulator=False)


def _one_session(tmp_path: Path) -> Windows:
    """A 40-min session (rest, then brisk work; the pill's core climbs 0.8 °C) cut into the
    engine's windows as ``bench.corpus.fit`` does (``bench.corpus.windows``)."""
    path = tmp_path / "rec.csv"
    lines = ["time,patient,heart_rate_bpm,skin_temp_c,core_temp_c"]
    for s in range(0, 2400):
        work = s >= 240
        hr = 70 + (70 if work else 0)
        core = 37.0 + (0.8 * min(1.0, (s - 240) / 1800) if work else 0.0)
        cell = f"{core:.3f}" if s % 20 == 0 else ""
        lines.append(f"{1_748_764_800 + s},p,{hr},{33.0 + (0.5 if work else 0.0):.2f},{cell}")
    path.write_text("\n".join(lines) + "\n")
    (w,) = cut(path, {})
    return w


def test_the_probes_replace_the_estimator_and_nothing_else(tmp_path: Path) -> None:
    """``run_session``'s ``make``: the engine's estimator through it scores exactly as without
    it; the truth probe at weight 1 shows the pill's rise (no error left), so the factory is
    the one that runs."""
    import functools

    from bench.corpus.probe import make_true_rise
    from monitor.engine.forecast import FORECAST_PARAMS
    from monitor.engine.heat_balance import HeatBalanceEstimator
    from monitor.engine.params import HEAT_BALANCE_PARAMS

    w = _one_session(tmp_path)
    plain = run_session(w, HEAT_BALANCE_PARAMS, FORECAST_PARAMS)
    same = run_session(
        w,
        HEAT_BALANCE_PARAMS,
        FORECAST_PARAMS,
        lambda _w, hb: HeatBalanceEstimator(params=hb),
    )
    assert same == plain
    assert plain.rmse_rise_c is not None and plain.rmse_rise_c > 0.05
    truth = run_session(
        w,
        HEAT_BALANCE_PARAMS,
        FORECAST_PARAMS,
        functools.partial(make_true_rise, weight=1.0),
    )
    assert truth.rmse_rise_c is not None and truth.rmse_rise_c < 1e-9
    assert truth.crossing == plain.crossing
