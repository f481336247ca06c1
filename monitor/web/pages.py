"""The dashboard's pages: ``/`` (where a session belongs), ``/login``, the caregiver pages
(``/caregiver``, ``/history``, ``/team``: a caregiver's session or the login page),
``/patient/<id>`` (the patient's own calm view, entered through the link their caregiver
gave: its token becomes a session and leaves the address bar) and the invitation page.
The files are in the static directory (``dashboards/web/``); registered by
:func:`monitor.web.app.build_app`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from monitor.web.auth import token_digest
from monitor.web.login import client_key, set_session_cookie
from monitor.web.state import may_see, session_of, state_of
from monitor.web.teamsync import LINK_DIGEST

log = logging.getLogger(__name__)

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def page(request: web.Request, name: str) -> web.StreamResponse:
    response = web.FileResponse(state_of(request).static_dir / name)
    response.headers["Cache-Control"] = "no-store"
    return response


async def index(request: web.Request) -> web.StreamResponse:
    session = session_of(request)
    if session is not None and session.patient is not None:
        raise web.HTTPFound(f"/patient/{session.patient}")
    raise web.HTTPFound("/caregiver")


async def login_page(request: web.Request) -> web.StreamResponse:
    return page(request, "login.html")


def caregiver_page(name: str) -> PageHandler:
    """A page for caregivers only (anyone else is sent to the login page)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        session = session_of(request)
        if session is None or session.login is None:
            raise web.HTTPFound("/login")
        return page(request, name)

    return handler


async def patient_page(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    patient = request.match_info["patient"]
    token = request.query.get("token")
    if token is not None:
        limiter_keys = (client_key(request),)
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
        set_session_cookie(request, response, session)
        raise response
    if not may_see(request, patient):
        return web.Response(
            status=403,
            text="Open the link your caregiver gave you, or log in as a caregiver.",
        )
    return page(request, "patient.html")


async def invite_page(request: web.Request) -> web.StreamResponse:
    return page(request, "invite.html")
