"""The care team's caregivers and who sees whom (admins only), and the one-time invitation
a new (or reset) caregiver sets their password with.

* ``GET  /api/team/caregivers`` — caregivers with their roles and patients
* ``POST /api/team/caregivers`` — invite one: ``{login, role}`` → a one-time link
* ``POST /api/team/caregivers/{login}`` — ``{version, role?, disabled?}``; disabling ends
  their sessions and live streams at once
* ``POST /api/team/caregivers/{login}/reset`` — ``{version}`` → a new one-time link
* ``POST /api/team/assignments`` — ``{login, patient, assigned}``
* ``GET  /invite`` — the page; ``POST /api/invite`` — ``{token, password}``: sets the
  password (argon2, as ``heatmon web hash-password``) and logs in
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from monitor.careteam.records import CareTeamError
from monitor.profile import PATIENT_ID_PATTERN
from monitor.web.auth import hash_password
from monitor.web.bodies import BODY
from monitor.web.config import LOGIN_PATTERN
from monitor.web.teamguard import Guard, body_object, json_error, store_error, version_of

LOGIN = "{login:" + LOGIN_PATTERN.strip("^$") + "}"
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
MAX_TOKEN_CHARS = 128

StartSession = Callable[[web.Request, web.StreamResponse, str], None]
"""Make a caregiver session for ``login`` and set its cookie on the response."""


def invite_url(request: web.Request, public_url: str, token: str) -> str:
    base = public_url.rstrip("/") if public_url else f"{request.scheme}://{request.host}"
    return f"{base}/invite#{token}"


def add_people_routes(
    router: web.UrlDispatcher,
    *,
    guard: Guard,
    page: Callable[[web.Request], Awaitable[web.StreamResponse]],
    start_session: StartSession,
) -> None:
    async def caregivers(request: web.Request) -> web.StreamResponse:
        await guard.need_admin(
            request, action="caregiver.list", kind="caregiver", subject="*", patient=None
        )
        store = guard.store(request)
        people = await asyncio.to_thread(store.caregivers)
        assigned = guard.state_of(request).assignments
        return web.json_response(
            {
                "caregivers": [
                    c.to_json() | {"patients": sorted(assigned.get(c.login, ()))} for c in people
                ]
            }
        )

    async def add(request: web.Request) -> web.StreamResponse:
        body = body_object(request, request[BODY], "login", "role")
        login_new, role = body.get("login"), body.get("role", "caregiver")
        if not isinstance(login_new, str) or not isinstance(role, str):
            raise json_error(400, "send {login, role} (strings)")
        by = await guard.need_admin(
            request, action="caregiver.add", kind="caregiver", subject=login_new[:64], patient=None
        )
        team = guard.team(request)
        try:
            record, token = await asyncio.to_thread(
                team.store.add_caregiver, login_new, role, by=by
            )
        except CareTeamError as err:
            raise store_error(err) from err
        await team.refresh()
        url = invite_url(request, guard.state_of(request).config.public_url, token or "")
        return web.json_response(record.to_json() | {"invite_url": url}, status=201)

    async def edit(request: web.Request, *, reset: bool) -> web.StreamResponse:
        login = request.match_info["login"]
        body = body_object(request, request[BODY], "version")
        based_on = version_of(body)
        role, disabled = body.get("role"), body.get("disabled")
        if role is not None and not isinstance(role, str):
            raise json_error(400, "role: a string")
        if disabled is not None and not isinstance(disabled, bool):
            raise json_error(400, "disabled: true or false")
        by = await guard.need_admin(
            request,
            action="caregiver.reset" if reset else "caregiver.edit",
            kind="caregiver",
            subject=login,
            patient=None,
        )
        if by == login and (disabled or (role is not None and role != "admin")):
            raise json_error(422, "an admin cannot disable or demote themselves")
        team = guard.team(request)
        try:
            record, token = await asyncio.to_thread(
                team.store.update_caregiver,
                login,
                based_on=based_on,
                by=by,
                role=role,
                disabled=disabled,
                reset=reset,
            )
        except CareTeamError as err:
            raise store_error(err) from err
        await team.refresh()  # a disabled caregiver's sessions and streams end here
        out = record.to_json()
        if token is not None:
            out["invite_url"] = invite_url(
                request, guard.state_of(request).config.public_url, token
            )
        return web.json_response(out)

    async def change(request: web.Request) -> web.StreamResponse:
        return await edit(request, reset=False)

    async def reset(request: web.Request) -> web.StreamResponse:
        return await edit(request, reset=True)

    async def assign(request: web.Request) -> web.StreamResponse:
        body = body_object(request, request[BODY], "login", "patient", "assigned")
        login, patient, assigned = (
            body.get("login"),
            body.get("patient"),
            body.get("assigned", True),
        )
        if (
            not isinstance(login, str)
            or not isinstance(patient, str)
            or not isinstance(assigned, bool)
            or not re.fullmatch(LOGIN_PATTERN, login)
            or not re.fullmatch(PATIENT_ID_PATTERN, patient)
        ):
            raise json_error(400, "send {login, patient, assigned} (a login, a pseudonym, a bool)")
        by = await guard.need_admin(
            request, action="assign", kind="assignment", subject=login, patient=patient
        )
        team = guard.team(request)
        try:
            changed = await asyncio.to_thread(
                team.store.assign, login, patient, by=by, assigned=assigned
            )
        except CareTeamError as err:
            raise store_error(err) from err
        await team.refresh()
        return web.json_response({"changed": changed, "login": login, "patient": patient})

    async def accept(request: web.Request) -> web.StreamResponse:
        body = body_object(request, request[BODY], "token", "password")
        token, password = body.get("token"), body.get("password")
        if not isinstance(token, str) or not isinstance(password, str):
            raise json_error(400, "send {token, password} (two strings)")
        if not 10 <= len(token) <= MAX_TOKEN_CHARS:
            raise json_error(404, "this invitation is not valid (used, expired or revoked)")
        if any(ord(c) < 32 or 0xD800 <= ord(c) < 0xE000 for c in password):
            raise json_error(422, "password: no control characters or lone surrogates")
        if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
            raise json_error(
                422, f"password: {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
            )
        team = guard.team(request)
        st = guard.state_of(request)
        limiter_key = "invite:" + (request.remote or "unknown")
        wait = st.limiter.retry_after(limiter_key)
        if wait > 0:
            raise web.HTTPTooManyRequests(
                text=json.dumps({"error": "too many wrong invitation links; try again later"}),
                content_type="application/json",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
        if await asyncio.to_thread(team.store.invited, token) is None:
            st.limiter.note(limiter_key)  # a wrong token costs no argon2 hash
            raise json_error(404, "this invitation is not valid (used, expired or revoked)")
        hashed = await asyncio.to_thread(hash_password, password)
        try:
            login = await asyncio.to_thread(team.store.accept_invite, token, hashed)
        except CareTeamError as err:
            st.limiter.note(limiter_key)
            raise store_error(err) from err
        await team.refresh()
        response = web.json_response({"login": login})
        start_session(request, response, login)
        return response

    router.add_get("/invite", page)
    router.add_post("/api/invite", accept)
    router.add_get("/api/team/caregivers", caregivers)
    router.add_post("/api/team/caregivers", add)
    router.add_post(f"/api/team/caregivers/{LOGIN}", change)
    router.add_post(f"/api/team/caregivers/{LOGIN}/reset", reset)
    router.add_post("/api/team/assignments", assign)
