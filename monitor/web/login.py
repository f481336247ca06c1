"""Signing in and out of the dashboard: a caregiver's password login and logout, the session
API (who is signed in, their CSRF token), the session cookie and a visitor's anonymous
CSRF token. A patient signs in through the link their caregiver gave
(:func:`monitor.web.pages.patient_page`), with the same cookie. The sessions themselves,
the passwords and the limiter are in :mod:`monitor.web.auth`."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from aiohttp import web

from monitor.web.auth import ANON_COOKIE, SESSION_COOKIE, Session, address_key
from monitor.web.bodies import BODY, refuse
from monitor.web.config import LOGIN_PATTERN
from monitor.web.state import json_error, session_of, state_of

log = logging.getLogger(__name__)

MAX_PASSWORD_CHARS = 1024


def _secure(request: web.Request) -> bool:
    """Cookies get ``Secure`` with ``secure_cookies``, or when the browser came over HTTPS
    (so far only said by a trusted proxy's ``X-Forwarded-Proto``: heatmon serves plain HTTP)."""
    return state_of(request).config.secure_cookies or request.scheme == "https"


def set_session_cookie(
    request: web.Request, response: web.StreamResponse, session: Session
) -> None:
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


def client_key(request: web.Request) -> str:
    return address_key(request.remote)


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
    keys = (client_key(request), "login:" + login.lower())
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
    set_session_cookie(request, response, session)
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


def start_session(request: web.Request, response: web.StreamResponse, login: str) -> None:
    st = state_of(request)
    old = session_of(request)
    if old is not None:
        st.sessions.drop(old.id)
        st.board.close_owner(old.id)
    set_session_cookie(request, response, st.sessions.new(login=login))
