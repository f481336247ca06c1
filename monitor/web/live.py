"""The live API: the patients a session may see, their current state, the event stream
(Server-Sent Events), acknowledgements and symptom reports, and the stored sessions'
history. Registered by :func:`monitor.web.app.build_app`."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

from monitor.errors import InputError
from monitor.web.auth import Session
from monitor.web.bodies import BODY, refuse
from monitor.web.history import HistoryError, HistoryReader, valid_id
from monitor.web.state import (
    NOT_STORED,
    json_error,
    require_caregiver,
    require_viewer,
    state_of,
    stored,
)

log = logging.getLogger(__name__)

HEARTBEAT_S = 15.0
"""An SSE comment this often keeps proxies from closing an idle stream."""
MAX_STREAMS_PER_SESSION = 8
"""Live event streams one session may hold at once (tabs, a wall display): each holds a
backlog of frames, so a session opening streams in a loop is bounded."""
MAX_NOTE_CHARS = 500


def boards_for(session: Session, boards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``boards`` as ``session`` may see them: a display name only for caregivers (a
    patient link is a URL that travels by text message or on paper; the patient page
    never shows the name)."""
    if session.login is None:
        for board in boards:
            board["display_name"] = None
    return boards


async def api_patients(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    session = require_viewer(request)
    boards = boards_for(session, st.board.snapshot(st.visible(session)))
    return web.json_response({"patients": boards})


async def api_patient(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    patient = request.match_info["patient"]
    session = require_viewer(request, patient)
    return web.json_response(boards_for(session, st.board.snapshot([patient]))[0])


async def api_events(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    session = require_viewer(request)
    if st.board.streams_of(session.id) >= MAX_STREAMS_PER_SESSION:
        st.rejections.count("too_many_streams", "GET events")
        return json_error(429, f"at most {MAX_STREAMS_PER_SESSION} live streams a session")
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
        {"patients": boards_for(session, st.board.snapshot(patients)), "server_time": time.time()},
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
    st = state_of(request)
    patient = request.match_info["patient"]
    event_id = request.match_info["event_id"]
    session = require_caregiver(request, patient)
    if st.board.pending(patient, event_id) is None:
        return json_error(404, "no such alert waiting for acknowledgement")
    if st.control is None:
        return json_error(503, "the monitor is not running")
    assert session.login is not None
    try:
        st.control.acknowledge(
            patient, event_id, by=session.login, time=st.board.patient_now(patient)
        )
    except InputError:
        return json_error(404, "no such alert waiting for acknowledgement")
    if not await stored(st):
        return json_error(503, NOT_STORED)
    return web.json_response({"ok": True, "patient": patient, "event_id": event_id})


async def api_symptoms(request: web.Request) -> web.StreamResponse:
    st = state_of(request)
    patient = request.match_info["patient"]
    require_viewer(request, patient)
    body = request[BODY] if request[BODY] is not None else {}
    if not isinstance(body, dict) or not isinstance(body.get("note", ""), str):
        raise refuse(request, "send JSON {note} (note a string, may be left out)")
    note: str = body.get("note", "")
    if len(note) > MAX_NOTE_CHARS:
        raise refuse(request, f"note is longer than {MAX_NOTE_CHARS} characters")
    if st.control is None:
        return json_error(503, "the monitor is not running")
    key = "symptoms:" + patient
    wait = st.reports.retry_after(key)
    if wait > 0:
        st.rejections.count("too_many_reports", "POST symptoms: over the limit a minute")
        return web.json_response(
            {
                "error": f"at most {st.config.symptoms_per_minute} symptom reports a minute "
                "for a patient; the earlier ones are kept"
            },
            status=429,
            headers={"Retry-After": str(max(1, round(wait)))},
        )
    try:
        st.control.report_symptom(patient, time=st.board.patient_now(patient), note=note)
    except InputError as err:  # e.g. a patient assigned in [web] the engine has no profile of
        st.rejections.count("refused_by_monitor", f"POST symptoms: {err.reason}")
        return json_error(422, f"the monitor refused the report: {err.reason}")
    st.reports.note(key)  # counted once taken: a refused one costs nothing
    if not await stored(st):
        return json_error(503, NOT_STORED)
    return web.json_response({"ok": True, "patient": patient})


async def _history(request: web.Request) -> HistoryReader:
    st = state_of(request)
    if st.history is None or not st.history.configured:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "no InfluxDB configured for history ([web.history])"}),
            content_type="application/json",
        )
    return st.history


async def api_sessions(request: web.Request) -> web.StreamResponse:
    patient = request.match_info["patient"]
    require_caregiver(request, patient)
    reader = await _history(request)
    try:
        rows = await reader.sessions(patient)
    except HistoryError as err:
        log.warning("history: %s", err)
        return json_error(502, "the history store did not answer")
    return web.json_response({"patient": patient, "sessions": rows})


async def api_session_history(request: web.Request) -> web.StreamResponse:
    patient = request.match_info["patient"]
    session = request.match_info["session"]
    require_caregiver(request, patient)
    if not valid_id(session):
        raise refuse(request, "session id must be 1 to 128 letters, digits or ._:-", kind="id")
    reader = await _history(request)
    try:
        data = await reader.session(patient, session)
    except HistoryError as err:
        log.warning("history: %s", err)
        return json_error(502, "the history store did not answer")
    return web.json_response(data)
