"""Score the detection on the **pool** (every seen split, ``bench.corpus.generate.SEEN``) with
the current parameters or with some changed: ``python -m bench.corpus.pool [--set key=value
…]``. It prints the totals, the totals without heatmon's simulator, and the figures by model,
by model × workout and by model × room, so that a change can be judged where it acts (the
sixth round's false alarms: Gagge strength sessions in neutral rooms; its late alerts: JOS-3
strength and early aerobic). ``--jobs`` replays in that many processes. An unseen held-out
split is never read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.corpus.trial import EstimatorFactory, run_session
from bench.corpus.tune import FORECAST_KEYS, objective, split_params
from bench.corpus.windows import POOL, Windows, training_windows
from monitor.engine.forecast import FORECAST_PARAMS, ForecastParams
from monitor.engine.params import HEAT_BALANCE_PARAMS, HeatBalanceParams
from monitor.evaluate.metrics import SessionScore
from monitor.evaluate.summary import Summary, summarize

_WINDOWS: list[Windows] = []


def _init(windows: list[Windows]) -> None:
    global _WINDOWS  # the worker's copy of the sessions
    _WINDOWS = windows


def _run(
    args: tuple[int, HeatBalanceParams, ForecastParams, EstimatorFactory | None],
) -> SessionScore:
    i, hb, fc, make = args
    return run_session(_WINDOWS[i], hb, fc, make)


def replay(
    windows: list[Windows],
    hb: HeatBalanceParams,
    fc: ForecastParams,
    *,
    jobs: int = 1,
    make: EstimatorFactory | None = None,
) -> list[SessionScore]:
    """Every session with these parameters, in ``jobs`` processes (``make``: a picklable
    estimator factory instead of the engine's estimator)."""
    if jobs <= 1:
        return [run_session(w, hb, fc, make) for w in windows]
    tasks = [(i, hb, fc, make) for i in range(len(windows))]
    with ProcessPoolExecutor(jobs, initializer=_init, initargs=(windows,)) as ex:
        return list(ex.map(_run, tasks, chunksize=16))


def session_info(corpus: Path, splits: str) -> dict[str, dict[str, object]]:
    """``sessions.json`` of each split, by patient id."""
    infos: dict[str, dict[str, object]] = {}
    for split in splits.replace("pool", POOL).split(","):
        for info in json.loads((corpus / split / "sessions.json").read_text()):
            infos[str(info["patient"])] = info
    return infos


def groups(
    scores: Sequence[SessionScore], infos: dict[str, dict[str, object]]
) -> list[tuple[str, Summary]]:
    """Totals of the corpus sessions, the simulator's, then by model, model × workout and
    model × room."""

    def part(label: str, **match: str) -> tuple[str, Summary]:
        kept = [
            s
            for s in scores
            if s.patient in infos and all(str(infos[s.patient][k]) == v for k, v in match.items())
        ]
        return label, summarize(kept)

    out = [part("corpus")]
    sim = [s for s in scores if s.patient.startswith("sim-")]
    if sim:
        out.append(("simulator", summarize(sim)))
    for model in ("gagge", "jos3"):
        out.append(part(model, model=model))
        for key in ("workout", "room"):
            for value in sorted({str(i[key]) for i in infos.values()}):
                out.append(part(f"{model} {value}", model=model, **{key: value}))
    return out


def _f(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def line(s: Summary) -> str:
    return (
        f"n {s.sessions:4d} sens {_f(s.sensitivity, 3)} ({s.detected_late} late, {s.missed} "
        f"missed of {s.sessions_crossing}) lead {_f(s.lead_median_min, 1)}/"
        f"{_f(s.lead_p10_min, 1)}/{_f(s.lead_p90_min, 1)} false/h "
        f"{_f(s.false_cool_downs_per_hour, 3)} ({s.false_cool_downs}) RMSE "
        f"{_f(s.rmse_rise_c, 3)} cov {_f(s.coverage_95, 3)}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.corpus.pool", description=__doc__.split("\n")[0]
    )
    p.add_argument("--corpus", type=Path, default=Path("var/corpus"))
    p.add_argument("--splits", default="pool")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--no-simulator", action="store_true")
    args = p.parse_args(argv)
    started = time.perf_counter()
    try:
        windows = training_windows(args.corpus, args.splits, simulator=not args.no_simulator)
    except ValueError as err:
        p.error(str(err))
    infos = session_info(args.corpus, args.splits)
    values = {k: float(v) for k, v in (item.split("=", 1) for item in args.set)}
    unknown = set(values) - FORECAST_KEYS - set(HeatBalanceParams.__dataclass_fields__)
    if unknown:
        p.error(f"--set: unknown {', '.join(sorted(unknown))}")
    hb, fc = split_params(values, HEAT_BALANCE_PARAMS, FORECAST_PARAMS)
    scores = replay(windows, hb, fc, jobs=args.jobs)
    total = summarize(scores)
    print(f"{len(windows)} sessions in {time.perf_counter() - started:.0f} s; {values or 'as is'}")
    print(f"{'all':>28} J {objective(total):6.3f}  {line(total)}")
    for label, s in groups(scores, infos):
        if s.sessions:
            print(f"{label:>28} J {objective(s):6.3f}  {line(s)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
