"""Personal-threshold decisions made outside the dashboard (``heatmon profile accept``,
``reject``, ``reset``) as the care team sees them: who may make one, and the patient's
record and audit entry it writes.

The record's ``threshold_rise_c`` is what the care team's pages show; the dashboard's
accept and a typed threshold write it together with ``threshold_changes``, and so does
the command line here, in the very transaction of the decision when both stores share a
database (the default). ``threshold_changes`` stays the history (who, when, from what);
the record never holds a threshold that is not the newest row there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, select, update

from monitor.careteam import schema as t
from monitor.careteam.base import StoreBase
from monitor.careteam.config import sqlite_file
from monitor.careteam.records import Conflict, Forbidden, Invalid, NotFound, loads
from monitor.careteam.store import CareStore, log_threshold
from monitor.model import iso_utc
from monitor.profile import PatientProfile
from monitor.thresholds.records import ThresholdChange
from monitor.thresholds.store import Within

SET_BY_HAND = ("patient.add", "patient.edit", "threshold.change")
"""The audit actions of a threshold the care team set by hand: the patient added with it
(dashboard, ``heatmon admin patients add``, ``import``), typed on the dashboard
(``threshold.change``) or with ``heatmon admin patients edit`` (``patient.edit``). Accepted
suggestions and resets are decisions of another kind (``threshold.*`` of
:func:`record_decision`)."""

DECIDERS = ("clinician", "admin")
"""Who may decide a patient's threshold: a clinician (or admin) assigned to them, as on the
dashboard (``monitor/web/teamguard.py``)."""


def same_database(a: str, b: str) -> bool:
    """Whether two store URLs name one database (then a decision and the care team's record
    of it share one transaction)."""
    fa, fb = sqlite_file(a), sqlite_file(b)
    if fa is None and fb is None:
        return a == b
    return fa is not None and fb is not None and fa.resolve() == fb.resolve()


def check_decider(store: CareStore, login: str, patient: str) -> None:
    """:class:`Forbidden` (nothing is written) unless ``login`` is an enabled caregiver of
    the store, a clinician or admin, assigned to ``patient``."""
    only = f"only a clinician or admin assigned to {patient} may decide its threshold"
    try:
        who = store.caregiver(login)
    except NotFound as err:
        raise Forbidden(f"--by {login}: not a caregiver in the care-team store; {only}") from err
    if who.disabled:
        raise Forbidden(f"--by {login}: this caregiver is disabled in the care-team store")
    if who.role not in DECIDERS:
        raise Forbidden(f"--by {login}: a {who.role}; {only}")
    if patient not in store.assignments().get(login, frozenset()):
        raise Forbidden(f"--by {login}: not assigned to {patient}; {only}")


def record_decision(
    store: StoreBase,
    conn: Connection,
    *,
    patient: str,
    threshold_c: float | None,
    by: str,
    action: str,
    suggestion: str | None,
) -> None:
    """Within ``conn``'s transaction: the patient's record takes ``threshold_c`` (its
    version goes up, so an edit based on the version before is refused with this one
    listed) and the audit log an entry like the dashboard's. ``threshold_c`` ``None`` (a
    rejected suggestion), or a patient not in the store: the audit entry only."""
    row = None
    if threshold_c is not None:
        query = select(t.patients).where(t.patients.c.id == patient).with_for_update()
        row = conn.execute(query).first()
    if row is None or threshold_c is None:
        store.audit_entry(
            conn,
            actor=by,
            action=action,
            kind="suggestion" if suggestion is not None else "patient",
            subject=(suggestion or patient)[:64],
            patient=patient,
            after={"status": "rejected"} if threshold_c is None else {"threshold_c": threshold_c},
        )
        return
    old = PatientProfile.model_validate_json(row.profile)
    try:
        profile = PatientProfile.model_validate(
            old.model_dump(mode="json") | {"threshold_rise_c": threshold_c}
        )
    except ValueError as err:
        raise Invalid(f"threshold_rise_c {threshold_c:+.2f} °C does not fit {patient}") from err
    now = store.clock()
    version = int(row.version) + 1
    done = conn.execute(
        update(t.patients)
        .where(t.patients.c.id == patient, t.patients.c.version == row.version)
        .values(profile=profile.model_dump_json(), updated_at=now, version=version)
    )
    if done.rowcount != 1:  # another transaction between our read and write
        raise Conflict(f"patient {patient!r} was changed meanwhile; try again")
    log_threshold(conn, profile, old.threshold_rise_c, by=by, at=now)
    store.audit_entry(
        conn,
        actor=by,
        action=action,
        kind="patient",
        subject=patient,
        patient=patient,
        version=version,
        before={"threshold_rise_c": old.threshold_rise_c},
        after={"threshold_rise_c": profile.threshold_rise_c},
    )


def decision_writers(
    team: CareStore,
    store_url: str,
    *,
    patient: str,
    by: str,
    action: str,
    suggestion: str | None,
) -> tuple[Within | None, Callable[[ThresholdChange | None], None] | None]:
    """How a decision reaches the care team's record and audit log (:func:`record_decision`),
    for the dashboard and the command line alike: ``(within, None)`` to run inside the
    decision's transaction when the thresholds store (``store_url``) and the care-team store
    share a database, else ``(None, apart)`` to run in a transaction of the care-team store
    right after the decision (blocking)."""

    def write(conn: Connection, change: ThresholdChange | None) -> None:
        record_decision(
            team,
            conn,
            patient=patient,
            threshold_c=None if change is None else change.threshold_c,
            by=by,
            action=action,
            suggestion=suggestion,
        )

    if same_database(store_url, team.url):
        return write, None

    def apart(change: ThresholdChange | None) -> None:
        with team.transaction() as conn:
            write(conn, change)

    return None, apart


def latest_decision(store: CareStore, patient: str) -> dict[str, Any] | None:
    """The newest row of ``threshold_changes`` for ``patient``: the threshold in force,
    who set it and when (a suggestion accepted anywhere, a reset, a typed threshold)."""
    c = t.threshold_changes.c
    query = (
        select(t.threshold_changes)
        .where(c.patient == patient)
        .order_by(c.set_at.desc(), c.id.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return {
        "threshold_c": round(float(row.threshold_c), 3),
        "previous_c": round(float(row.previous_c), 3),
        "suggestion": row.suggestion,
        "set_by": row.set_by,
        "set_at": iso_utc(float(row.set_at)),
    }


def set_by_hand(store: CareStore, patient: str) -> float | None:
    """The threshold the care team last set for ``patient`` by hand (:data:`SET_BY_HAND`,
    from the audit log, which keeps what each entry set), or ``None`` if it never did
    (not a patient of the store): where ``heatmon profile reset`` goes back to."""
    a = t.audit.c
    query = (
        select(a.after)
        .where(a.patient == patient, a.outcome == "ok", a.action.in_(SET_BY_HAND))
        .order_by(a.id.desc())
    )
    with store.engine.connect() as conn:
        for row in conn.execute(query):
            after = loads(row.after)
            if isinstance(after, dict) and isinstance(after.get("threshold_rise_c"), int | float):
                return float(after["threshold_rise_c"])
    return None
