"""The patient app's server pieces over real HTTP against the running service
(``monitor/web/patient_routes.py``): the manifest and the service worker with the content
types and scope a browser needs, and "I'm cooling down" — only the patient's own link
session, with the CSRF token, for an alert that is waiting; stored through the service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.model import Acknowledgement, Level
from monitor.web.config import WebConfig
from monitor.web.patient_routes import PATIENT_ACK_BY
from tests.fixtures.web import CAROL, WebStack, build_web_stack, csrf

LIVE_TIMEOUT_S = 30.0


@pytest.fixture
async def web_stack() -> AsyncIterator[WebStack]:
    """Two of the usual patients on a fast clock: p-hot reaches cool_down within seconds."""
    stack = build_web_stack(
        patients={"p-hot": ("Hanna", "hot_day_aerobic"), "p-cool": ("Carl", "cool_gym_strength")},
        users=(CAROL,),
        speed=240.0,
        symptoms_per_minute=WebConfig().symptoms_per_minute,
    )
    async with stack.monitor:
        for pid in ("p-hot", "p-cool"):
            stack.patient_links[pid] = stack.sink.patient_url(pid)
        yield stack


async def open_link(http: aiohttp.ClientSession, link: str) -> None:
    async with http.get(link, allow_redirects=False) as resp:
        assert resp.status == 302


async def answer(
    http: aiohttp.ClientSession, patient: str, event_id: str, token: str | None
) -> tuple[int, dict[str, Any]]:
    headers = {"X-CSRF-Token": token} if token is not None else {}
    url = f"/api/patients/{patient}/alerts/{event_id}/patient-ack"
    async with http.post(url, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_manifest_and_service_worker_are_served_for_an_installable_app(
    http: aiohttp.ClientSession,
) -> None:
    async with http.get("/manifest.webmanifest") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/manifest+json"
        manifest = json.loads(await resp.text())
    assert manifest["start_url"] == "/" and manifest["scope"] == "/"
    assert manifest["display"] == "standalone"
    for icon in manifest["icons"]:
        async with http.get(icon["src"]) as resp:
            assert resp.status == 200 and resp.content_type == icon["type"]
    async with http.get("/sw.js") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/javascript"
        assert resp.headers["Service-Worker-Allowed"] == "/"
        assert resp.headers["Cache-Control"] == "no-cache"
        assert 'addEventListener("notificationclick"' in await resp.text()
    async with http.get("/patient/p-hot", allow_redirects=False) as resp:
        assert resp.status == 403, "the page itself still needs the link"


async def test_only_the_patients_own_link_answers_a_waiting_cool_down(
    web_stack: WebStack, http: aiohttp.ClientSession
) -> None:
    alert = await asyncio.wait_for(
        web_stack.recorder.wait_for_event("p-hot", Level.COOL_DOWN), LIVE_TIMEOUT_S
    )
    # Nobody logged in.
    assert (await answer(http, "p-hot", alert.id, await csrf(http)))[0] == 401
    # Another patient's link may not answer for p-hot.
    await open_link(http, web_stack.patient_links["p-cool"])
    assert (await answer(http, "p-hot", alert.id, await csrf(http)))[0] == 403
    # A caregiver acknowledges through .../ack, not as the patient.
    token = await csrf(http)
    async with http.post(
        "/api/login",
        json={"login": CAROL.login, "password": CAROL.password},
        headers={"X-CSRF-Token": token},
    ) as resp:
        assert resp.status == 200
    assert (await answer(http, "p-hot", alert.id, await csrf(http)))[0] == 403

    await open_link(http, web_stack.patient_links["p-hot"])
    token = await csrf(http)
    assert (await answer(http, "p-hot", alert.id, None))[0] == 403, "CSRF token needed"
    assert (await answer(http, "p-hot", alert.id, "forged"))[0] == 403
    status, body = await answer(http, "p-hot", "x" * 200, token)
    assert status == 400 and "128" in body["error"]
    assert (await answer(http, "p-hot", "no-such-alert", token))[0] == 404
    assert not [r for r in web_stack.recorder.records if isinstance(r, Acknowledgement)]

    status, body = await answer(http, "p-hot", alert.id, token)
    assert status == 200 and body == {
        "ok": True,
        "patient": "p-hot",
        "event_id": alert.id,
        "by": PATIENT_ACK_BY,
    }
    acks = [r for r in web_stack.recorder.records if isinstance(r, Acknowledgement)]
    assert [(a.patient, a.event_id, a.by) for a in acks] == [("p-hot", alert.id, PATIENT_ACK_BY)]
    assert alert.id not in {e.id for e in web_stack.monitor.open_alerts("p-hot")}
    # Answered once: a second tap finds nothing waiting; the board remembers who answered.
    assert (await answer(http, "p-hot", alert.id, token))[0] == 404
    async with http.get("/api/patients/p-hot") as resp:
        board = await resp.json()
    assert board["last_ack"]["event_id"] == alert.id
    assert board["last_ack"]["by"] == PATIENT_ACK_BY
    assert alert.id not in {e["id"] for e in board["pending"]}


async def test_a_patient_link_never_receives_the_display_name(
    web_stack: WebStack, http: aiohttp.ClientSession
) -> None:
    """The README: a display name is shown only to logged-in caregivers assigned to the
    patient. A patient link (a URL sent by text message, a QR code on paper) got "Hanna"
    beside her vitals from every read of the API and the live stream; the patient page
    never shows it."""
    await open_link(http, web_stack.patient_links["p-hot"])
    async with http.get("/api/patients") as resp:
        assert resp.status == 200
        (board,) = (await resp.json())["patients"]
    async with http.get("/api/patients/p-hot") as resp:
        assert resp.status == 200
        one = await resp.json()
    async with http.get("/api/events") as resp:
        assert resp.status == 200
        snapshot = (await resp.content.readuntil(b"\n\n")).decode()
    assert board["patient"] == one["patient"] == "p-hot"
    assert board["display_name"] is None and one["display_name"] is None
    assert "Hanna" not in snapshot and '"p-hot"' in snapshot
    async with aiohttp.ClientSession(
        base_url=web_stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as carol:
        async with carol.post(
            "/api/login",
            json={"login": CAROL.login, "password": CAROL.password},
            headers={"X-CSRF-Token": await csrf(carol)},
        ) as resp:
            assert resp.status == 200
        async with carol.get("/api/patients/p-hot") as resp:
            assert (await resp.json())["display_name"] == "Hanna"


async def test_symptom_reports_of_one_patient_are_bounded_in_time(
    web_stack: WebStack, http: aiohttp.ClientSession
) -> None:
    """A patient link (a URL anyone who got the text message holds) could send "I feel
    symptoms" in a loop: every report was stored, sent to every caregiver's page and fed
    to the threshold learning. The page itself waits 3 s between presses; the server now
    takes at most ``[web] symptoms_per_minute`` a patient (10), the rest 429 and counted."""
    from monitor.model import SymptomReport

    limit = WebConfig().symptoms_per_minute

    await open_link(http, web_stack.patient_links["p-hot"])
    token = await csrf(http)
    statuses = []
    for _ in range(limit + 5):
        async with http.post(
            "/api/patients/p-hot/symptoms", json={"note": ""}, headers={"X-CSRF-Token": token}
        ) as resp:
            statuses.append(resp.status)
            if resp.status == 429:
                assert int(resp.headers["Retry-After"]) >= 1
    assert statuses == [200] * limit + [429] * 5
    reports = [r for r in web_stack.recorder.records if isinstance(r, SymptomReport)]
    assert len(reports) == limit
    async with http.get("/healthz") as resp:
        assert (await resp.json())["rejected"].get("too_many_reports") == 5
    # another patient's reports are not held up by this one's
    async with aiohttp.ClientSession(
        base_url=web_stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as other:
        await open_link(other, web_stack.patient_links["p-cool"])
        async with other.post(
            "/api/patients/p-cool/symptoms", json={}, headers={"X-CSRF-Token": await csrf(other)}
        ) as resp:
            assert resp.status == 200


@pytest.mark.slow
async def test_a_symptom_report_is_on_disk_when_the_page_is_told_it_is_noted(
    tmp_path: Path,
) -> None:
    """The bar of the MQTT input (a message is acknowledged only once safely handed on)
    holds for the dashboard too: "Noted. Your caregiver can see it." came back while the
    report was still only in memory, spooled by the InfluxDB sink up to spool_interval_s
    later; a crash in between lost it. Now the answer waits for the spool (fsynced)."""
    from monitor.storage.options import InfluxOptions
    from monitor.storage.sink import InfluxSink

    influx = InfluxSink(
        options=InfluxOptions(url="http://127.0.0.1:9", database="heatmon", spool_interval_s=30),
        data_dir=tmp_path,
    )
    stack = build_web_stack(
        patients={"p-hot": ("Hanna", "hot_day_aerobic")}, users=(CAROL,), sinks=(influx,)
    )
    async with (
        stack.monitor,
        aiohttp.ClientSession(
            base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as http,
    ):
        await open_link(http, stack.sink.patient_url("p-hot"))
        async with http.post(
            "/api/patients/p-hot/symptoms",
            json={"note": "durable-note-5e1"},
            headers={"X-CSRF-Token": await csrf(http)},
        ) as resp:
            assert resp.status == 200
            spooled = await asyncio.to_thread(
                lambda: b"".join(p.read_bytes() for p in tmp_path.rglob("seg-*.lp"))
            )
    assert b"durable-note-5e1" in spooled
