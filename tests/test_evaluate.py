"""``heatmon evaluate``: metrics against sessions worked out by hand, and the command end to end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.evaluate.metrics import SessionScore, Truth, score_session
from monitor.evaluate.summary import summarize

MIN = 60.0


def _session_a() -> SessionScore:
    # Pill every minute from t = 0. Rest readings (t < 120 s) are 37.0 → baseline 37.0.
    # From t = 120 the rise grows 0.04 °C/min: rise(120 + 60k) = 0.04·k.
    # Threshold 0.5: readings 0.48 at 840 s and 0.52 at 900 s → crossing by interpolation at
    # 840 + (0.5 − 0.48)/0.04 · 60 = 870 s.
    times = [60.0 * i for i in range(21)]
    values = [37.0, 37.0] + [37.0 + 0.04 * k for k in range(19)]
    truth = Truth(times, values, start=0.0)
    # Estimates every minute from 120 s (k = 0..18): error +0.1 for even k, −0.1 for odd k,
    # SD 0.05 for k < 10 (1.96·0.05 = 0.098 < 0.1: outside) and 0.06 after (0.1176: inside).
    # The estimated core is 37.1 + rise (engine baseline 37.1, true baseline 37.0).
    ks = range(19)
    est_t = [120.0 + 60.0 * k for k in ks]
    est_rise = [0.04 * k + (0.1 if k % 2 == 0 else -0.1) for k in ks]
    est_core = [37.1 + r for r in est_rise]
    est_sd = [0.05 if k < 10 else 0.06 for k in ks]
    # cool_down at k = 4 (t = 360 s, true rise 0.16) and from k = 12 (t = 840 s) to the end.
    levels = ["cool_down" if k == 4 or k >= 12 else "ok" for k in ks]
    return score_session(
        patient="p-a",
        session="p-a-0",
        threshold_c=0.5,
        times=est_t,
        est_rise=est_rise,
        est_core=est_core,
        est_sd=est_sd,
        levels=levels,
        truth=truth,
        start=0.0,
        step_s=MIN,
    )


def _session_b() -> SessionScore:
    # Rest at 37.0, then a flat rise of 0.1 °C: never near the threshold (0.5 − 0.15 = 0.35).
    times = [60.0 * i for i in range(21)]
    values = [37.0, 37.0] + [37.1] * 19
    ks = range(19)
    # Estimated rise 0.3 (error +0.2, SD 0.1 → 1.96·0.1 = 0.196 < 0.2: never inside);
    # cool_down at k = 2, 3 (one episode) and k = 10 (another).
    return score_session(
        patient="p-b",
        session="p-b-0",
        threshold_c=0.5,
        times=[120.0 + 60.0 * k for k in ks],
        est_rise=[0.3] * 19,
        est_core=[37.4] * 19,
        est_sd=[0.1] * 19,
        levels=["cool_down" if k in (2, 3, 10) else "ok" for k in ks],
        truth=Truth(times, values, start=0.0),
        start=0.0,
        step_s=MIN,
    )


def test_a_session_with_a_crossing_worked_by_hand() -> None:
    s = _session_a()
    assert s.crossing == pytest.approx(870.0)
    # Episodes: (360, 420) and (840, 1260) (end = last cool_down estimate + one step).
    assert s.episodes == [(360.0, 420.0), (840.0, 1260.0)]
    # The episode in effect at 870 s started at 840 s: lead 30 s = 0.5 min.
    assert s.lead_min == pytest.approx(0.5)
    assert s.detected_in_time
    # The early episode is not false: within 15 min of it the true rise reached 0.72 ≥ 0.35.
    assert s.false_cool_downs == 0
    # But its one minute had a true rise of 0.16 < 0.35: one minute in cool_down while low.
    assert s.cool_down_low_min == pytest.approx(1.0)
    # Errors ±0.1: RMSE 0.1; bias (10·0.1 − 9·0.1)/19 = 0.1/19.
    assert s.rmse_rise_c == pytest.approx(0.1)
    assert s.bias_rise_c == pytest.approx(0.1 / 19)
    # Absolute core errors 0.1 + (±0.1): ten 0.2 and nine 0.0 → RMSE √(10·0.04/19).
    assert s.rmse_core_c == pytest.approx(math.sqrt(0.4 / 19))
    assert s.bias_core_c == pytest.approx(0.1 + 0.1 / 19)
    # Inside the band only for k ≥ 10: 9 of 19.
    assert s.coverage == pytest.approx(9 / 19)
    assert s.max_true_rise_c == pytest.approx(0.72)
    assert s.exercise_hours == pytest.approx((1200 - 120) / 3600)


def test_a_session_with_false_cool_downs_worked_by_hand() -> None:
    s = _session_b()
    assert s.crossing is None and s.lead_min is None
    assert s.episodes == [(240.0, 360.0), (720.0, 780.0)]
    # Both episodes: true rise 0.1 < 0.35 throughout and for 15 min after → 2 false.
    assert s.false_cool_downs == 2
    assert s.cool_down_low_min == pytest.approx(3.0)
    assert s.rmse_rise_c == pytest.approx(0.2)
    assert s.bias_rise_c == pytest.approx(0.2)
    assert s.coverage == 0.0


def test_totals_over_the_two_sessions() -> None:
    total = summarize([_session_a(), _session_b()])
    assert (total.sessions, total.sessions_crossing, total.detected_in_time) == (2, 1, 1)
    assert total.sensitivity == 1.0
    assert total.lead_median_min == pytest.approx(0.5)
    # 2 false cool-downs in 2 × 0.3 exercise-hours.
    assert total.false_cool_downs_per_hour == pytest.approx(2 / 0.6)
    assert total.cool_down_low_min == pytest.approx(4.0)
    # Pooled over 38 estimates: √((19·0.01 + 19·0.04)/38); bias (0.1 + 19·0.2)/38.
    assert total.rmse_rise_c == pytest.approx(math.sqrt(0.025))
    assert total.bias_rise_c == pytest.approx(3.9 / 38)
    assert total.coverage_95 == pytest.approx(9 / 38)


T0 = 1_700_000_000  # a multiple of the 10-s step


def _resting_recording(path: Path) -> None:
    # 20 min at a flat 70 bpm and 33.0 °C skin. The pill (every 10 s) reads 37.0 for the
    # first 2 min, then climbs 0.05 °C/min: rise(T0 + 120 + 10k) = k/120 °C.
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("time", "patient", "heart_rate_bpm", "skin_temp_c", "core_temp_c"))
        for s in range(1200):
            core = ""
            if s % 10 == 0:
                core = f"{37.0 + max(0, s - 120) * 0.05 / 60:.6f}"
            w.writerow((T0 + s, "p-rest", "70", "33.0", core))


def test_evaluate_command_on_a_recording_worked_by_hand(tmp_path: Path) -> None:
    rec = tmp_path / "rest.csv"
    _resting_recording(rec)
    out = tmp_path / "report"
    assert main(["evaluate", str(rec), "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "evaluation.json").read_text())
    (session,) = data["sessions"]
    summary = data["summary"]
    # Heart rate never leaves its resting mean, so the estimated rise stays 0 (no alert).
    # Scored estimates: window ends T0+120 … T0+1200 (the last, partial window is flushed):
    # 109. Truth there: k/120 for k = 0…107, and 107/120 again at T0+1200 (10 s after the
    # last reading; held). Errors e = −truth:
    #   Σe = −(5778 + 107)/120 = −49.041667 → bias −0.449924
    #   Σe² = (414090 + 11449)/14400 = 29.551319 → RMSE √(29.551319/109) = 0.520685
    assert session["estimates_scored"] == 109
    assert session["bias_rise_c"] == pytest.approx(-0.449924, abs=1e-4)
    assert session["rmse_rise_c"] == pytest.approx(0.520685, abs=1e-4)
    # The estimated core sits at the default 37.1 °C: errors 0.1 + e →
    #   bias −0.349924; Σ(0.1+e)² = 29.551319 − 9.808333 + 1.09 = 20.832986 → RMSE 0.437182
    assert session["bias_core_c"] == pytest.approx(-0.349924, abs=1e-4)
    assert session["rmse_core_c"] == pytest.approx(0.437182, abs=1e-4)
    # The rise reaches 0.5 at T0 + 720 (k = 60) and nothing alerted: missed.
    assert session["crossing"] == pytest.approx(T0 + 720)
    assert session["lead_min"] is None
    assert summary["sensitivity"] == 0.0 and summary["missed"] == 1
    assert summary["false_cool_downs"] == 0
    assert session["exercise_hours"] == pytest.approx(0.3)
    # A person reads it: the page and the plot exist and name the session.
    page = (out / "index.html").read_text()
    assert "p-rest" in page and "sensitivity" in page
    assert len(list((out / "sessions").glob("*.png"))) == 1


def test_evaluate_refuses_a_recording_without_core(tmp_path: Path) -> None:
    rec = tmp_path / "no_core.csv"
    rec.write_text("time,patient,heart_rate_bpm,skin_temp_c\n1700000000,p-1,70,33.0\n")
    assert main(["evaluate", str(rec), "--json", str(tmp_path / "x.json"), "--no-progress"]) == 2


def test_evaluate_reads_the_truth_as_replay_reads_the_rows(tmp_path: Path) -> None:
    """A spreadsheet's byte-order mark, a line far beyond the row bound and a broken row:
    replay reports the rows, the truth is read the same way (no traceback, nothing held)."""
    from monitor.evaluate.run import evaluate

    clean = tmp_path / "rest.csv"
    _resting_recording(clean)
    lines = clean.read_bytes().split(b"\n")
    hostile = tmp_path / "hostile.csv"
    hostile.write_bytes(
        b"\xef\xbb\xbf"
        + b"\n".join([*lines[:50], b"1" * 200_000, *lines[50:]]).replace(b"\n", b"\r\n")
    )
    errors: list[str] = []
    result = evaluate(hostile, on_error=errors.append)
    assert errors == ["hostile.csv:51: line longer than 4096 bytes"]
    (session,) = result.sessions
    assert session.score is not None
    assert session.score.n_errors == 109
    assert session.score.crossing == pytest.approx(T0 + 720)
