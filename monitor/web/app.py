"""The dashboard's HTTP server (aiohttp): the middleware (CSRF, security headers), health,
the OpenAPI document, and :func:`build_app`, which registers every route. The pages are in
:mod:`monitor.web.pages`; login, logout and the session API in :mod:`monitor.web.login`;
the live API and the event stream in :mod:`monitor.web.live`; what the handlers share (the
state, the access checks) in :mod:`monitor.web.state`.

Pages: ``/login``, ``/caregiver`` (tiles of the assigned patients), ``/history`` (a past
session from InfluxDB), ``/patient/<id>`` (the patient's own calm view). The API is
described in ``openapi.json`` (served at ``/api/openapi.json``); live updates come as
Server-Sent Events from ``/api/events``. No patient data leaves without a session that
may see that patient: a caregiver sees only the patients assigned to them, a patient's
phone only that patient.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from monitor.profile import PATIENT_ID_PATTERN
from monitor.web.admin import add_team_routes
from monitor.web.auth import ANON_COOKIE, CSRF_HEADER, same_secret
from monitor.web.bodies import body_middleware
from monitor.web.forwarded import TrustedProxies, forwarded_middleware
from monitor.web.history import HistoryReader
from monitor.web.live import (
    api_ack,
    api_events,
    api_patient,
    api_patients,
    api_session_history,
    api_sessions,
    api_symptoms,
)
from monitor.web.login import api_login, api_logout, api_session, start_session
from monitor.web.pages import caregiver_page, index, invite_page, login_page, patient_page
from monitor.web.patient_routes import register as register_patient_routes
from monitor.web.people import add_people_routes
from monitor.web.state import OPENAPI_PATH as OPENAPI_PATH
from monitor.web.state import STATE as STATE
from monitor.web.state import WebState as WebState
from monitor.web.state import default_static_dir as default_static_dir
from monitor.web.state import json_error, require_caregiver, session_of, state_of
from monitor.web.suggestions import add_suggestion_routes
from monitor.web.teamguard import Guard, record_dashboard_decision, require_decider

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


# -- middleware ---------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _cross_origin(request: web.Request, origin: str) -> web.Response:
    """Refuse a state-changing request from another origin (counted). The same host under
    another scheme is almost always a TLS proxy heatmon does not trust (it then sees
    ``http`` where the browser used ``https``): the answer and the log say so."""
    scheme, _, host = origin.partition("://")
    if host == request.host and scheme in ("http", "https") and scheme != request.scheme:
        why = (
            f"the page's origin is {scheme}:// but heatmon received the request over "
            f"{request.scheme}:// — behind a TLS proxy, add the proxy's address to [web] "
            "trusted_proxies (docs/dashboards.md, 'Behind a reverse proxy')"
        )
    else:
        why = "the Origin header names another site"
    state_of(request).rejections.count("origin", f"{request.method}: {why}")
    return json_error(403, f"cross-origin request refused: {why}")


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in SAFE_METHODS:
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return _cross_origin(request, origin)
        session = session_of(request)
        sent = request.headers.get(CSRF_HEADER, "")
        if session is not None:
            ok = bool(sent) and same_secret(sent, session.csrf)
        else:
            ok = state_of(request).anon.check(request.cookies.get(ANON_COOKIE), sent)
        if not ok:
            state_of(request).rejections.count("csrf", f"{request.method}: no valid {CSRF_HEADER}")
            return json_error(403, f"missing or wrong {CSRF_HEADER}; reload the page")
    unrouted = request.match_info.http_exception
    if unrouted is not None and request.path.startswith("/api/"):
        # 404/405 of the API in JSON like its other errors (an id that does not match its
        # pattern lands here), without repeating the path.
        response: web.StreamResponse = json_error(
            unrouted.status, f"{unrouted.reason}: no such route"
        )
        if "Allow" in unrouted.headers:
            response.headers["Allow"] = unrouted.headers["Allow"]
    else:
        response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


# -- health and the API's description ----------------------------------------------------


async def api_openapi(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(OPENAPI_PATH, headers={"Content-Type": "application/json"})


async def healthz(request: web.Request) -> web.StreamResponse:
    """Liveness and the service's health (no patient data: component names, counts and
    error types). 200 while the engine's clock ticks, even with a failing sink ("degraded");
    503 while the ticker itself is down (stale data and session ends would go unnoticed)."""
    st = state_of(request)
    body: dict[str, Any] = {
        "status": "ok",
        "streams": st.board.subscriber_count,
        "rejected": st.rejections.snapshot(),
    }
    if st.control is not None:
        health = st.control.health()
        body["status"] = health.get("status", "ok")
        body["failing"] = list(health.get("failing", ()))
        body["components"] = health.get("components", {})
    ticker = body.get("components", {}).get("ticker", {})
    status = 503 if ticker.get("down") else 200
    return web.json_response(body, status=status)


# -- the app ------------------------------------------------------------------------------

PATIENT = "{patient:" + PATIENT_ID_PATTERN.strip("^$") + "}"


def build_app(state: WebState) -> web.Application:
    middlewares = [
        session_middleware,
        body_middleware(state.rejections, timeout_s=state.config.request_timeout_s),
    ]
    trusted = TrustedProxies(networks=state.config.trusted_proxies)
    if trusted:  # first: the Origin check, the limiters and the handlers see the client
        middlewares.insert(0, forwarded_middleware(trusted, state.rejections))
        log.info(
            "client addresses from X-Forwarded-For of %s", ", ".join(state.config.trusted_proxies)
        )
    app = web.Application(middlewares=middlewares, client_max_size=64 * 1024)
    app[STATE] = state

    async def on_startup(app: web.Application) -> None:
        http = aiohttp.ClientSession()
        state.http = http
        state.history = HistoryReader(config=state.config.history, http=http)

        if state.team is not None:
            await state.team.start()

    async def on_shutdown(app: web.Application) -> None:
        state.board.close_all()

    async def on_cleanup(app: web.Application) -> None:
        if state.team is not None:
            await state.team.stop()
        if state.http is not None:
            await state.http.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)

    r = app.router
    r.add_get("/", index)
    r.add_get("/login", login_page)
    r.add_get("/caregiver", caregiver_page("caregiver.html"))
    r.add_get("/history", caregiver_page("history.html"))
    r.add_get(f"/patient/{PATIENT}", patient_page)
    r.add_get("/healthz", healthz)
    r.add_get("/api/openapi.json", api_openapi)
    r.add_get("/api/session", api_session)
    r.add_post("/api/login", api_login)
    r.add_post("/api/logout", api_logout)
    r.add_get("/api/events", api_events)
    r.add_get("/api/patients", api_patients)
    r.add_get(f"/api/patients/{PATIENT}", api_patient)
    r.add_post(f"/api/patients/{PATIENT}/alerts/{{event_id}}/ack", api_ack)
    r.add_post(f"/api/patients/{PATIENT}/symptoms", api_symptoms)
    r.add_get(f"/api/patients/{PATIENT}/sessions", api_sessions)
    r.add_get(f"/api/patients/{PATIENT}/sessions/{{session}}", api_session_history)
    guard = Guard(state_of=state_of, session_of=session_of)
    app.on_cleanup.insert(0, lambda _app: guard.close())  # before the store closes
    add_suggestion_routes(
        r,
        patient_pattern=PATIENT,
        require_caregiver=require_caregiver,
        control_of=lambda request: state_of(request).control,
        require_decider=require_decider(guard, require_caregiver),
        on_decision=record_dashboard_decision(guard),
    )
    register_patient_routes(app, state=state, patient_path=PATIENT)
    add_team_routes(r, guard=guard, patient_pattern=PATIENT, page=caregiver_page("team.html"))
    add_people_routes(r, guard=guard, page=invite_page, start_session=start_session)
    r.add_static("/assets/", state.static_dir / "assets")
    r.add_static("/vendor/uplot/", state.static_dir / "node_modules" / "uplot" / "dist")
    return app
