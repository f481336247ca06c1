"""The care team's pages and API for patients, patient links and the audit log (the
care-team store must be configured: ``[careteam]``; otherwise these answer 503).

* ``GET  /team`` — the care-team page (``dashboards/web/team.html``)
* ``GET  /api/team/me`` — the logged-in caregiver's login and role
* ``GET  /api/team/ranges`` — the valid range of every profile field
* ``GET  /api/team/patients`` — patients (admin: all; others: assigned)
* ``POST /api/team/patients`` — (admin) add a patient
* ``GET  /api/team/patients/{patient}`` — record, links, audit entries and the newest
  threshold decision (``threshold``: who set the threshold in force, when; ``null`` if none)
* ``POST /api/team/patients/{patient}`` — edit with the version it was based on
  (thresholds: an assigned clinician; other fields: an admin); 409 with what changed
* ``POST /api/team/patients/{patient}/archive`` — (admin) archive or restore
* ``POST /api/team/patients/{patient}/links`` — a new patient link, with its QR code
* ``POST /api/team/patients/{patient}/links/{link}/revoke``
* ``GET  /api/team/audit`` — the audit log (admin: all; others: their patients')
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import segno
from aiohttp import web

from monitor.careteam.decisions import latest_decision
from monitor.careteam.records import THRESHOLD_FIELDS, CareTeamError
from monitor.profile import PATIENT_ID_PATTERN, PatientProfile
from monitor.web.bodies import BODY
from monitor.web.teamguard import Guard, body_object, json_error, store_error, version_of

LINK_ID = "{link:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}}"
MAX_AUDIT_PAGE = 200
MAX_LINK_URL = 1000
"""A patient link's URL longer than this is refused (its QR code would not be readable)."""


def profile_ranges() -> dict[str, Any]:
    """Each editable profile field's type, bounds and default (shown next to the inputs)."""
    schema = PatientProfile.model_json_schema()
    out: dict[str, Any] = {}
    for name, spec in schema["properties"].items():
        if name == "id":
            continue
        options = spec.get("anyOf", [spec])
        main = next((o for o in options if o.get("type") != "null"), spec)
        entry = {"type": main.get("type", "string"), "default": spec.get("default")}
        entry["nullable"] = any(o.get("type") == "null" for o in options)
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "maxLength"):
            if key in main:
                entry[key] = main[key]
        if "$ref" in main:
            ref = main["$ref"].rsplit("/", 1)[-1]
            entry["type"] = "string"
            entry["enum"] = schema["$defs"][ref]["enum"]
        entry["threshold"] = name in THRESHOLD_FIELDS
        out[name] = entry
    return out


def link_url(request: web.Request, public_url: str, patient: str, token: str) -> str:
    base = public_url.rstrip("/") if public_url else f"{request.scheme}://{request.host}"
    return f"{base}/patient/{patient}?token={token}"


def add_team_routes(
    router: web.UrlDispatcher,
    *,
    guard: Guard,
    patient_pattern: str,
    page: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> None:
    async def me(request: web.Request) -> web.StreamResponse:
        login, role = guard.who(request)
        return web.json_response({"login": login, "role": role})

    async def ranges(request: web.Request) -> web.StreamResponse:
        guard.who(request)
        return web.json_response(profile_ranges())

    async def patients(request: web.Request) -> web.StreamResponse:
        login, role = guard.who(request)
        store = guard.store(request)
        everyone = await asyncio.to_thread(store.patients, archived=role == "admin")
        mine = guard.assigned(request, login)
        shown = [p for p in everyone if role == "admin" or p.id in mine]
        return web.json_response(
            {"patients": [p.to_json() | {"assigned": p.id in mine} for p in shown]}
        )

    async def add_patient(request: web.Request) -> web.StreamResponse:
        body = body_object(request, request[BODY], "id", "display_name", "profile")
        pid = body.get("id")
        if not isinstance(pid, str):
            raise json_error(400, "id: the patient's pseudonym (a string)")
        # a refusal is audited for ever: an id that is no pseudonym (a name typed as the
        # id) is not written there
        subject = pid if re.fullmatch(PATIENT_ID_PATTERN, pid) else "(not a pseudonym)"
        login = await guard.need_admin(
            request, action="patient.add", kind="patient", subject=subject, patient=None
        )
        fields = body.get("profile") or {}
        if not isinstance(fields, dict):
            raise json_error(400, "profile: an object of profile fields")
        try:
            profile = PatientProfile.model_validate(
                {**fields, "id": pid, "display_name": body.get("display_name")}
            )
        except ValueError as err:
            raise json_error(422, _pydantic_message(err)) from err
        team = guard.team(request)
        try:
            record = await asyncio.to_thread(team.store.add_patient, profile, by=login)
        except CareTeamError as err:
            raise store_error(err) from err
        await team.refresh()
        return web.json_response(record.to_json(), status=201)

    async def patient(request: web.Request) -> web.StreamResponse:
        pid = request.match_info["patient"]
        login, role = await guard.need_patient(request, pid, action="patient.read", clinician=False)
        store = guard.store(request)
        try:
            record = await asyncio.to_thread(store.patient, pid)
        except CareTeamError as err:
            raise store_error(err) from err
        links = await asyncio.to_thread(store.links, pid)
        audit = await asyncio.to_thread(store.audit, patient=pid, limit=100)
        decision = await asyncio.to_thread(latest_decision, store, pid)
        return web.json_response(
            record.to_json()
            | {
                "links": [link.to_json() for link in links] if role != "caregiver" else [],
                "audit": [e.to_json() for e in audit],
                "threshold": decision,
                "may_edit_thresholds": role in ("clinician", "admin")
                and pid in guard.assigned(request, login),
                "may_edit_profile": role == "admin",
            }
        )

    async def edit_patient(request: web.Request) -> web.StreamResponse:
        pid = request.match_info["patient"]
        body = body_object(request, request[BODY], "version", "profile")
        changes = body.get("profile")
        if not isinstance(changes, dict) or not changes:
            raise json_error(400, "profile: an object of the fields to change")
        based_on = version_of(body)
        unknown = sorted(set(changes) - set(profile_ranges()))
        if unknown:
            raise json_error(422, f"profile: no such field(s) {', '.join(unknown)[:200]}")
        thresholds = set(changes) & THRESHOLD_FIELDS
        action = "threshold.change" if thresholds else "patient.edit"
        if thresholds:
            login, _ = await guard.need_patient(request, pid, action=action, clinician=True)
        if set(changes) - THRESHOLD_FIELDS:
            login = await guard.need_admin(
                request, action="patient.edit", kind="patient", subject=pid, patient=pid
            )
        team = guard.team(request)
        try:
            record = await asyncio.to_thread(
                team.store.update_patient, pid, changes, based_on=based_on, by=login, action=action
            )
        except CareTeamError as err:
            raise store_error(err) from err
        await team.refresh()
        return web.json_response(record.to_json())

    async def archive(request: web.Request) -> web.StreamResponse:
        pid = request.match_info["patient"]
        body = body_object(request, request[BODY], "version", "archived")
        based_on = version_of(body)
        archived = body.get("archived", True)
        if not isinstance(archived, bool):
            raise json_error(400, "archived: true or false")
        login = await guard.need_admin(
            request, action="patient.archive", kind="patient", subject=pid, patient=pid
        )
        team = guard.team(request)
        try:
            record = await asyncio.to_thread(
                team.store.update_patient,
                pid,
                {},
                based_on=based_on,
                by=login,
                action="patient.archive" if archived else "patient.restore",
                archived=archived,
            )
        except CareTeamError as err:
            raise store_error(err) from err
        await team.refresh()
        return web.json_response(record.to_json())

    async def issue_link(request: web.Request) -> web.StreamResponse:
        pid = request.match_info["patient"]
        login, role = guard.who(request)
        if role != "admin":
            login, _ = await guard.need_patient(request, pid, action="link.issue", clinician=True)
        public_url = guard.state_of(request).config.public_url
        if len(link_url(request, public_url, pid, "x" * 32)) > MAX_LINK_URL:
            raise json_error(
                400,
                f"the link's address would be over {MAX_LINK_URL} characters, too long for "
                "a QR code: check public_url or the Host header",
            )
        team = guard.team(request)
        try:
            link, token = await asyncio.to_thread(team.store.issue_link, pid, by=login)
        except CareTeamError as err:
            raise store_error(err) from err
        await team.refresh()
        url = link_url(request, public_url, pid, token)
        qr = segno.make(url, error="m").svg_data_uri(scale=5, border=2)
        return web.json_response(link.to_json() | {"url": url, "qr_svg": qr}, status=201)

    async def revoke_link(request: web.Request) -> web.StreamResponse:
        pid = request.match_info["patient"]
        login, role = guard.who(request)
        if role != "admin":
            login, _ = await guard.need_patient(request, pid, action="link.revoke", clinician=True)
        team = guard.team(request)
        links = {link.id: link for link in await asyncio.to_thread(team.store.links, pid)}
        if request.match_info["link"] not in links:
            raise json_error(404, "no such link of this patient")
        try:
            link = await asyncio.to_thread(
                team.store.revoke_link, request.match_info["link"], by=login
            )
        except CareTeamError as err:
            raise store_error(err) from err
        await team.refresh()
        return web.json_response(link.to_json())

    async def audit(request: web.Request) -> web.StreamResponse:
        login, role = guard.who(request)
        store = guard.store(request)
        try:
            limit = int(request.query.get("limit", "100"))
            before = int(request.query["before"]) if "before" in request.query else None
        except ValueError as err:
            raise json_error(400, "limit and before are integers") from err
        if before is not None and not 0 <= before < 2**31:  # the id column's range
            raise json_error(400, "before: an audit entry id (0 to 2147483647)")
        limit = max(1, min(limit, MAX_AUDIT_PAGE))
        mine = None if role == "admin" else guard.assigned(request, login)
        entries = await asyncio.to_thread(store.audit, patients=mine, limit=limit, before_id=before)
        return web.json_response({"entries": [e.to_json() for e in entries]})

    base = f"/api/team/patients/{patient_pattern}"
    router.add_get("/team", page)
    router.add_get("/api/team/me", me)
    router.add_get("/api/team/ranges", ranges)
    router.add_get("/api/team/patients", patients)
    router.add_post("/api/team/patients", add_patient)
    router.add_get(base, patient)
    router.add_post(base, edit_patient)
    router.add_post(f"{base}/archive", archive)
    router.add_post(f"{base}/links", issue_link)
    router.add_post(f"{base}/links/{LINK_ID}/revoke", revoke_link)
    router.add_get("/api/team/audit", audit)


def _pydantic_message(err: ValueError) -> str:
    errors = getattr(err, "errors", None)
    if callable(errors):
        parts = []
        for e in errors():
            where = ".".join(str(p) for p in e.get("loc", ())) or "profile"
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return "; ".join(parts)[:500]
    return str(err)[:500]
