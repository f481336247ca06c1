"""The care-team store and its API, against SQLite and a real PostgreSQL (``careteam_url``):
bad input is refused with what and why, a concurrent edit is refused with what changed, a
disabled caregiver's live stream ends within a second, a revoked link stops working, a
restart keeps everything, and a kill -9 in the middle of a change leaves the old state or
the new one, never a mix."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy.exc import DBAPIError

from monitor.careteam.records import Conflict, Invalid
from monitor.careteam.store import CareStore
from monitor.config import parse_config
from monitor.profile import PatientProfile
from monitor.thresholds.location import store_path
from monitor.web.teamsync import TeamSync
from tests.careteam_helpers import (
    ADMIN,
    ADMIN_PASSWORD,
    NEW,
    TeamStack,
    build_team_stack,
    seed_admin,
)

REPO = Path(__file__).resolve().parents[1]


class Client:
    """A browser-like client: its own cookies, the session's CSRF token on every POST."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http

    async def csrf(self) -> str:
        async with self.http.get("/api/session") as resp:
            return str((await resp.json())["csrf"])

    async def post(self, path: str, body: Any = None, *, csrf: bool = True) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": await self.csrf()} if csrf else {}
        async with self.http.post(path, json=body or {}, headers=headers) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(path) as resp:
            return resp.status, await resp.json()

    async def login(self, login: str, password: str) -> None:
        status, body = await self.post("/api/login", {"login": login, "password": password})
        assert status == 200, body


ONSETS = (0.34, 0.36, 0.38)
"""Rises at which the patient felt symptoms in three sessions: enough for a suggestion."""


async def client(stack: TeamStack) -> Client:
    http = aiohttp.ClientSession(base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    return Client(http)


@pytest.fixture
async def team(careteam_url: str) -> AsyncIterator[TeamStack]:
    await asyncio.to_thread(seed_admin, careteam_url)
    stack = build_team_stack(careteam_url)
    async with stack.monitor:
        yield stack


async def invited(admin: Client, stack: TeamStack, login: str, role: str) -> Client:
    status, body = await admin.post("/api/team/caregivers", {"login": login, "role": role})
    assert status == 201, body
    token = body["invite_url"].split("#", 1)[1]
    person = await client(stack)
    status, body = await person.post(
        "/api/invite", {"token": token, "password": f"{login}'s long passphrase"}
    )
    assert status == 200, body
    # The invitation works once.
    other = await client(stack)
    status, body = await other.post("/api/invite", {"token": token, "password": "x" * 20})
    assert status == 404 and "not valid" in body["error"]
    await other.http.close()
    return person


async def test_bad_input_is_refused_with_what_and_why(team: TeamStack) -> None:
    admin = await client(team)
    clara = cody = None
    try:
        await admin.login(ADMIN, ADMIN_PASSWORD)
        # CSRF on every POST.
        status, body = await admin.post("/api/team/patients", {"id": NEW}, csrf=False)
        assert status == 403 and "X-CSRF-Token" in body["error"]
        status, body = await admin.post(
            "/api/team/patients", {"id": NEW, "profile": {"threshold_rise_c": 3.0}}
        )
        assert status == 422 and "threshold_rise_c" in body["error"]
        status, body = await admin.post("/api/team/patients", {"id": NEW, "display_name": "Nina"})
        assert status == 201 and body["version"] == 1
        status, body = await admin.post("/api/team/patients", {"id": NEW})
        assert status == 409 and "already taken" in body["error"]

        clara = await invited(admin, team, "clara", "clinician")
        cody = await invited(admin, team, "cody", "caregiver")
        for login in ("clara", "cody"):
            status, _ = await admin.post(
                "/api/team/assignments", {"login": login, "patient": NEW, "assigned": True}
            )
            assert status == 200

        # Out of range, and a combination the profile forbids: the message names the field.
        status, body = await clara.post(
            f"/api/team/patients/{NEW}", {"version": 1, "profile": {"threshold_rise_c": 0.05}}
        )
        assert status == 422 and "threshold_rise_c" in body["error"]
        status, body = await clara.post(
            f"/api/team/patients/{NEW}", {"version": 1, "profile": {"threshold_rise_c": 0.15}}
        )
        assert status == 422 and "caution_margin_c" in body["error"]
        # A plain caregiver may not change a threshold; the attempt is in the audit log.
        status, body = await cody.post(
            f"/api/team/patients/{NEW}", {"version": 1, "profile": {"threshold_rise_c": 0.4}}
        )
        assert status == 403
        # Two edits based on version 1: the later one is refused with what changed.
        status, body = await clara.post(
            f"/api/team/patients/{NEW}", {"version": 1, "profile": {"threshold_rise_c": 0.4}}
        )
        assert status == 200 and body["version"] == 2
        status, body = await admin.post(
            f"/api/team/patients/{NEW}", {"version": 1, "profile": {"age": 60}}
        )
        assert status == 409
        (change,) = body["changes"]
        assert change["actor"] == "clara"
        assert change["before"] == {"threshold_rise_c": 0.5}
        assert change["after"] == {"threshold_rise_c": 0.4}
        assert body["current"]["profile"]["age"] == 45  # nothing overwritten
        profile = team.monitor.engine.profile(NEW)
        assert profile is not None and profile.threshold_rise_c == 0.4
        # Other fields of the profile reach the running engine too, without a restart.
        status, body = await admin.post(
            f"/api/team/patients/{NEW}", {"version": 2, "profile": {"forecast_horizon_min": 15}}
        )
        assert status == 200 and body["version"] == 3
        for _ in range(50):
            profile = team.monitor.engine.profile(NEW)
            if profile is not None and profile.forecast_horizon_min == 15:
                break
            await asyncio.sleep(0.02)
        assert profile is not None and profile.forecast_horizon_min == 15
        assert profile.threshold_rise_c == 0.4  # the clinician's change stays

        status, body = await admin.get("/api/team/audit")
        entries = body["entries"]
        refused = [e for e in entries if e["outcome"] == "refused"]
        assert [(e["actor"], e["action"], e["patient"]) for e in refused] == [
            ("cody", "threshold.change", NEW)
        ]
        # The care team sees it on the patient's record too; a caregiver only their own.
        status, body = await cody.get(f"/api/team/patients/{NEW}")
        assert status == 200
        assert any(e["outcome"] == "refused" for e in body["audit"])
        status, body = await cody.get("/api/team/caregivers")
        assert status == 403
        # Guessing invitation tokens: counted per address like failed logins, then 429.
        guesser = await client(team)
        answers = [
            (await guesser.post("/api/invite", {"token": f"guess-{n:08d}", "password": "x" * 20}))[
                0
            ]
            for n in range(6)
        ]
        await guesser.http.close()
        assert answers[-1] == 429 and set(answers[:-1]) <= {404, 429} and 404 in answers
    finally:
        for c in (admin, clara, cody):
            if c is not None:
                await c.http.close()


async def test_disabled_caregiver_and_revoked_link_are_cut_at_once(team: TeamStack) -> None:
    admin = await client(team)
    clara = phone = None
    try:
        await admin.login(ADMIN, ADMIN_PASSWORD)
        await admin.post("/api/team/patients", {"id": NEW})
        clara = await invited(admin, team, "clara", "clinician")
        await admin.post("/api/team/assignments", {"login": "clara", "patient": NEW})
        status, link = await admin.post(f"/api/team/patients/{NEW}/links")
        assert status == 201 and link["qr_svg"].startswith("data:image/svg+xml")
        phone = await client(team)
        async with phone.http.get(link["url"].split(team.base_url, 1)[1]) as resp:
            assert resp.status == 200 and resp.url.path == f"/patient/{NEW}"
        # a link made by the running sink (as the demo prints them) works beside the store's
        other_phone = await client(team)
        try:
            async with other_phone.http.get(
                team.sink.patient_url(NEW).split(team.base_url, 1)[1]
            ) as resp:
                assert resp.status == 200 and resp.url.path == f"/patient/{NEW}"
        finally:
            await other_phone.http.close()

        async with clara.http.get("/api/events") as stream:
            assert stream.status == 200
            await stream.content.readuntil(b"\n\n")  # the snapshot
            status, me = await admin.get("/api/team/caregivers")
            version = next(c["version"] for c in me["caregivers"] if c["login"] == "clara")
            status, body = await admin.post(
                "/api/team/caregivers/clara", {"version": version, "disabled": True}
            )
            assert status == 200 and body["disabled"] is True
            started = time.monotonic()
            async with asyncio.timeout(1.0):  # the stream ends within a second
                while await stream.content.read(4096):
                    pass
            assert time.monotonic() - started < 1.0
        status, _ = await clara.get("/api/team/me")
        assert status == 401
        status, _ = await clara.post(
            "/api/login", {"login": "clara", "password": "clara's long passphrase"}
        )
        assert status == 401

        status, _ = await phone.get(f"/api/patients/{NEW}")
        assert status == 200
        status, _ = await admin.post(f"/api/team/patients/{NEW}/links/{link['id']}/revoke")
        assert status == 200
        status, _ = await phone.get(f"/api/patients/{NEW}")
        assert status == 401  # the phone's session ended with its link
        async with phone.http.get(link["url"].split(team.base_url, 1)[1]) as resp:
            assert resp.status == 403  # and the link opens nothing any more
        status, body = await admin.post(f"/api/team/patients/{NEW}/links/{link['id']}/revoke")
        assert status == 409
    finally:
        for c in (admin, clara, phone):
            if c is not None:
                await c.http.close()


@pytest.mark.slow
async def test_a_restart_keeps_everything(careteam_url: str) -> None:
    await asyncio.to_thread(seed_admin, careteam_url)
    first = build_team_stack(careteam_url)
    async with first.monitor:
        admin = await client(first)
        try:
            await admin.login(ADMIN, ADMIN_PASSWORD)
            await admin.post("/api/team/patients", {"id": NEW, "display_name": "Nina"})
            await invited(admin, first, "clara", "clinician")
            await admin.post("/api/team/assignments", {"login": "clara", "patient": NEW})
            await admin.post(f"/api/team/patients/{NEW}", {"version": 1, "profile": {"age": 61}})
        finally:
            await admin.http.close()
    second = build_team_stack(careteam_url)
    async with second.monitor:
        profile = second.monitor.engine.profile(NEW)
        assert profile is not None and profile.age == 61
        clara = await client(second)
        try:
            await clara.login("clara", "clara's long passphrase")
            status, body = await clara.get("/api/session")
            assert status == 200 and body["patients"] == [NEW]
            status, body = await clara.get("/api/team/audit")
            assert status == 200
            assert [e["action"] for e in body["entries"]][:2] == ["patient.edit", "assign"]
        finally:
            await clara.http.close()


def test_store_rules_and_the_append_only_audit_log(careteam_url: str) -> None:
    with CareStore(url=careteam_url) as store:
        store.add_patient(PatientProfile(id="p-1"), by="ada")
        with pytest.raises(Conflict, match="already taken"):
            store.add_patient(PatientProfile(id="p-1"), by="ada")
        with pytest.raises(Invalid, match="threshold_rise_c"):
            store.update_patient("p-1", {"threshold_rise_c": 2.5}, based_on=1, by="ada")
        with pytest.raises(Invalid, match="pseudonym"):
            store.update_patient("p-1", {"id": "p-2"}, based_on=1, by="ada")
        with pytest.raises(DBAPIError), store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE audit SET actor = 'someone else'")
        with pytest.raises(DBAPIError), store.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM audit")
        assert [e.actor for e in store.audit()] == ["ada"]


CHANGE_SCRIPT = """
import sys, time
from sqlalchemy import event
from monitor.careteam.store import CareStore
store = CareStore(url=sys.argv[1])
stop_at = sys.argv[2]

@event.listens_for(store.engine, "after_cursor_execute")
def pause(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().upper().startswith(stop_at):
        print("MID", flush=True)
        time.sleep(120)

store.update_patient("p-1", {"threshold_rise_c": 0.4}, based_on=1, by="clara")
print("DONE", flush=True)
"""


@pytest.mark.parametrize("stop_at", ["UPDATE PATIENTS", "INSERT INTO AUDIT"])
def test_kill_9_in_the_middle_of_a_change_leaves_old_or_new(
    careteam_url: str, stop_at: str
) -> None:
    with CareStore(url=careteam_url) as store:
        store.add_patient(PatientProfile(id="p-1"), by="ada")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHANGE_SCRIPT, careteam_url, stop_at],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"MID"  # the change is half written
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with CareStore(url=careteam_url) as store:
        record = store.patient("p-1")
        edits = [e for e in store.audit(patient="p-1") if e.action == "patient.edit"]
        assert (record.version, record.profile.threshold_rise_c, len(edits)) in (
            (1, 0.5, 0),  # the old state, no entry
            (2, 0.4, 1),  # the new state with its entry
        )
        # Nothing half-done blocks the next change.
        store.update_patient("p-1", {"threshold_rise_c": 0.45}, based_on=record.version, by="x")


def test_config_only_deployments_have_no_store_and_the_thresholds_share_it(
    tmp_path: Path,
) -> None:
    from monitor.careteam.config import store_url

    plain = parse_config({"monitor": {"data_dir": str(tmp_path)}}, environ={})
    assert store_url(plain, environ={}) is None
    assert store_path(plain) == tmp_path / "thresholds.sqlite"
    team = parse_config({"monitor": {"data_dir": str(tmp_path)}, "careteam": {}}, environ={})
    assert store_url(team, environ={}) == f"sqlite:///{(tmp_path / 'careteam.sqlite').resolve()}"
    assert store_path(team) == (tmp_path / "careteam.sqlite").resolve()


async def test_suggestions_live_in_the_care_team_database(
    careteam_url: str, tmp_path: Path
) -> None:
    """``[sinks.thresholds]`` without a path uses the care team's database: the SQLite file
    itself, or the PostgreSQL (then every web instance sees the same suggestions)."""
    from monitor.config import EngineConfig
    from monitor.engine import MonitorEngine
    from monitor.plugins import PluginContext
    from monitor.service import Monitor
    from monitor.thresholds.learner import ThresholdLearner
    from tests.threshold_helpers import session_with_symptoms

    day, t0, pid = 86_400.0, 1_780_000_000.0, "p-learn"
    config = parse_config(
        {
            "monitor": {"data_dir": str(tmp_path / "var")},
            "patients": [{"id": pid}],
            "sinks": {"thresholds": {}},
            "careteam": {"url": careteam_url},
        },
        environ={},
    )

    def learner() -> ThresholdLearner:
        context = PluginContext(config=config, instance="t")
        return ThresholdLearner.from_options({}, context=context)

    first = learner()
    if careteam_url.startswith("sqlite"):
        assert first.url is None and f"sqlite:///{first.path}" == careteam_url
    else:
        assert first.url == careteam_url
    engine = MonitorEngine(profiles={p.id: p for p in config.patients}, config=EngineConfig())
    first.attach(engine)
    async with Monitor(engine=engine, sinks=[first]) as monitor:
        for k, rise in enumerate(ONSETS):
            await session_with_symptoms(monitor, pid, start=t0 + k * day, rise_c=rise)
        async with asyncio.timeout(30):
            while first.counters.get("reports_stored", 0) < len(ONSETS):
                first.stored.clear()
                await first.stored.wait()
        assert first.store.url == careteam_url
        (suggestion,) = first.store.suggestions(pid)
        assert len(suggestion.evidence) == len(ONSETS)
        _, change = await first.decide(pid, suggestion.id, accept=True, by="clara")
        assert change is not None and engine.profile(pid).threshold_rise_c == change.threshold_c  # type: ignore[union-attr]
    # After a restart the accepted threshold is in force before any sample.
    again = learner()
    engine = MonitorEngine(profiles={p.id: p for p in config.patients}, config=EngineConfig())
    again.attach(engine)
    async with Monitor(engine=engine, sinks=[again]):
        assert engine.profile(pid).threshold_rise_c == change.threshold_c  # type: ignore[union-attr]
        (kept,) = again.store.suggestions(pid)
        assert (kept.status, kept.decided_by) == ("accepted", "clara")


def team_of(stack: TeamStack) -> TeamSync:
    team = stack.sink.state.team
    assert team is not None
    return team


async def until(stack: TeamStack, ok: Callable[[], bool]) -> None:
    """Wait until ``ok()`` after one of the stack's refreshes from the store."""
    team = team_of(stack)
    async with asyncio.timeout(5):
        while True:
            team.changed.clear()
            if ok():
                return
            await team.changed.wait()


@pytest.mark.slow
async def test_a_change_on_one_instance_reaches_the_other(careteam_url: str) -> None:
    """Two dashboards on one database (the cluster mode): a caregiver disabled on one loses
    her live stream on the other within its ``poll_s``; a threshold changed on one reaches
    the other's engine."""
    await asyncio.to_thread(seed_admin, careteam_url)
    one = build_team_stack(careteam_url, poll_s=0.2)
    two = build_team_stack(careteam_url, poll_s=0.2)
    async with one.monitor, two.monitor:
        admin = await client(two)
        clara = None
        try:
            await admin.login(ADMIN, ADMIN_PASSWORD)
            await admin.post("/api/team/patients", {"id": NEW})
            clara = await invited(admin, two, "clara", "clinician")
            await admin.post("/api/team/assignments", {"login": "clara", "patient": NEW})
            await clara.http.close()
            clara = await client(one)
            await until(one, lambda: team_of(one).marker == team_of(two).marker)
            await clara.login("clara", "clara's long passphrase")
            status, _ = await clara.post(
                f"/api/team/patients/{NEW}", {"version": 1, "profile": {"threshold_rise_c": 0.4}}
            )
            assert status == 200
            await until(
                two, lambda: getattr(two.monitor.engine.profile(NEW), "threshold_rise_c", 0) == 0.4
            )
            async with clara.http.get("/api/events") as stream:
                await stream.content.readuntil(b"\n\n")
                _, body = await admin.get("/api/team/caregivers")
                version = next(c["version"] for c in body["caregivers"] if c["login"] == "clara")
                status, _ = await admin.post(
                    "/api/team/caregivers/clara", {"version": version, "disabled": True}
                )
                assert status == 200
                async with asyncio.timeout(1.0):  # poll_s 0.2 s, then cut at once
                    while await stream.content.read(4096):
                        pass
        finally:
            await admin.http.close()
            if clara is not None:
                await clara.http.close()


async def test_a_patient_added_at_run_time_is_known_to_the_mqtt_input(
    careteam_url: str,
) -> None:
    """A gateway's "I feel symptoms" for a patient the care team adds while running is
    refused before (unknown patient) and taken after, without a restart."""
    from monitor.mqtt.options import parse_options
    from monitor.mqtt.sink import MqttSink
    from monitor.mqtt.topics import Channel
    from monitor.plugins import PluginContext
    from monitor.running import RunningSink

    await asyncio.to_thread(seed_admin, careteam_url)
    stack = build_team_stack(careteam_url)
    context = PluginContext(config=None, instance="t", monitor=stack.monitor)
    mqtt = MqttSink(options=parse_options({"port": 1}), context=context, known_patients=())
    topic = mqtt._topics.patient(NEW, Channel.SYMPTOMS)
    # now: a report more than 7 days behind the monitor's clock is refused for that alone
    payload = json.dumps({"v": 1, "time": datetime.now(UTC).isoformat()}).encode()
    async with stack.monitor:
        # its input side only: never started, never connects
        stack.monitor._running.append(RunningSink(mqtt, health=stack.monitor._health))
        await mqtt.handle(topic, payload)
        assert mqtt.counters.get("rejected") == 1 and "symptoms_in" not in mqtt.counters
        admin = await client(stack)
        try:
            await admin.login(ADMIN, ADMIN_PASSWORD)
            status, _ = await admin.post("/api/team/patients", {"id": NEW})
            assert status == 201
        finally:
            await admin.http.close()
        await mqtt.handle(topic, payload)
        assert mqtt.counters.get("symptoms_in") == 1 and mqtt.counters.get("rejected") == 1


@pytest.mark.slow
async def test_only_a_clinician_decides_a_suggestion_and_the_store_follows(
    careteam_url: str, tmp_path: Path
) -> None:
    from monitor.thresholds.learner import ThresholdLearner
    from tests.threshold_helpers import session_with_symptoms

    day, t0, pid = 86_400.0, 1_780_000_000.0, "p-learn"
    learner = ThresholdLearner(
        path=tmp_path / "thresholds.sqlite",
        url=careteam_url if careteam_url.startswith("postgresql") else None,
        profiles={},
    )
    await asyncio.to_thread(seed_admin, careteam_url)
    stack = build_team_stack(careteam_url, sinks=(learner,))
    learner.attach(stack.monitor.engine)
    async with stack.monitor:
        admin = await client(stack)
        clara = cody = None
        try:
            await admin.login(ADMIN, ADMIN_PASSWORD)
            await admin.post("/api/team/patients", {"id": pid})
            clara = await invited(admin, stack, "clara", "clinician")
            cody = await invited(admin, stack, "cody", "caregiver")
            for login in ("clara", "cody"):
                await admin.post("/api/team/assignments", {"login": login, "patient": pid})
            for k, rise in enumerate(ONSETS):
                await session_with_symptoms(stack.monitor, pid, start=t0 + k * day, rise_c=rise)
            async with asyncio.timeout(30):
                while learner.counters.get("reports_stored", 0) < len(ONSETS):
                    learner.stored.clear()
                    await learner.stored.wait()
            (suggestion,) = learner.store.suggestions(pid)
            accept = f"/api/patients/{pid}/suggestions/{suggestion.id}/accept"
            status, body = await cody.post(accept)
            assert status == 403 and "clinician" in body["error"]
            status, body = await clara.post(accept)
            assert status == 200, body
            record = (await admin.get(f"/api/team/patients/{pid}"))[1]
            assert record["profile"]["threshold_rise_c"] == suggestion.suggested_c
            engine_profile = stack.monitor.engine.profile(pid)
            assert engine_profile is not None
            assert engine_profile.threshold_rise_c == suggestion.suggested_c
            actions = [(e["actor"], e["action"], e["outcome"]) for e in record["audit"]]
            assert ("clara", "threshold.accept_suggestion", "ok") in actions
            assert ("cody", "threshold.decide", "refused") in actions
        finally:
            for c in (admin, clara, cody):
                if c is not None:
                    await c.http.close()


@pytest.mark.slow
async def test_archiving_a_patient_hides_them_and_ends_their_links(team: TeamStack) -> None:
    admin = await client(team)
    clara = phone = None
    try:
        await admin.login(ADMIN, ADMIN_PASSWORD)
        await admin.post("/api/team/patients", {"id": NEW, "display_name": "Nina"})
        clara = await invited(admin, team, "clara", "clinician")
        await admin.post("/api/team/assignments", {"login": "clara", "patient": NEW})
        _, link = await admin.post(f"/api/team/patients/{NEW}/links")
        phone = await client(team)
        async with phone.http.get(link["url"].split(team.base_url, 1)[1]) as resp:
            assert resp.status == 200
        assert (await clara.get("/api/session"))[1]["patients"] == [NEW]
        # Only an admin archives (the refusal is logged), and only the version they saw.
        status, _ = await clara.post(f"/api/team/patients/{NEW}/archive", {"version": 1})
        assert status == 403
        status, body = await admin.post(
            f"/api/team/patients/{NEW}/archive", {"version": 1, "archived": True}
        )
        assert status == 200 and body["archived"] is True and body["version"] == 2
        assert (await clara.get("/api/session"))[1]["patients"] == []
        assert (await phone.get(f"/api/patients/{NEW}"))[0] == 401
        _, listed = await admin.get("/api/team/patients")
        assert [(p["id"], p["archived"]) for p in listed["patients"]] == [(NEW, True)]
        status, _ = await admin.post(
            f"/api/team/patients/{NEW}/archive", {"version": 2, "archived": False}
        )
        assert status == 200
        assert (await clara.get("/api/session"))[1]["patients"] == [NEW]
        _, record = await admin.get(f"/api/team/patients/{NEW}")
        actions = [(e["actor"], e["action"], e["outcome"]) for e in record["audit"]]
        assert actions[:3] == [
            ("ada", "patient.restore", "ok"),
            ("ada", "patient.archive", "ok"),
            ("clara", "patient.archive", "refused"),
        ]
    finally:
        for c in (admin, clara, phone):
            if c is not None:
                await c.http.close()
