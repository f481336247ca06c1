"""``heatmon profile``: personal thresholds without the dashboard.

- ``heatmon profile suggestions PATIENT`` lists the threshold in force, the pending
  suggestion with the sessions and rises behind it, and past decisions (``--all``: every
  suggestion, also superseded ones; ``--json``: the dashboard API's shape).
- ``heatmon profile accept ID --by NAME`` / ``reject ID --by NAME`` decide a pending
  suggestion, recorded with who and when; a running service applies an accepted threshold
  within ``[sinks.thresholds] poll_s`` (5 s).
- ``heatmon profile reset PATIENT --by NAME`` goes back to the configured threshold
  (recorded the same way): with a care-team store, the threshold the care team last set by
  hand (the patient added with it, or typed; :func:`~monitor.careteam.decisions.set_by_hand`),
  else the TOML file's.

With a care-team store (``[careteam]``) ``--by`` must be an enabled clinician or admin
assigned to the patient (else exit code 2, nothing written), and a decision writes the
patient's record and an audit entry too (:mod:`monitor.careteam.decisions`); without one,
``--by`` is recorded as given.

The store is the one the service's ``thresholds`` sink keeps (``[sinks.thresholds] path``,
default ``<data_dir>/thresholds.sqlite``); ``--store`` names another.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from monitor.careteam.config import store_url
from monitor.careteam.decisions import check_decider, decision_writers, set_by_hand
from monitor.careteam.store import CareStore
from monitor.config import HeatmonConfig, load_config
from monitor.engine.learning import Z95
from monitor.errors import ConfigError, InputError
from monitor.model import iso_utc
from monitor.profile import LOGIN_PATTERN, PATIENT_ID_PATTERN, PatientProfile
from monitor.thresholds.floor import check_acceptable
from monitor.thresholds.location import shared_url, store_path
from monitor.thresholds.records import Suggestion, SuggestionError, ThresholdChange
from monitor.thresholds.store import ThresholdStore, Within
from monitor.thresholds.views import patient_view

NAME_PATTERN = LOGIN_PATTERN
"""Who decided: a caregiver's login (as on the dashboard), no spaces or free text."""
ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "profile",
        help="personal thresholds: list suggestions, accept or reject them",
        description="Personal cool-down thresholds learnt from symptom reports. heatmon only "
        "suggests; a caregiver decides, and the decision is recorded with who and when.",
    )
    p.add_argument("--config", type=Path, default=Path("heatmon.toml"), help="TOML file")
    p.add_argument("--store", type=Path, help="the thresholds SQLite file (default: as configured)")
    actions = p.add_subparsers(dest="profile_command", metavar="ACTION", required=True)
    s = actions.add_parser("suggestions", help="list a patient's threshold suggestions")
    s.add_argument("patient", help="the patient's pseudonymous id")
    s.add_argument("--all", action="store_true", help="also superseded suggestions")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=run_suggestions)
    for name, accept in (("accept", True), ("reject", False)):
        a = actions.add_parser(name, help=f"{name} a pending suggestion")
        a.add_argument("suggestion", metavar="ID", help="the suggestion's id")
        a.add_argument("--by", required=True, metavar="NAME", help="who decides (a login)")
        a.set_defaults(func=run_decide, accept=accept)
    r = actions.add_parser(
        "reset", help="go back to the configured (with a care team: the clinician-set) threshold"
    )
    r.add_argument("patient", help="the patient's pseudonymous id")
    r.add_argument("--by", required=True, metavar="NAME", help="who decides (a login)")
    r.set_defaults(func=run_reset)


def _config(args: argparse.Namespace) -> HeatmonConfig:
    path: Path = args.config
    if not path.exists():
        if args.store is None:
            raise ConfigError(f"{path}: no such file; give --config or --store")
        return HeatmonConfig()
    return load_config(path)


def _store(args: argparse.Namespace, config: HeatmonConfig) -> ThresholdStore:
    url = shared_url(config) if args.store is None else None
    if url is not None:  # the care team's PostgreSQL holds the suggestions
        return ThresholdStore(url=url)
    path: Path = args.store if args.store is not None else store_path(config)
    if not path.exists():
        raise ConfigError(f"{path}: no thresholds store yet (is [sinks.thresholds] enabled?)")
    return ThresholdStore(path=path)


@contextlib.contextmanager
def _team(config: HeatmonConfig) -> Iterator[CareStore | None]:
    """The care-team store of ``config`` (``None`` without ``[careteam]``)."""
    url = store_url(config)
    if url is None:
        yield None
        return
    with CareStore(url=url) as team:
        yield team


def _record(
    store: ThresholdStore,
    team: CareStore | None,
    *,
    patient: str,
    by: str,
    action: str,
    suggestion: str | None,
) -> tuple[Within | None, Callable[[ThresholdChange | None], None]]:
    """How the decision reaches the care team's record and audit log
    (:func:`~monitor.careteam.decisions.decision_writers`); neither without a store."""
    if team is None:
        return None, lambda _change: None
    within, apart = decision_writers(
        team, store.url, patient=patient, by=by, action=action, suggestion=suggestion
    )
    return within, apart if apart is not None else (lambda _change: None)


def _profile(config: HeatmonConfig, patient: str) -> PatientProfile:
    found = config.profile(patient)
    return found if found is not None else PatientProfile(id=patient)


def run_suggestions(args: argparse.Namespace) -> int:
    patient: str = args.patient
    if not re.fullmatch(PATIENT_ID_PATTERN, patient):
        raise InputError(f"{patient!r} is not a valid patient id", where="patient")
    config = _config(args)
    base, source = _profile(config, patient), "configured"
    with _team(config) as team:  # with a care team, its threshold is the base (as reset's)
        by_hand = set_by_hand(team, patient) if team is not None else None
    if by_hand is not None:
        base, source = base.model_copy(update={"threshold_rise_c": by_hand}), "set by the care team"
    with _store(args, config) as store:
        view = patient_view(store, base, limit=200 if args.all else 20)
    if args.json:
        print(json.dumps(view | {"configured_by": source}, indent=2, ensure_ascii=False))
        return 0
    print(
        f"{patient}: threshold in force {view['threshold_c']:+.2f} °C "
        f"({source} {view['configured_c']:+.2f} °C, never below {view['floor_c']:+.2f} °C)"
    )
    shown = [s for s in view["suggestions"] if args.all or s["status"] != "superseded"]
    if not shown:
        print("no suggestions: not enough symptom reports, or they agree with the threshold")
    for s in shown:
        _print_suggestion(s)
    for c in view["changes"]:
        print(
            f"changed {c['previous_c']:+.2f} → {c['threshold_c']:+.2f} °C "
            f"by {c['set_by']} at {c['set_at']}"
        )
    return 0


def _print_suggestion(s: dict[str, Any]) -> None:
    head = (
        f"{s['status']:<10} {s['id']}  suggest {s['suggested_c']:+.2f} °C "
        f"(was {s['current_c']:+.2f} °C) — {s['reason']}; made {s['created']}"
    )
    if s["decided_by"]:
        head += f"; {s['status']} by {s['decided_by']} at {s['decided_at']}"
    print(head)
    for r in s["evidence"]:
        ci = f" (±{Z95 * r['rise_sd_c']:.2f}, 95 %)" if r["rise_sd_c"] is not None else ""
        print(f"    session {r['session']}  {r['time']}  symptoms at {r['rise_c']:+.2f} °C{ci}")


def run_decide(args: argparse.Namespace) -> int:
    sid: str = args.suggestion
    by: str = args.by
    if not re.fullmatch(ID_PATTERN, sid):
        raise InputError(f"{sid!r} is not a suggestion id", where="ID")
    if not re.fullmatch(NAME_PATTERN, by):
        raise InputError("--by takes a login: letters, digits and ._@-", where="--by")
    config = _config(args)
    with _store(args, config) as store, _team(config) as team:
        found: Suggestion | None = store.suggestion(sid)
        if found is None:
            raise InputError("no such suggestion", where=sid)
        profile = _profile(config, found.patient)
        if team is not None:  # only whom the care team lets decide, as on the dashboard
            check_decider(team, by, found.patient)
            profile = team.patient(found.patient).profile
        action = "threshold.accept_suggestion" if args.accept else "suggestion.reject"
        within, after = _record(
            store, team, patient=found.patient, by=by, action=action, suggestion=sid
        )
        try:
            if args.accept and found.status == "pending":
                check_acceptable(found.suggested_c, profile)
            decided, change = store.decide(
                sid, patient=found.patient, accept=args.accept, by=by, at=time.time(), within=within
            )
        except SuggestionError as err:
            raise InputError(str(err), where=sid) from err
        after(change)
    assert decided.decided_at is not None
    print(f"{decided.status} by {by} at {iso_utc(decided.decided_at)}")
    if change is not None:
        print(
            f"{found.patient}: threshold {change.previous_c:+.2f} → {change.threshold_c:+.2f} °C "
            "(a running service applies it within seconds)"
        )
    return 0


def _check_patient_and_name(patient: str, by: str) -> None:
    if not re.fullmatch(PATIENT_ID_PATTERN, patient):
        raise InputError(f"{patient!r} is not a valid patient id", where="patient")
    if not re.fullmatch(NAME_PATTERN, by):
        raise InputError("--by takes a login: letters, digits and ._@-", where="--by")


def run_reset(args: argparse.Namespace) -> int:
    patient: str = args.patient
    by: str = args.by
    _check_patient_and_name(patient, by)
    config = _config(args)
    configured = _profile(config, patient).threshold_rise_c
    source = "configured"
    with _store(args, config) as store, _team(config) as team:
        if team is not None:  # only whom the care team lets decide, as on the dashboard
            check_decider(team, by, patient)
            by_hand = set_by_hand(team, patient)
            if by_hand is not None:  # the care team's record, not the TOML file, is the base
                configured, source = by_hand, "set by the care team"
        within, after = _record(
            store, team, patient=patient, by=by, action="threshold.reset", suggestion=None
        )
        change = store.reset(patient, configured_c=configured, by=by, at=time.time(), within=within)
        if change is not None:
            after(change)
    if change is None:
        print(f"{patient}: the threshold {configured:+.2f} °C ({source}) is in force already")
    else:
        print(
            f"{patient}: threshold {change.previous_c:+.2f} → {change.threshold_c:+.2f} °C "
            f"({source}) by {by}; a running service applies it within seconds"
        )
    return 0
