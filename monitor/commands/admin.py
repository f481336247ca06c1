"""``heatmon admin``: the care team without a browser (the store of ``[careteam]``).

- ``heatmon admin import --by NAME [--admin LOGIN]…`` seeds the store from the TOML file.
- ``heatmon admin patients [add ID [--name N] [--set KEY=VALUE…] | edit ID --set KEY=VALUE…
  --version N | archive ID]``
- ``heatmon admin caregivers [add LOGIN --role R | disable | enable | reset LOGIN]``
  (``add`` and ``reset`` print a one-time invitation link)
- ``heatmon admin assign LOGIN PATIENT [--remove]``
- ``heatmon admin link PATIENT`` (a new patient link and its QR code) / ``--revoke ID``
- ``heatmon admin audit [--patient ID] [--limit N]``

Every change is recorded in the audit log with ``--by``; a running service picks it up
within ``[careteam] poll_s``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from monitor.careteam.config import store_url
from monitor.careteam.records import ROLES, CareTeamError
from monitor.careteam.seed import import_config
from monitor.careteam.store import CareStore, first_error
from monitor.config import HeatmonConfig, load_config
from monitor.errors import ConfigError, InputError
from monitor.model import iso_utc
from monitor.mqtt.strictjson import MAX_DEPTH, nesting_depth
from monitor.profile import PATIENT_ID_PATTERN, PatientProfile
from monitor.web.config import LOGIN_PATTERN


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "admin",
        help="the care team: patients, caregivers, assignments, links, audit log",
        description="Manage the care-team store ([careteam]) without the dashboard.",
    )
    p.add_argument("--config", type=Path, default=Path("heatmon.toml"), help="TOML file")
    p.add_argument("--url", help="the store's database URL (default: as configured)")
    acts = p.add_subparsers(dest="admin_command", metavar="ACTION", required=True)

    imp = acts.add_parser("import", help="seed the store from the TOML file")
    imp.add_argument("--by", required=True, help="who imports (recorded in the audit log)")
    imp.add_argument("--admin", action="append", default=[], help="make LOGIN an admin")
    imp.set_defaults(func=run_import)

    pat = acts.add_parser("patients", help="list, add, edit or archive patients")
    pat.add_argument("action", nargs="?", choices=("list", "add", "edit", "archive"))
    pat.add_argument("patient", nargs="?")
    pat.add_argument("--name", help="display name (add)")
    pat.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a profile field"
    )
    pat.add_argument("--version", type=int, help="the version your edit is based on")
    pat.add_argument("--by", help="who (a login)")
    pat.set_defaults(func=run_patients)

    cg = acts.add_parser("caregivers", help="list, add, disable, enable or reset caregivers")
    cg.add_argument("action", nargs="?", choices=("list", "add", "disable", "enable", "reset"))
    cg.add_argument("login", nargs="?")
    cg.add_argument("--role", choices=ROLES, default="caregiver")
    cg.add_argument("--by", help="who (a login)")
    cg.set_defaults(func=run_caregivers)

    asg = acts.add_parser("assign", help="let a caregiver see a patient")
    asg.add_argument("login")
    asg.add_argument("patient")
    asg.add_argument("--remove", action="store_true", help="unassign instead")
    asg.add_argument("--by", required=True)
    asg.set_defaults(func=run_assign)

    lk = acts.add_parser("link", help="issue (or revoke) a patient link for a phone")
    lk.add_argument("patient", nargs="?")
    lk.add_argument("--revoke", metavar="ID", help="revoke this link")
    lk.add_argument("--by", required=True)
    lk.set_defaults(func=run_link)

    au = acts.add_parser("audit", help="the audit log, newest first")
    au.add_argument("--patient")
    au.add_argument("--limit", type=int, default=50)
    au.add_argument("--json", action="store_true")
    au.set_defaults(func=run_audit)


def _open(args: argparse.Namespace) -> tuple[CareStore, HeatmonConfig]:
    path: Path = args.config
    config = load_config(path) if path.exists() else HeatmonConfig()
    url = args.url or store_url(config)
    if url is None:
        raise ConfigError(f"{path}: no [careteam] section (and no --url): no store to manage")
    return CareStore(url=url), config


def _by(args: argparse.Namespace) -> str:
    by = args.by
    if not by or not re.fullmatch(LOGIN_PATTERN, by):
        raise InputError("--by takes a login: letters, digits and ._@-", where="--by")
    return str(by)


def _need(value: str | None, what: str, pattern: str) -> str:
    if not value or not re.fullmatch(pattern, value):
        raise InputError(f"give a valid {what}", where=what)
    return value


def run_import(args: argparse.Namespace) -> int:
    store, config = _open(args)
    with store:
        counts = import_config(store, config, by=_by(args), admins=args.admin)
    print(f"imported {counts.added} item(s); {counts.skipped} already in the store")
    return 0


def _value(key: str, text: str) -> Any:
    """A ``--set`` value: JSON when it is JSON (nesting bounded before parsing, as for any
    input: ``monitor/mqtt/strictjson.py``), else the text itself."""
    depth = nesting_depth(text.encode("utf-8", "surrogatepass"))
    if depth > MAX_DEPTH:
        raise InputError(
            f"the value nests {depth} levels deep; at most {MAX_DEPTH} are allowed", where="--set"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
    except ValueError:  # an integer of more digits than Python converts (4,300)
        digits = sum(c.isdigit() for c in text)
        raise InputError(
            f"{key[:40]}: a number of {digits} digits is no profile value", where="--set"
        ) from None


def run_patients(args: argparse.Namespace) -> int:
    store, _ = _open(args)
    with store:
        action = args.action or "list"
        if action == "list":
            for p in store.patients(archived=True):
                flag = " (archived)" if p.archived else ""
                print(
                    f"{p.id:<20} v{p.version:<3} threshold {p.profile.threshold_rise_c:+.2f} °C "
                    f"caution margin {p.profile.caution_margin_c:.2f} °C{flag}"
                )
            return 0
        patient = _need(args.patient, "patient", PATIENT_ID_PATTERN)
        by = _by(args)
        changes: dict[str, Any] = {}
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise InputError(f"{item!r}: write KEY=VALUE", where="--set")
            changes[key] = _value(key, value)
        try:
            if action == "add":
                try:
                    new = PatientProfile.model_validate(
                        changes | {"id": patient, "display_name": args.name}
                    )
                except ValueError as err:
                    raise InputError(first_error(err), where="--set") from err
                rec = store.add_patient(new, by=by)
            else:
                if args.version is None:
                    raise InputError("give the version your edit is based on", where="--version")
                rec = store.update_patient(
                    patient,
                    changes,
                    based_on=args.version,
                    by=by,
                    action="patient.archive" if action == "archive" else "patient.edit",
                    archived=True if action == "archive" else None,
                )
        except CareTeamError as err:
            print(f"refused: {err}", file=sys.stderr)
            for change in err.extra.get("changes", ()):
                print(
                    f"  changed by {change['actor']} at {iso_utc(change['at'])}: "
                    f"{change['before']} → {change['after']}",
                    file=sys.stderr,
                )
            return 1
        print(f"{rec.id} is now version {rec.version}")
    return 0


def run_caregivers(args: argparse.Namespace) -> int:
    store, config = _open(args)
    with store:
        action = args.action or "list"
        if action == "list":
            assigned = store.assignments()
            for c in store.caregivers():
                state = "disabled" if c.disabled else ("invited" if c.invite_pending else "active")
                who = ", ".join(sorted(assigned.get(c.login, ()))) or "-"
                print(f"{c.login:<20} {c.role:<10} {state:<9} v{c.version:<3} sees {who}")
            return 0
        login = _need(args.login, "login", LOGIN_PATTERN)
        by = _by(args)
        try:
            token = None
            if action == "add":
                _, token = store.add_caregiver(login, args.role, by=by)
            else:
                current = store.caregiver(login)
                _, token = store.update_caregiver(
                    login,
                    based_on=current.version,
                    by=by,
                    disabled={"disable": True, "enable": False}.get(action),
                    reset=action == "reset",
                )
        except CareTeamError as err:
            print(f"refused: {err}", file=sys.stderr)
            return 1
        if token is not None:
            base = str(dict(config.web).get("public_url", "") or "http://127.0.0.1:8080")
            print(f"one-time link for {login}: {base.rstrip('/')}/invite#{token}")
        else:
            print(f"{login}: {action} done")
    return 0


def run_assign(args: argparse.Namespace) -> int:
    store, _ = _open(args)
    with store:
        try:
            changed = store.assign(args.login, args.patient, by=_by(args), assigned=not args.remove)
        except CareTeamError as err:
            print(f"refused: {err}", file=sys.stderr)
            return 1
    print("done" if changed else "nothing to change")
    return 0


def run_link(args: argparse.Namespace) -> int:
    import segno

    store, config = _open(args)
    with store:
        try:
            if args.revoke:
                store.revoke_link(args.revoke, by=_by(args))
                print("revoked")
                return 0
            patient = _need(args.patient, "patient", PATIENT_ID_PATTERN)
            link, token = store.issue_link(patient, by=_by(args))
        except CareTeamError as err:
            print(f"refused: {err}", file=sys.stderr)
            return 1
    base = str(dict(config.web).get("public_url", "") or "http://127.0.0.1:8080")
    url = f"{base.rstrip('/')}/patient/{patient}?token={token}"
    print(f"link {link.id} for {patient}: {url}")
    if sys.stdout.isatty():
        segno.make(url, error="m").terminal(compact=True)
    return 0


def run_audit(args: argparse.Namespace) -> int:
    store, _ = _open(args)
    with store:
        entries = store.audit(patient=args.patient, limit=args.limit)
    if args.json:
        print(json.dumps([e.to_json() for e in entries], indent=2, ensure_ascii=False))
        return 0
    for e in entries:
        mark = "REFUSED " if e.outcome == "refused" else ""
        print(
            f"{iso_utc(e.at)} {e.actor:<12} {mark}{e.action:<18} {e.kind}:{e.subject} "
            f"{_json(e.before)} → {_json(e.after)}" + (f" ({e.detail})" if e.detail else "")
        )
    return 0


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
