"""The patient's phone as an app: the web app manifest, the service worker and the
patient's own "I'm cooling down".

- ``GET /manifest.webmanifest`` (``application/manifest+json``) and ``GET /sw.js``
  (``text/javascript``, served from the root so that its scope is the whole site) make the
  patient page installable and let it show notifications while it is in the background.
- ``POST /api/patients/{patient}/alerts/{event_id}/patient-ack``: the patient tapped "I'm
  cooling down" on a ``cool_down`` prompt. Only the patient's own link session may send it
  (a caregiver acknowledges through ``.../ack``); like every ``POST`` it needs the session's
  CSRF token (``session_middleware``). It goes through ``Monitor.acknowledge`` with ``by``
  set to :data:`PATIENT_ACK_BY`, so it is stored by every sink (InfluxDB ``alert_acks``)
  and reaches the caregivers' pages like their own acknowledgements.

Registered by :func:`register` from :func:`monitor.web.app.build_app`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from monitor.errors import InputError
from monitor.web.auth import SESSION_COOKIE
from monitor.web.state import NOT_STORED, stored

if TYPE_CHECKING:
    from monitor.web.state import WebState

log = logging.getLogger(__name__)

PATIENT_ACK_BY = "patient:self"
"""``by`` of an acknowledgement the patient made: a caregiver login cannot contain ``:``
(``LOGIN_PATTERN``), so the stored record says unambiguously who acknowledged, without
repeating the patient's id."""
MAX_EVENT_ID_CHARS = 128
MANIFEST_FILE = "manifest.webmanifest"
SERVICE_WORKER_FILE = "sw.js"


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class PatientRoutes:
    """The handlers, bound to the app's :class:`WebState` (no module-level state)."""

    __slots__ = ("_state",)

    def __init__(self, *, state: WebState) -> None:
        self._state = state

    async def manifest(self, request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(self._state.static_dir / MANIFEST_FILE)
        response.content_type = "application/manifest+json"
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def service_worker(self, request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(self._state.static_dir / SERVICE_WORKER_FILE)
        response.content_type = "text/javascript"
        response.charset = "utf-8"
        # A new version reaches the phones at their next visit; the root path gives it the
        # whole site as scope, which the header states explicitly.
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Service-Worker-Allowed"] = "/"
        return response

    async def patient_ack(self, request: web.Request) -> web.StreamResponse:
        st = self._state
        patient = request.match_info["patient"]
        event_id = request.match_info["event_id"]
        session = st.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None or session.kind == "anonymous":
            return _json_error(401, "open the link your caregiver gave you first")
        if session.patient != patient:
            return _json_error(403, "only the patient's own link may say I'm cooling down")
        if len(event_id) > MAX_EVENT_ID_CHARS:
            return _json_error(400, f"event id is longer than {MAX_EVENT_ID_CHARS} characters")
        if st.board.pending(patient, event_id) is None:
            return _json_error(404, "no cool-down prompt waiting for an answer")
        if st.control is None:
            return _json_error(503, "the monitor is not running")
        try:
            st.control.acknowledge(
                patient, event_id, by=PATIENT_ACK_BY, time=st.board.patient_now(patient)
            )
        except InputError:
            return _json_error(404, "no cool-down prompt waiting for an answer")
        if not await stored(st):
            return _json_error(503, NOT_STORED)
        log.info("patient acknowledged a cool-down prompt")
        return web.json_response(
            {"ok": True, "patient": patient, "event_id": event_id, "by": PATIENT_ACK_BY}
        )


def register(app: web.Application, *, state: WebState, patient_path: str) -> None:
    """Add the patient app's routes; ``patient_path`` is the ``{patient:…}`` placeholder."""
    routes = PatientRoutes(state=state)
    r = app.router
    r.add_get("/manifest.webmanifest", routes.manifest)
    r.add_get("/sw.js", routes.service_worker)
    r.add_post(f"/api/patients/{patient_path}/alerts/{{event_id}}/patient-ack", routes.patient_ack)
