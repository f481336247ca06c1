"""The dashboard's threshold suggestions: a caregiver sees, for each assigned patient, the
personal threshold heatmon suggests with the sessions and rises behind it, and accepts or
rejects it. Nothing changes without that press; the decision is stored with who and when.

Routes (registered by :func:`monitor.web.app.build_app`):

* ``GET  /api/patients/{patient}/thresholds`` — threshold in force, suggestions, decisions
* ``POST /api/patients/{patient}/suggestions/{id}/accept`` — (CSRF) use the suggestion
* ``POST /api/patients/{patient}/suggestions/{id}/reject`` — (CSRF) decline it
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from monitor.careteam.records import CareTeamError
from monitor.plugins import MonitorControl
from monitor.thresholds.learner import ThresholdLearner
from monitor.thresholds.records import SuggestionError, ThresholdChange
from monitor.thresholds.store import Within
from monitor.thresholds.views import change_json, patient_view, suggestion_json

log = logging.getLogger(__name__)

SUGGESTION_ID = "{suggestion:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}}"

RequireCaregiver = Callable[[web.Request, str], Any]
"""Raises 401/403 unless the request's session is a caregiver assigned to the patient;
returns the session (with ``login``)."""
ControlOf = Callable[[web.Request], MonitorControl | None]
RequireDecider = Callable[[web.Request, str], Awaitable[Any]]
"""Like ``RequireCaregiver`` for accepting or rejecting (the care team: clinicians only)."""
AfterDecision = Callable[[ThresholdChange | None], Awaitable[None]]
OnDecision = Callable[
    [web.Request, str, str, bool, str], tuple[Within | None, AfterDecision | None]
]
"""Before a decision (patient, suggestion id, accept, the thresholds store's URL): what to
write inside the decision's transaction, and what to do once it is made (with the change,
``None`` when rejected): the care team's record of it."""


def find_learner(control: MonitorControl | None) -> ThresholdLearner | None:
    """The running service's ``thresholds`` sink, if it has one."""
    for sink in getattr(control, "sinks", ()):
        if isinstance(sink, ThresholdLearner):
            return sink
    return None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def add_suggestion_routes(
    router: web.UrlDispatcher,
    *,
    patient_pattern: str,
    require_caregiver: RequireCaregiver,
    control_of: ControlOf,
    require_decider: RequireDecider | None = None,
    on_decision: OnDecision | None = None,
) -> None:
    def learner(request: web.Request) -> ThresholdLearner:
        found = find_learner(control_of(request))
        if found is None or not found.started:
            raise web.HTTPServiceUnavailable(
                text='{"error": "personal thresholds are not enabled ([sinks.thresholds])"}',
                content_type="application/json",
            )
        return found

    async def thresholds(request: web.Request) -> web.StreamResponse:
        patient = request.match_info["patient"]
        require_caregiver(request, patient)
        lrn = learner(request)
        view = await asyncio.to_thread(
            patient_view, lrn.store, lrn.profile(patient), floor_c=lrn.floor(patient)
        )
        return web.json_response(view)

    def decision(accept: bool) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            patient = request.match_info["patient"]
            if require_decider is not None:
                session = await require_decider(request, patient)
            else:
                session = require_caregiver(request, patient)
            lrn = learner(request)
            chosen = request.match_info["suggestion"]
            within, after = (None, None)
            if on_decision is not None:
                within, after = on_decision(request, patient, chosen, accept, lrn.store.url)
            try:
                suggestion, change = await lrn.decide(
                    patient, chosen, accept=accept, by=session.login, within=within
                )
            except (SuggestionError, CareTeamError) as err:
                return _error(err.status, str(err))
            if after is not None:
                await after(change)
            return web.json_response(
                {
                    "suggestion": suggestion_json(suggestion),
                    "change": None if change is None else change_json(change),
                }
            )

        return handler

    base = f"/api/patients/{patient_pattern}"
    router.add_get(f"{base}/thresholds", thresholds)
    router.add_post(f"{base}/suggestions/{SUGGESTION_ID}/accept", decision(True))
    router.add_post(f"{base}/suggestions/{SUGGESTION_ID}/reject", decision(False))
