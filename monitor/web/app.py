"""The dashboard's HTTP server (aiohttp): pages, login and sessions, the middleware (CSRF,
security headers), health, and :func:`build_app`, which registers every route. The live API
and the event stream are in :mod:`monitor.web.live`; what the handlers share (the state, the
access checks) in :mod:`monitor.web.state`.

Pages: ``/login``, ``/caregiver`` (tiles of the assigned patients), ``/history`` (a past
session from InfluxDB), ``/patient/<id>`` (the patient's own calm view). The API is
described in ``openapi.json`` (served at ``/api/openapi.json``); live updates come as
Server-Sent Events from ``/api/events``. No patient data leaves without a session that
may see that patient: a caregiver sees only the patients assigned to them, a patient's
phone only that patient.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from monitor.profile import PATIENT_ID_PATTERN
from monitor.web.admin import add_team_routes
from monitor.web.auth import (
    ANON_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    Session,
    address_key,
    same_secret,
    token_digest,
)
from monitor.web.bodies import BODY, body_middleware, refuse
from monitor.web.config import LOGIN_PATTERN
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
from monitor.web.patient_routes import register as register_patient_routes
from monitor.web.people import add_people_routes
from monitor.web.state import OPENAPI_PATH as OPENAPI_PATH
from monitor.web.state import STATE as STATE
from monitor.web.state import WebState as WebState
from monitor.web.state import default_static_dir as default_static_dir
from monitor.web.state import json_error, may_see, require_caregiver, session_of, state_of
from monitor.web.suggestions import add_suggestion_routes
from monitor.web.teamguard import Guard, record_dashboard_decision, require_decider
from monitor.web.teamsync import LINK_DIGEST

log = logging.getLogger(__name__)

MAX_PASSWORD_CHARS = 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


# -- helpers ------------------------------------------------------------------------------


def _secure(request: web.Request) -> bool:
    """Cookies get ``Secure`` with ``secure_cookies``, or when the browser came over HTTPS
    (so far only said by a trusted proxy's ``X-Forwarded-Proto``: heatmon serves plain HTTP)."""
    return state_of(request).config.secure_cookies or request.scheme == "https"


def _set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
        path="/",
        max_age=int(state_of(request).config.session_ttl_s),
    )


def _anonymous_csrf(request: web.Request, response: web.StreamResponse) -> str:
    """A visitor without a session: the CSRF token for the nonce in their cookie (a new
    nonce, set on ``response``, if they have none). Nothing is stored on the server."""
    st = state_of(request)
    nonce = request.cookies.get(ANON_COOKIE, "")
    if not 20 <= len(nonce) <= 64 or not nonce.isascii():
        nonce = st.anon.new_nonce()
        response.set_cookie(
            ANON_COOKIE,
            nonce,
            httponly=True,
            samesite="Strict",
            secure=_secure(request),
            path="/",
            max_age=int(st.config.session_ttl_s),
        )
    return st.anon.token(nonce)


def _client_key(request: web.Request) -> str:
    return address_key(request.remote)


# -- middleware ---------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in SAFE_METHODS:
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return json_error(403, "cross-origin request refused")
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


# -- pages --------------------------------------------------------------------------------


def _page(request: web.Request, name: str) -> web.StreamResponse:
    response = web.FileResponse(state_of(request).static_dir / name)
    response.headers["Cache-Control"] = "no-store"
    return response


async def index(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if session is not None and session.patient is not None:
        raise web.HTTPFound(f"/patient/{session.patient}")
    raise web.HTTPFound("/caregiver")


async def login_page(request: web.Request) -> web.StreamResponse:
    return _page(request, "login.html")


def _caregiver_page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        session = session_of(request)
        if session is None or session.login is None:
            raise web.HTTPFound("/login")
        return _page(request, name)

    return handler


async def patient_page(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    patient = request.match_info["patient"]
    token = request.query.get("token")
    if token is not None:
        limiter_keys = (_client_key(request),)
        wait = st.limiter.retry_after(*limiter_keys)
        if wait > 0:
            return web.Response(status=429, text="Too many attempts; try again later.")
        if not st.tokens.check(patient, token):
            st.limiter.note(*limiter_keys)
            log.info("patient link with a wrong or expired token refused")
            return web.Response(status=403, text="This link is not valid. Ask your caregiver.")
        old = session_of(request)
        if old is not None:
            st.sessions.drop(old.id)
        session = st.sessions.new(patient=patient)
        session.extra[LINK_DIGEST] = token_digest(token)  # a revoked link ends the session
        # Drop the token from the address bar and the browser history.
        response = web.HTTPFound(f"/patient/{patient}")
        _set_cookie(request, response, session)
        raise response
    if not may_see(request, patient):
        return web.Response(
            status=403,
            text="Open the link your caregiver gave you, or log in as a caregiver.",
        )
    return _page(request, "patient.html")


# -- API ----------------------------------------------------------------------------------


async def api_session(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    response = web.json_response({})
    session = session_of(request)
    if session is None:
        body: dict[str, Any] = {"kind": "anonymous", "login": None, "patient": None, "patients": []}
        body["csrf"] = _anonymous_csrf(request, response)
    else:
        body = {
            "kind": session.kind,
            "login": session.login,
            "patient": session.patient,
            "csrf": session.csrf,
            "patients": sorted(st.visible(session)),
        }
    response.text = json.dumps(body)
    return response


async def api_login(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    body = request[BODY]
    if not isinstance(body, dict) or not all(
        isinstance(body.get(k), str) for k in ("login", "password")
    ):
        raise refuse(request, "send JSON {login, password} (two strings)")
    login: str = body["login"]
    password: str = body["password"]
    if len(password) > MAX_PASSWORD_CHARS:
        raise refuse(request, f"password is longer than {MAX_PASSWORD_CHARS} characters")
    if not re.fullmatch(LOGIN_PATTERN.strip("^$"), login):
        login = ""  # no such caregiver; counted against the address only, never stored
    keys = (_client_key(request), "login:" + login.lower())
    wait = st.limiter.retry_after(*keys)
    if wait > 0:
        return web.json_response(
            {"error": "too many failed logins; try again later", "retry_after_s": round(wait)},
            status=429,
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    # Counted before the slow check (cleared on success): guesses sent at once cannot all
    # pass retry_after while the first ones are still being verified.
    st.limiter.note(*keys)
    if not await st.passwords.verify(login, password):
        log.info("failed caregiver login")
        return json_error(401, "wrong login or password")
    st.limiter.forget(*keys)
    old = session_of(request)
    if old is not None:
        st.sessions.drop(old.id)
        st.board.close_owner(old.id)
    session = st.sessions.new(login=login)
    response = web.json_response(
        {"login": login, "csrf": session.csrf, "patients": sorted(st.visible(session))}
    )
    _set_cookie(request, response, session)
    return response


async def api_logout(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    session = session_of(request)
    if session is not None:
        st.sessions.drop(session.id)
        st.board.close_owner(session.id)
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


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


# -- care-team hooks (monitor/web/admin.py, people.py, teamsync.py) ----------------------


async def _invite_page(request: web.Request) -> web.StreamResponse:
    return _page(request, "invite.html")


def _start_session(request: web.Request, response: web.StreamResponse, login: str) -> None:
    st = state_of(request)
    old = session_of(request)
    if old is not None:
        st.sessions.drop(old.id)
        st.board.close_owner(old.id)
    _set_cookie(request, response, st.sessions.new(login=login))


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
    r.add_get("/caregiver", _caregiver_page("caregiver.html"))
    r.add_get("/history", _caregiver_page("history.html"))
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
    add_team_routes(r, guard=guard, patient_pattern=PATIENT, page=_caregiver_page("team.html"))
    add_people_routes(r, guard=guard, page=_invite_page, start_session=_start_session)
    r.add_static("/assets/", state.static_dir / "assets")
    r.add_static("/vendor/uplot/", state.static_dir / "node_modules" / "uplot" / "dist")
    return app
