"""The report a person reads: one PNG a session (true vs estimated rise with the 95 % band,
the threshold, the alerts) and an HTML page with the totals, the targets and every session."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.evaluate.metrics import BASELINE_S, LOW_MARGIN_C, Z95
from monitor.evaluate.run import Evaluation, SessionSeries
from monitor.evaluate.summary import TARGETS, Summary, score_json, summarize, summary_json

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def to_json(evaluation: Evaluation) -> dict[str, Any]:
    summary = summarize(evaluation.scores)
    return {
        "estimator": evaluation.estimator,
        "rows": evaluation.replay.rows,
        "samples": evaluation.replay.samples,
        "rejected_rows": evaluation.replay.rejected_rows,
        "flags": evaluation.replay.flags,
        "summary": summary_json(summary),
        "sessions": [score_json(s) for s in evaluation.scores],
    }


def plot_session(series: SessionSeries, path: Path) -> None:
    """True vs estimated rise with the band, the threshold, cool-down and caution shading."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    score = series.score
    truth = series.truth
    assert score is not None and truth is not None
    t0 = series.start
    minutes = [(t - t0) / 60.0 for t in series.times]
    lo = [r - Z95 * sd for r, sd in zip(series.est_rise, series.est_sd, strict=True)]
    hi = [r + Z95 * sd for r, sd in zip(series.est_rise, series.est_sd, strict=True)]
    base = truth.baseline or 0.0
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=90)
    ax.fill_between(minutes, lo, hi, color="tab:blue", alpha=0.18, lw=0, label="estimate ± 95 %")
    ax.plot(minutes, series.est_rise, color="tab:blue", lw=1.4, label="estimated rise")
    ax.plot(
        [(t - t0) / 60.0 for t in truth.times],
        [v - base for v in truth.values],
        color="black",
        lw=1.2,
        label="measured rise (held out)",
    )
    ax.axhline(score.threshold_c, color="tab:red", lw=1, ls="--", label="threshold")
    ax.axhline(score.threshold_c - LOW_MARGIN_C, color="tab:red", lw=0.6, ls=":")
    step = series.times[1] - series.times[0] if len(series.times) > 1 else 10.0
    for level, colour in (("caution", "gold"), ("cool_down", "tab:red")):
        run_start: float | None = None
        for m, lv in zip(minutes, series.levels, strict=True):
            if lv == level and run_start is None:
                run_start = m
            elif lv != level and run_start is not None:
                ax.axvspan(run_start, m, color=colour, alpha=0.15, lw=0)
                run_start = None
        if run_start is not None:
            ax.axvspan(run_start, minutes[-1] + step / 60.0, color=colour, alpha=0.15, lw=0)
    if score.crossing is not None:
        ax.axvline((score.crossing - t0) / 60.0, color="black", lw=0.8, ls="-.")
    ax.axvline(BASELINE_S / 60.0, color="grey", lw=0.5)
    lead = "missed" if score.lead_min is None else f"lead {score.lead_min:+.1f} min"
    if score.crossing is None:
        lead = "never reached the threshold"
    title = (
        f"{series.patient}: {lead}; RMSE {score.rmse_rise_c or 0:.2f} °C; "
        f"false cool-downs {score.false_cool_downs}"
    )
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("minutes from the start of the session (red: cool_down, yellow: caution)")
    ax.set_ylabel("core rise over baseline (°C)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_summary(evaluation: Evaluation, path: Path) -> None:
    """Leads (histogram) and estimated vs measured rise (scatter) over all sessions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = evaluation.scores
    leads = [s.lead_min for s in scores if s.lead_min is not None]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), dpi=90)
    if leads:
        a.hist(leads, bins=30, color="tab:blue")
    a.axvspan(3, 10, color="tab:green", alpha=0.15, label="target median 3–10 min")
    a.axvline(0, color="tab:red", lw=1)
    a.set_xlabel("lead before the true crossing (min; < 0 = late)")
    a.set_ylabel("sessions")
    a.legend(fontsize=8)
    xs: list[float] = []
    ys: list[float] = []
    for s in evaluation.sessions:
        if s.truth is None:
            continue
        for t, r in zip(s.times[::6], s.est_rise[::6], strict=True):
            true = s.truth.rise_at(t)
            if true is not None and t >= s.start + BASELINE_S:
                xs.append(true)
                ys.append(r)
    b.scatter(xs, ys, s=2, alpha=0.3)
    top = max([*xs, *ys, 1.0])
    b.plot([0, top], [0, top], color="black", lw=0.8)
    b.set_xlabel("measured rise (°C)")
    b.set_ylabel("estimated rise (°C)")
    b.grid(alpha=0.3)
    fig.suptitle(f"heatmon evaluate — estimator {evaluation.estimator}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def write_html(
    evaluation: Evaluation,
    out: Path,
    *,
    plots: bool,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """``out/index.html`` (+ ``out/summary.png`` and ``out/sessions/*.png`` with ``plots``)."""
    out.mkdir(parents=True, exist_ok=True)
    summary: Summary = summarize(evaluation.scores)
    images: dict[str, str] = {}
    if plots:
        (out / "sessions").mkdir(exist_ok=True)
        plot_summary(evaluation, out / "summary.png")
        done = 0
        for s in evaluation.sessions:
            if s.score is None:
                continue
            name = f"sessions/{SAFE_NAME.sub('_', s.session)}.png"
            plot_session(s, out / name)
            images[s.session] = name
            done += 1
            if progress is not None:
                progress(done)
    verdict = {True: "yes", False: "<b>no</b>", None: "–"}
    targets = "".join(
        f"<tr><td>{html.escape(t.label)}</td><td>{_fmt(getattr(summary, t.metric))}</td>"
        f"<td>{verdict[t.met(summary)]}</td></tr>"
        for t in TARGETS
    )
    totals = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(v, 3)}</td></tr>"
        for k, v in summary_json(summary).items()
        if k != "targets"
    )
    rows = []
    for s in evaluation.sessions:
        sc = s.score
        if sc is None:
            continue
        img = images.get(s.session)
        link = f'<a href="{img}">{html.escape(s.session)}</a>' if img else html.escape(s.session)
        rows.append(
            f"<tr><td>{link}</td><td>{_fmt(sc.threshold_c)}</td><td>{_fmt(sc.max_true_rise_c)}</td>"
            f"<td>{_fmt(sc.lead_min, 1)}</td><td>{sc.false_cool_downs}</td>"
            f"<td>{_fmt(sc.cool_down_low_min, 1)}</td><td>{_fmt(sc.rmse_rise_c)}</td>"
            f"<td>{_fmt(sc.bias_rise_c)}</td><td>{_fmt(sc.coverage)}</td></tr>"
        )
    gallery = "".join(
        f'<figure><img src="{name}" alt="{html.escape(session)}" loading="lazy"></figure>'
        for session, name in images.items()
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    style = (
        "body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:70rem}"
        "table{border-collapse:collapse;margin:.5rem 0 1.5rem}"
        "td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}figure{margin:0 0 1rem}"
    )
    data = html.escape(json.dumps(summary_json(summary)))
    title = html.escape(evaluation.estimator)
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>heatmon evaluate — {title}</title>
<style>{style}</style></head><body>
<h1>Detection on {evaluation.replay.rows} rows — estimator {title}</h1>
<p>Measured core held out of the estimator; generated {stamp}. heatmon is not a medical device.</p>
{'<img src="summary.png" alt="leads and estimated vs measured rise">' if plots else ""}
<h2>Targets (issue 9)</h2><table><tr><th>target</th><th>value</th><th>met</th></tr>{targets}</table>
<h2>Totals</h2><table>{totals}</table>
<h2>Sessions</h2><table><tr><th>session</th><th>threshold °C</th><th>max true rise °C</th>
<th>lead min</th><th>false cool-downs</th><th>min in cool_down while low</th><th>RMSE °C</th>
<th>bias °C</th><th>coverage</th></tr>{"".join(rows)}</table>
{gallery}
<script type="application/json" id="evaluation">{data}</script>
</body></html>"""
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
