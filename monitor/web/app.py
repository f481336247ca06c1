"""The dashboard's HTTP server (aiohttp): pages, the JSON API and the live event stream.

Pages: ``/login``, ``/caregiver`` (tiles of the assigned patients), ``/history`` (a past
session from InfluxDB), ``/patient/<id>`` (the patient's own calm view). The API is
described in ``openapi.json`` (served at ``/api/openapi.json``); live updates come as
Server-Sent Events from ``/api/events``. No patient data leaves without a session that
may see that patient: a caregiver sees only the patients assigned to them, a patient's
phone only that patient.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from monitor.errors import InputError
from monitor.plugins import MonitorControl
from monitor.profile import PATIENT_ID_PATTERN
from monitor.web.admin import add_team_routes
from monitor.web.auth import (
    ANON_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    AnonymousCsrf,
    LoginLimiter,
    PasswordChecker,
    PatientTokens,
    Session,
    SessionStore,
    same_secret,
    token_digest,
)
from monitor.web.board import Board
from monitor.web.bodies import BODY, Rejections, body_middleware, refuse
from monitor.web.config import LOGIN_PATTERN, WebConfig
from monitor.web.history import HistoryError, HistoryReader, valid_id
from monitor.web.patient_routes import register as register_patient_routes
from monitor.web.people import add_people_routes
from monitor.web.suggestions import add_suggestion_routes
from monitor.web.teamguard import Guard, record_decision, require_decider
from monitor.web.teamsync import LINK_DIGEST, TeamSync

log = logging.getLogger(__name__)

PACKAGED_STATIC_DIR = Path(__file__).with_name("static")
"""The dashboard inside an installed wheel (copied there by setup.py's build step)."""
SOURCE_STATIC_DIR = Path(__file__).resolve().parents[2] / "dashboards" / "web"
"""The dashboard in a source checkout (editable install): the source of truth."""


def default_static_dir() -> Path:
    """The installed copy if there is one, else the checkout's ``dashboards/web``."""
    if (PACKAGED_STATIC_DIR / "caregiver.html").is_file():
        return PACKAGED_STATIC_DIR
    return SOURCE_STATIC_DIR


OPENAPI_PATH = Path(__file__).with_name("openapi.json")
HEARTBEAT_S = 15.0
"""An SSE comment this often keeps proxies from closing an idle stream."""
MAX_STREAMS_PER_SESSION = 8
"""Live event streams one session may hold at once (tabs, a wall display): each holds a
backlog of frames, so a session opening streams in a loop is bounded."""
MAX_NOTE_CHARS = 500
MAX_PASSWORD_CHARS = 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class WebState:
    """Everything the handlers share; one per app (no module-level state)."""

    __slots__ = (
        "anon",
        "assignments",
        "board",
        "config",
        "control",
        "history",
        "http",
        "limiter",
        "passwords",
        "rejections",
        "sessions",
        "static_dir",
        "team",
        "tokens",
    )

    def __init__(
        self,
        *,
        config: WebConfig,
        board: Board,
        control: MonitorControl | None,
        tokens: PatientTokens,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.board = board
        self.control = control
        self.tokens = tokens
        self.sessions = SessionStore(
            ttl_s=config.session_ttl_s,
            max_sessions=config.max_sessions,
            clock=clock,
            on_drop=board.close_owner,  # no stream outlives its session
        )
        self.limiter = LoginLimiter(
            max_failures=config.login_max_failures, window_s=config.login_window_s, clock=clock
        )
        self.passwords = PasswordChecker(
            hashes={login: u.password_hash for login, u in config.users.items()}
        )
        self.anon = AnonymousCsrf()
        self.rejections = Rejections()
        self.assignments: Mapping[str, frozenset[str]] = {
            login: frozenset(u.patients) for login, u in config.users.items()
        }
        self.static_dir = Path(config.static_dir) if config.static_dir else default_static_dir()
        self.http: aiohttp.ClientSession | None = None
        self.history: HistoryReader | None = None
        self.team: TeamSync | None = None
        """The care-team store's view (``[careteam]``); ``None``: configuration only."""

    def visible(self, session: Session | None) -> frozenset[str]:
        """The patients this session may see."""
        if session is None:
            return frozenset()
        if session.login is not None:
            return self.assignments.get(session.login, frozenset())
        if session.patient is not None:
            return frozenset({session.patient})
        return frozenset()


STATE: web.AppKey[WebState] = web.AppKey("heatmon_web_state", WebState)


# -- helpers ------------------------------------------------------------------------------


def _state(request: web.Request) -> WebState:
    return request.app[STATE]


def _session(request: web.Request) -> Session | None:
    return _state(request).sessions.get(request.cookies.get(SESSION_COOKIE))


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def _set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session.id,
        httponly=True,
        samesite="Strict",
        secure=_state(request).config.secure_cookies,
        path="/",
        max_age=int(_state(request).config.session_ttl_s),
    )


def _anonymous_csrf(request: web.Request, response: web.StreamResponse) -> str:
    """A visitor without a session: the CSRF token for the nonce in their cookie (a new
    nonce, set on ``response``, if they have none). Nothing is stored on the server."""
    st = _state(request)
    nonce = request.cookies.get(ANON_COOKIE, "")
    if not 20 <= len(nonce) <= 64 or not nonce.isascii():
        nonce = st.anon.new_nonce()
        response.set_cookie(
            ANON_COOKIE,
            nonce,
            httponly=True,
            samesite="Strict",
            secure=st.config.secure_cookies,
            path="/",
            max_age=int(st.config.session_ttl_s),
        )
    return st.anon.token(nonce)


def _client_key(request: web.Request) -> str:
    return "addr:" + (request.remote or "unknown")


def _may_see(request: web.Request, patient: str) -> bool:
    return patient in _state(request).visible(_session(request))


# -- middleware ---------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in SAFE_METHODS:
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            return _error(403, "cross-origin request refused")
        session = _session(request)
        sent = request.headers.get(CSRF_HEADER, "")
        if session is not None:
            ok = bool(sent) and same_secret(sent, session.csrf)
        else:
            ok = _state(request).anon.check(request.cookies.get(ANON_COOKIE), sent)
        if not ok:
            _state(request).rejections.count("csrf", f"{request.method}: no valid {CSRF_HEADER}")
            return _error(403, f"missing or wrong {CSRF_HEADER}; reload the page")
    unrouted = request.match_info.http_exception
    if unrouted is not None and request.path.startswith("/api/"):
        # 404/405 of the API in JSON like its other errors (an id that does not match its
        # pattern lands here), without repeating the path.
        response: web.StreamResponse = _error(unrouted.status, f"{unrouted.reason}: no such route")
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
    response = web.FileResponse(_state(request).static_dir / name)
    response.headers["Cache-Control"] = "no-store"
    return response


async def index(request: web.Request) -> web.StreamResponse:
    session = _session(request)
    if session is not None and session.patient is not None:
        raise web.HTTPFound(f"/patient/{session.patient}")
    raise web.HTTPFound("/caregiver")


async def login_page(request: web.Request) -> web.StreamResponse:
    return _page(request, "login.html")


def _caregiver_page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        session = _session(request)
        if session is None or session.login is None:
            raise web.HTTPFound("/login")
        return _page(request, name)

    return handler


async def patient_page(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    patient = request.match_info["patient"]
    token = request.query.get("token")
    if token is not None:
        limiter_keys = (_client_key(request),)
        wait = st.limiter.retry_after(*limiter_keys)
        if wait > 0:
            return web.Response(status=429, text="Too many attempts; try again later.")
        if not st.tokens.check(patient, token):
            st.limiter.failed(*limiter_keys)
            log.info("patient link with a wrong or expired token refused")
            return web.Response(status=403, text="This link is not valid. Ask your caregiver.")
        old = _session(request)
        if old is not None:
            st.sessions.drop(old.id)
        session = st.sessions.new(patient=patient)
        session.extra[LINK_DIGEST] = token_digest(token)  # a revoked link ends the session
        # Drop the token from the address bar and the browser history.
        response = web.HTTPFound(f"/patient/{patient}")
        _set_cookie(request, response, session)
        raise response
    if not _may_see(request, patient):
        return web.Response(
            status=403,
            text="Open the link your caregiver gave you, or log in as a caregiver.",
        )
    return _page(request, "patient.html")


# -- API ----------------------------------------------------------------------------------


async def api_session(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    response = web.json_response({})
    session = _session(request)
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
    st = _state(request)
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
    st.limiter.failed(*keys)
    if not await st.passwords.verify(login, password):
        log.info("failed caregiver login")
        return _error(401, "wrong login or password")
    st.limiter.succeeded(*keys)
    old = _session(request)
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
    st = _state(request)
    session = _session(request)
    if session is not None:
        st.sessions.drop(session.id)
        st.board.close_owner(session.id)
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def _require_viewer(request: web.Request, patient: str | None = None) -> Session:
    session = _session(request)
    if session is None or session.kind == "anonymous":
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "log in first"}), content_type="application/json"
        )
    if patient is not None and not _may_see(request, patient):
        raise web.HTTPForbidden(
            text=json.dumps({"error": "you may not see this patient"}),
            content_type="application/json",
        )
    return session


def _require_caregiver(request: web.Request, patient: str | None = None) -> Session:
    session = _require_viewer(request, patient)
    if session.login is None:
        raise web.HTTPForbidden(
            text=json.dumps({"error": "caregivers only"}), content_type="application/json"
        )
    return session


async def api_patients(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    session = _require_viewer(request)
    return web.json_response({"patients": st.board.snapshot(st.visible(session))})


async def api_patient(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    patient = request.match_info["patient"]
    _require_viewer(request, patient)
    return web.json_response(st.board.snapshot([patient])[0])


async def api_events(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    session = _require_viewer(request)
    if st.board.streams_of(session.id) >= MAX_STREAMS_PER_SESSION:
        st.rejections.count("too_many_streams", "GET events")
        return _error(429, f"at most {MAX_STREAMS_PER_SESSION} live streams a session")
    patients = st.visible(session)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    # Snapshot and subscription with no await between them: no update falls in a gap.
    snapshot = json.dumps(
        {"patients": st.board.snapshot(patients), "server_time": time.time()},
        separators=(",", ":"),
    )
    sub = st.board.subscribe(patients, owner=session.id)
    try:
        await response.write(f"retry: 1000\nevent: snapshot\ndata: {snapshot}\n\n".encode())
        while True:
            # the session may have expired meanwhile (a stream alone does not keep it
            # alive): dropping it ends this stream and its others
            if st.sessions.expire(session.id):
                break
            try:
                frame = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if frame is None:
                break
            # Write what has piled up in one go.
            parts = [frame]
            while not sub.queue.empty():
                more = sub.queue.get_nowait()
                if more is None:
                    sub.closed = True
                    break
                parts.append(more)
            await response.write("".join(parts).encode())
            if sub.closed and sub.queue.empty():
                break
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        st.board.unsubscribe(sub)
    return response


async def api_ack(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    patient = request.match_info["patient"]
    event_id = request.match_info["event_id"]
    session = _require_caregiver(request, patient)
    if st.board.pending(patient, event_id) is None:
        return _error(404, "no such alert waiting for acknowledgement")
    if st.control is None:
        return _error(503, "the monitor is not running")
    assert session.login is not None
    try:
        st.control.acknowledge(
            patient, event_id, by=session.login, time=st.board.patient_now(patient)
        )
    except InputError:
        return _error(404, "no such alert waiting for acknowledgement")
    return web.json_response({"ok": True, "patient": patient, "event_id": event_id})


async def api_symptoms(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    patient = request.match_info["patient"]
    _require_viewer(request, patient)
    body = request[BODY] if request[BODY] is not None else {}
    if not isinstance(body, dict) or not isinstance(body.get("note", ""), str):
        raise refuse(request, "send JSON {note} (note a string, may be left out)")
    note: str = body.get("note", "")
    if len(note) > MAX_NOTE_CHARS:
        raise refuse(request, f"note is longer than {MAX_NOTE_CHARS} characters")
    if st.control is None:
        return _error(503, "the monitor is not running")
    try:
        st.control.report_symptom(patient, time=st.board.patient_now(patient), note=note)
    except InputError as err:  # e.g. a patient assigned in [web] the engine has no profile of
        st.rejections.count("refused_by_monitor", f"POST symptoms: {err.reason}")
        return _error(422, f"the monitor refused the report: {err.reason}")
    return web.json_response({"ok": True, "patient": patient})


async def _history(request: web.Request) -> HistoryReader:
    st = _state(request)
    if st.history is None or not st.history.configured:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "no InfluxDB configured for history ([web.history])"}),
            content_type="application/json",
        )
    return st.history


async def api_sessions(request: web.Request) -> web.StreamResponse:
    patient = request.match_info["patient"]
    _require_caregiver(request, patient)
    reader = await _history(request)
    try:
        rows = await reader.sessions(patient)
    except HistoryError as err:
        log.warning("history: %s", err)
        return _error(502, "the history store did not answer")
    return web.json_response({"patient": patient, "sessions": rows})


async def api_session_history(request: web.Request) -> web.StreamResponse:
    patient = request.match_info["patient"]
    session = request.match_info["session"]
    _require_caregiver(request, patient)
    if not valid_id(session):
        raise refuse(request, "session id must be 1 to 128 letters, digits or ._:-", kind="id")
    reader = await _history(request)
    try:
        data = await reader.session(patient, session)
    except HistoryError as err:
        log.warning("history: %s", err)
        return _error(502, "the history store did not answer")
    return web.json_response(data)


async def api_openapi(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(OPENAPI_PATH, headers={"Content-Type": "application/json"})


async def healthz(request: web.Request) -> web.StreamResponse:
    """Liveness and the service's health (no patient data: component names, counts and
    error types). 200 while the engine's clock ticks, even with a failing sink ("degraded");
    503 while the ticker itself is down (stale data and session ends would go unnoticed)."""
    st = _state(request)
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
    st = _state(request)
    old = _session(request)
    if old is not None:
        st.sessions.drop(old.id)
        st.board.close_owner(old.id)
    _set_cookie(request, response, st.sessions.new(login=login))


# -- the app ------------------------------------------------------------------------------

PATIENT = "{patient:" + PATIENT_ID_PATTERN.strip("^$") + "}"


def build_app(state: WebState) -> web.Application:
    app = web.Application(
        middlewares=[
            session_middleware,
            body_middleware(state.rejections, timeout_s=state.config.request_timeout_s),
        ],
        client_max_size=64 * 1024,
    )
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
    guard = Guard(state_of=_state, session_of=_session)
    add_suggestion_routes(
        r,
        patient_pattern=PATIENT,
        require_caregiver=_require_caregiver,
        control_of=lambda request: _state(request).control,
        require_decider=require_decider(guard, _require_caregiver),
        on_decision=record_decision(guard),
    )
    register_patient_routes(app, state=state, patient_path=PATIENT)
    add_team_routes(r, guard=guard, patient_pattern=PATIENT, page=_caregiver_page("team.html"))
    add_people_routes(r, guard=guard, page=_invite_page, start_session=_start_session)
    r.add_static("/assets/", state.static_dir / "assets")
    r.add_static("/vendor/uplot/", state.static_dir / "node_modules" / "uplot" / "dist")
    return app
