"""Who may do what on the care-team pages, enforced on the server; every refusal of a
logged-in caregiver is written to the audit log (who tried what, on whom, why refused),
refused reads at most once a minute for a caregiver and route, with the count.

- ``admin``: caregivers, assignments, patients (add, edit the profile, archive), links,
  the whole audit log; thresholds only as a clinician would (see below).
- ``clinician``: the thresholds of the patients assigned to them, suggestions, links.
- ``caregiver``: watches and acknowledges; reads the records and audit of their patients.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from monitor.careteam.decisions import decision_writers
from monitor.careteam.records import CareTeamError
from monitor.careteam.store import CareStore
from monitor.thresholds.records import ThresholdChange
from monitor.thresholds.store import Within
from monitor.web.auth import Session
from monitor.web.suggestions import AfterDecision, OnDecision
from monitor.web.teamsync import TeamSync

if TYPE_CHECKING:
    from monitor.web.state import WebState

log = logging.getLogger(__name__)

READ_REFUSALS_WINDOW_S = 60.0
"""Refused reads (``GET``) of one caregiver on one route are written to the audit log at
most once in this long: the first at once, the others counted and written as one entry when
the window ends (which opens the next one), so a caregiver's session probing patient ids
cannot fill the audit table. Refused writes are each written, as are successful changes."""
MAX_READ_WINDOWS = 10_000
"""Open windows kept at most (one per caregiver and route); past it the oldest is closed."""
READS = frozenset({"GET", "HEAD"})


@dataclass
class _Refusals:
    """Refused reads of one caregiver on one route since the window's entry."""

    store: CareStore
    count: int = 0
    action: str = ""
    why: str = ""
    patients: set[str | None] = field(default_factory=set)


StateOf = Callable[[web.Request], "WebState"]
SessionOf = Callable[[web.Request], Session | None]


def json_error(status: int, message: str, **extra: Any) -> web.HTTPException:
    cls = {
        400: web.HTTPBadRequest,
        401: web.HTTPUnauthorized,
        403: web.HTTPForbidden,
        404: web.HTTPNotFound,
        409: web.HTTPConflict,
        422: web.HTTPUnprocessableEntity,
        503: web.HTTPServiceUnavailable,
    }.get(status, web.HTTPBadRequest)
    return cls(text=json.dumps({"error": message, **extra}), content_type="application/json")


def store_error(err: CareTeamError) -> web.HTTPException:
    return json_error(err.status, str(err), **err.extra)


class Guard:
    def __init__(self, *, state_of: StateOf, session_of: SessionOf) -> None:
        self.state_of = state_of
        self.session_of = session_of
        self._reads: dict[tuple[str, str], _Refusals] = {}
        """Open windows of refused reads, by (login, route)."""
        self._writes: set[asyncio.Task[None]] = set()

    def team(self, request: web.Request) -> TeamSync:
        team = self.state_of(request).team
        if team is None:
            raise json_error(404, "no care-team store configured ([careteam])")
        return team

    def store(self, request: web.Request) -> CareStore:
        return self.team(request).store

    def who(self, request: web.Request) -> tuple[str, str]:
        """The logged-in caregiver's login and role (401 / 403 otherwise)."""
        team = self.team(request)
        session = self.session_of(request)
        if session is None or session.login is None:
            raise json_error(401, "log in as a caregiver first")
        role = team.role(session.login)
        if role is None:
            raise json_error(403, "your login is not in the care team")
        return session.login, role

    def assigned(self, request: web.Request, login: str) -> frozenset[str]:
        return self.state_of(request).assignments.get(login, frozenset())

    async def refuse(
        self,
        request: web.Request,
        *,
        login: str,
        action: str,
        kind: str,
        subject: str,
        patient: str | None,
        why: str,
    ) -> web.HTTPException:
        """Log the refused attempt in the audit log (a refused read: at most once a window,
        :data:`READ_REFUSALS_WINDOW_S`), then the 403 to raise."""
        store = self.store(request)
        if request.method in READS and self._counted(request, store, login, action, patient, why):
            log.debug("care team: %s refused (%s), counted", action, why)
            return json_error(403, why)
        try:
            await asyncio.to_thread(
                store.refused,
                actor=login,
                action=action,
                kind=kind,
                subject=subject,
                patient=patient,
                detail=why,
            )
        except Exception:
            log.exception("care team: a refused attempt could not be written to the audit log")
        log.info("care team: %s refused (%s)", action, why)
        return json_error(403, why)

    def _counted(
        self,
        request: web.Request,
        store: CareStore,
        login: str,
        action: str,
        patient: str | None,
        why: str,
    ) -> bool:
        """Whether this refused read falls in an open window (counted, not written now);
        else it opens one and is written as before."""
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else request.path
        key = (login, route)
        window = self._reads.get(key)
        if window is not None:
            window.count += 1
            window.action, window.why = action, why
            window.patients.add(patient)
            return True
        self._open(key, _Refusals(store=store))
        return False

    def _open(self, key: tuple[str, str], window: _Refusals) -> None:
        self._reads[key] = window
        while len(self._reads) > MAX_READ_WINDOWS:  # the oldest is closed early, not lost
            oldest = next(iter(self._reads))
            self._flush(oldest, self._reads.pop(oldest))
        asyncio.get_running_loop().call_later(
            READ_REFUSALS_WINDOW_S, self._window_ended, key, window
        )

    def _flush(self, key: tuple[str, str], window: _Refusals) -> None:
        if window.count == 0:
            return
        task = asyncio.get_running_loop().create_task(self._write_counted(key, window))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def close(self) -> None:
        """At shutdown: the counts of the open windows are written, not lost."""
        while self._reads:
            key = next(iter(self._reads))
            self._flush(key, self._reads.pop(key))
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    def _window_ended(self, key: tuple[str, str], window: _Refusals) -> None:
        """The window's end: nothing more refused closes it; else one entry with the count,
        and the next window opens."""
        if self._reads.get(key) is not window:
            return
        del self._reads[key]
        if window.count == 0:
            return
        self._open(key, _Refusals(store=window.store))
        self._flush(key, window)

    async def _write_counted(self, key: tuple[str, str], window: _Refusals) -> None:
        login, route = key
        one = next(iter(window.patients)) if len(window.patients) == 1 else None
        detail = (
            f"{window.count} more refused in {READ_REFUSALS_WINDOW_S:.0f} s, one entry for "
            f"them ({len(window.patients)} patient(s)): {window.why}"
        )
        try:
            await asyncio.to_thread(
                window.store.refused,
                actor=login,
                action=window.action,
                kind="patient" if one is not None else "route",
                subject=(one or route)[:64],
                patient=one,
                detail=detail[:200],
                after={"count": window.count},
            )
        except Exception:
            log.exception("care team: refused reads could not be written to the audit log")
        log.info("care team: %d refused reads written as one audit entry", window.count)

    async def need_admin(
        self, request: web.Request, *, action: str, kind: str, subject: str, patient: str | None
    ) -> str:
        login, role = self.who(request)
        if role != "admin":
            raise await self.refuse(
                request,
                login=login,
                action=action,
                kind=kind,
                subject=subject,
                patient=patient,
                why="only an admin may do this",
            )
        return login

    async def need_patient(
        self, request: web.Request, patient: str, *, action: str, clinician: bool
    ) -> tuple[str, str]:
        """A caregiver assigned to ``patient`` (admins may read every patient's record);
        ``clinician``: only a clinician (or admin) assigned to the patient."""
        login, role = self.who(request)
        mine = patient in self.assigned(request, login)
        if clinician:
            if role not in ("clinician", "admin") or not mine:
                why = (
                    "only a clinician assigned to this patient may change thresholds"
                    if action.startswith("threshold")
                    else "only a clinician or admin assigned to this patient may do this"
                )
                raise await self.refuse(
                    request,
                    login=login,
                    action=action,
                    kind="patient",
                    subject=patient,
                    patient=patient,
                    why=why,
                )
        elif not mine and role != "admin":
            raise await self.refuse(
                request,
                login=login,
                action=action,
                kind="patient",
                subject=patient,
                patient=patient,
                why="you may not see this patient",
            )
        return login, role


def body_object(request: web.Request, body: Any, *keys: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise json_error(400, f"send a JSON object with {', '.join(keys) or 'fields'}")
    return body


def version_of(body: dict[str, Any]) -> int:
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 < version < 2**31:
        raise json_error(400, "version: the version your edit is based on (a positive integer)")
    return version


def require_decider(
    guard: Guard, require_caregiver: Callable[[web.Request, str], Session]
) -> Callable[[web.Request, str], Awaitable[Session]]:
    """Who may accept or reject a suggestion: with the care-team store, a clinician (or
    admin) assigned to the patient, a refusal logged; configuration only: any assigned
    caregiver, as before."""

    async def check(request: web.Request, patient: str) -> Session:
        session = require_caregiver(request, patient)
        if guard.state_of(request).team is not None:
            await guard.need_patient(request, patient, action="threshold.decide", clinician=True)
        return session

    return check


def record_dashboard_decision(guard: Guard) -> OnDecision:
    """A decided suggestion in the care-team store: an accepted one becomes the patient's
    record's threshold, each gets its audit entry — inside the decision's transaction when
    both stores share a database (the default), so the two never disagree; else in a
    transaction of the care-team store right after it
    (:func:`~monitor.careteam.decisions.decision_writers`, as on the command line)."""

    def hooks(
        request: web.Request, patient: str, suggestion: str, accept: bool, store_url: str
    ) -> tuple[Within | None, AfterDecision | None]:
        team = guard.state_of(request).team
        session = guard.session_of(request)
        if team is None or session is None or session.login is None:
            return None, None
        within, apart = decision_writers(
            team.store,
            store_url,
            patient=patient,
            by=session.login,
            action="threshold.accept_suggestion" if accept else "suggestion.reject",
            suggestion=suggestion,
        )

        async def after(change: ThresholdChange | None) -> None:
            if apart is not None:
                try:
                    await asyncio.to_thread(apart, change)
                except Exception:
                    log.exception("care team: a decided suggestion was not recorded in the store")
                    return
            await team.refresh()

        return within, after

    return hooks
