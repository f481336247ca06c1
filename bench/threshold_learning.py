"""Study: how the personal-threshold rules behave on simulated patients (not a timing benchmark).

Run: ``.venv/bin/python bench/threshold_learning.py [--patients 2000] [--sessions 20]
[--out artifacts/threshold-learning]``.

Each simulated patient has a true onset rise θ. In every session they press "I feel
symptoms" when their *true* rise reaches θ plus their day-to-day spread (sd 0.10 °C); the
report carries heatmon's *estimate* of the rise then, which is off by the estimator's real
error, while the estimate's own stated sd may be smaller (today's heat-balance estimator
states ≈ 0.06 °C but its RMSE against a model it never saw was 0.26 °C, issue 9). For each
scenario the study reports after how many sessions a first suggestion appears, how far it is
from θ, and how often it would sit more than 0.1 °C *above* θ (the unsafe side). Writes
``summary.json`` and a chart ``threshold-learning.png`` (heatmon's rule); each scenario is
run with heatmon's rule (the estimate less one posterior sd) and with the bare posterior
mean, for comparison.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path

from monitor.engine.learning import BETWEEN_SD_C, DEFAULT_RULES, Report, Rules, evaluate


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    population: str  # "prior": θ ~ N(0.5, 0.15²); "wide": θ ~ U(0.25, 0.9)
    stated_sd_c: float  # the sd the estimate states
    true_error_sd_c: float  # the estimate's real error
    bias_c: float = 0.0  # the estimate's real bias


SCENARIOS = (
    Scenario("honest estimate (sd 0.06 stated and true)", "prior", 0.06, 0.06),
    Scenario("wide population, honest estimate", "wide", 0.06, 0.06),
    Scenario("overconfident estimate (states 0.06, errs 0.26)", "wide", 0.06, 0.26),
    Scenario("honest loose estimate (0.26 stated and true)", "wide", 0.26, 0.26),
    Scenario("estimate biased +0.1 °C", "wide", 0.06, 0.06, 0.10),
)


def run(
    scenario: Scenario, *, rules: Rules, patients: int, sessions: int, seed: int
) -> dict[str, object]:
    rng = random.Random(seed)
    first_at: list[int] = []
    errors: list[float] = []
    unsafe = 0
    never = 0
    for _ in range(patients):
        theta = rng.gauss(0.5, 0.15) if scenario.population == "prior" else rng.uniform(0.25, 0.9)
        reports: list[Report] = []
        for k in range(sessions):
            true_rise = theta + rng.gauss(0.0, BETWEEN_SD_C)
            estimate = true_rise + scenario.bias_c + rng.gauss(0.0, scenario.true_error_sd_c)
            reports.append(
                Report(session=f"s{k}", time=float(k), rise_c=estimate, sd_c=scenario.stated_sd_c)
            )
            result = evaluate(reports, prior_mean_c=0.5, current_c=0.5, rules=rules)
            if result.suggested_c is not None:
                first_at.append(k + 1)
                err = result.suggested_c - theta
                errors.append(err)
                unsafe += err > 0.1
                break
        else:
            never += 1
    suggested = len(first_at)
    return {
        "scenario": scenario.name,
        "rule": f"estimate − {rules.safety_z:g} sd",
        "patients": patients,
        "suggested_fraction": round(suggested / patients, 3),
        "sessions_to_first_suggestion_median": statistics.median(first_at) if first_at else None,
        "error_median_c": round(statistics.median(errors), 3) if errors else None,
        "error_abs_p90_c": round(sorted(abs(e) for e in errors)[int(0.9 * len(errors))], 3)
        if errors
        else None,
        "unsafe_fraction": round(unsafe / suggested, 3) if suggested else None,
        "never_suggested": never,
        "_errors": errors,
        "_first_at": first_at,
    }


def chart(results: list[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in results:
        if r["rule"] != f"estimate − {DEFAULT_RULES.safety_z:g} sd":
            continue
        errors = r["_errors"]
        first = r["_first_at"]
        assert isinstance(errors, list) and isinstance(first, list)
        axes[0].hist(errors, bins=40, histtype="step", label=str(r["scenario"]))
        axes[1].hist(first, bins=range(1, 22), histtype="step", label=str(r["scenario"]))
    axes[0].axvline(0.1, color="red", linestyle="--", label="0.1 °C above the true onset")
    axes[0].set_xlabel("first suggestion − true onset rise (°C)")
    axes[0].set_ylabel("patients")
    axes[1].set_xlabel("sessions until the first suggestion")
    axes[0].legend(fontsize=7)
    fig.suptitle("Personal thresholds: the rules on simulated patients")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("artifacts/threshold-learning"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = [
        run(s, rules=rules, patients=args.patients, sessions=args.sessions, seed=args.seed + n)
        for n, s in enumerate(SCENARIOS)
        for rules in (Rules(safety_z=0.0), DEFAULT_RULES)
    ]
    summary = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    chart(results, args.out / "threshold-learning.png")
    for row in summary:
        print(json.dumps(row, ensure_ascii=False))
    print(f"chart: {args.out / 'threshold-learning.png'}")


if __name__ == "__main__":
    main()
