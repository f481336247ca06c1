"""What every dashboard handler shares: :class:`WebState` (one per app), how a handler
finds it and the request's session, and the access checks (a viewer, a caregiver, who may
see a patient)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from monitor.plugins import MonitorControl
from monitor.ratelimit import WindowLimiter
from monitor.web.auth import (
    SESSION_COOKIE,
    AnonymousCsrf,
    PasswordChecker,
    PatientTokens,
    Session,
    SessionStore,
)
from monitor.web.board import Board
from monitor.web.bodies import Rejections
from monitor.web.config import WebConfig
from monitor.web.history import HistoryReader
from monitor.web.teamsync import TeamSync

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
        "reports",
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
        self.limiter = WindowLimiter(
            max_events=config.login_max_failures, window_s=config.login_window_s, clock=clock
        )
        self.passwords = PasswordChecker(
            hashes={login: u.password_hash for login, u in config.users.items()}
        )
        self.reports = WindowLimiter(
            max_events=config.symptoms_per_minute, window_s=60.0, clock=clock
        )
        """Symptom reports taken lately, per patient (``api_symptoms``)."""
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


def state_of(request: web.Request) -> WebState:
    return request.app[STATE]


def session_of(request: web.Request) -> Session | None:
    return state_of(request).sessions.get(request.cookies.get(SESSION_COOKIE))


STORED_WITHIN_S = 5.0
"""How long an answer waits for what it took to be stored (``Monitor.durable``)."""
NOT_STORED = "taken, but not stored yet (storage is slow or down); tell your caregiver"


async def stored(st: WebState) -> bool:
    """Whether what the service took so far is kept safely (the InfluxDB spool, fsynced),
    within ``STORED_WITHIN_S``: a symptom report or an acknowledgement is answered 200 only
    then, as the MQTT input acknowledges a message only then. ``False`` is counted."""
    durable = getattr(st.control, "durable", None)
    if durable is None:
        return True
    try:  # shielded: the wait is shared with every other input waiting for the spool
        await asyncio.wait_for(asyncio.shield(durable()), STORED_WITHIN_S)
    except TimeoutError:
        st.rejections.count("not_stored_yet", f"not in the spool within {STORED_WITHIN_S:g} s")
        return False
    return True


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def may_see(request: web.Request, patient: str) -> bool:
    return patient in state_of(request).visible(session_of(request))


def require_viewer(request: web.Request, patient: str | None = None) -> Session:
    session = session_of(request)
    if session is None or session.kind == "anonymous":
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "log in first"}), content_type="application/json"
        )
    if patient is not None and not may_see(request, patient):
        raise web.HTTPForbidden(
            text=json.dumps({"error": "you may not see this patient"}),
            content_type="application/json",
        )
    return session


def require_caregiver(request: web.Request, patient: str | None = None) -> Session:
    session = require_viewer(request, patient)
    if session.login is None:
        raise web.HTTPForbidden(
            text=json.dumps({"error": "caregivers only"}), content_type="application/json"
        )
    return session
