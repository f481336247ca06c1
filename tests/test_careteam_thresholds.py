"""Personal thresholds with the care-team store (SQLite and a real PostgreSQL): whichever
way a person last set a threshold (accepting a suggestion on the dashboard, or a clinician
typing a new value), that value is what the engine uses, now and after a restart; a
suggestion the patient's profile no longer allows cannot be accepted; and a caregiver
disabled while their password is being checked gets no session."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from monitor.careteam.config import sqlite_file
from monitor.thresholds.learner import ThresholdLearner
from monitor.thresholds.records import Draft, StoredReport, new_id
from monitor.thresholds.store import ThresholdStore
from monitor.web.suggestions import find_learner
from tests.careteam_helpers import (
    ADMIN,
    ADMIN_PASSWORD,
    NEW,
    TeamStack,
    build_team_stack,
    seed_admin,
)
from tests.passwords import seeded_hash

pytestmark = pytest.mark.timeout(120)

SUGGESTED_C = 0.45
TYPED_C = 0.35
"""What the clinician types after accepting the suggestion (lower: more cautious)."""


class Client:
    def __init__(self, stack: TeamStack) -> None:
        self.http = aiohttp.ClientSession(
            base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )

    async def post(self, path: str, body: object = None) -> tuple[int, dict[str, object]]:
        async with self.http.get("/api/session") as resp:
            csrf = str((await resp.json())["csrf"])
        async with self.http.post(path, json=body or {}, headers={"X-CSRF-Token": csrf}) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str) -> tuple[int, dict[str, object]]:
        async with self.http.get(path) as resp:
            return resp.status, await resp.json()

    async def log_in_as_admin(self) -> None:
        status, body = await self.post("/api/login", {"login": ADMIN, "password": ADMIN_PASSWORD})
        assert status == 200, body

    async def add_new_patient(self, profile: dict[str, object] | None = None) -> None:
        """NEW in the care-team store (with ``profile``), assigned to the admin."""
        doc: dict[str, object] = {"id": NEW} if profile is None else {"id": NEW, "profile": profile}
        status, body = await self.post("/api/team/patients", doc)
        assert status == 201, body
        await self.post("/api/team/assignments", {"login": ADMIN, "patient": NEW})


def learner_for(url: str, poll_s: float = 5.0) -> ThresholdLearner:
    """The ``thresholds`` sink as ``heatmon run`` makes it with ``[careteam]``: its tables
    in the care team's database."""
    if url.startswith("postgresql"):
        return ThresholdLearner(path="unused.sqlite", url=url, profiles={}, poll_s=poll_s)
    path = sqlite_file(url)
    assert path is not None
    return ThresholdLearner(path=path, profiles={}, poll_s=poll_s)


def seed_suggestion(url: str, suggested_c: float = SUGGESTED_C) -> str:
    """A pending suggestion for NEW (what three sessions of reports give)."""
    path = sqlite_file(url)
    store = ThresholdStore(url=url) if path is None else ThresholdStore(path=path)
    with store:
        report = StoredReport(
            id=new_id(),
            patient=NEW,
            session=f"{NEW}-1",
            time=1_780_000_000.0,
            rise_c=0.4,
            rise_sd_c=0.05,
            threshold_c=0.5,
            received=1_780_000_000.0,
        )
        draft = Draft(
            current_c=0.5,
            suggested_c=suggested_c,
            onset_mean_c=0.5,
            onset_sd_c=0.05,
            prior_mean_c=0.5,
            n_reports=3,
            n_sessions=3,
            reason="test",
            evidence=(report.id,),
        )
        suggestion = store.add_report(report, suggest=lambda _reports, _personal: draft)
        assert suggestion is not None
        return suggestion.id


def stack_with_learner(url: str, poll_s: float = 5.0) -> TeamStack:
    learner = learner_for(url, poll_s)
    stack = build_team_stack(url, sinks=(learner,))  # [sinks.web] first, as in the sample
    learner.attach(stack.monitor.engine)
    return stack


def threshold_in_engine(stack: TeamStack) -> float:
    profile = stack.monitor.engine.profile(NEW)
    assert profile is not None
    return profile.threshold_rise_c


async def test_a_threshold_typed_after_an_accepted_suggestion_survives_a_restart(
    careteam_url: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(seed_admin, careteam_url)
    suggestion = await asyncio.to_thread(seed_suggestion, careteam_url)
    first = stack_with_learner(careteam_url)
    async with first.monitor:
        admin = Client(first)
        try:
            await admin.log_in_as_admin()
            await admin.add_new_patient()
            status, body = await admin.post(f"/api/patients/{NEW}/suggestions/{suggestion}/accept")
            assert status == 200, body
            assert threshold_in_engine(first) == SUGGESTED_C
            status, record = await admin.get(f"/api/team/patients/{NEW}")
            assert status == 200
            status, body = await admin.post(
                f"/api/team/patients/{NEW}",
                {"version": record["version"], "profile": {"threshold_rise_c": TYPED_C}},
            )
            assert status == 200, body
            assert threshold_in_engine(first) == TYPED_C
            status, view = await admin.get(f"/api/patients/{NEW}/thresholds")
            assert status == 200, view
            assert view["threshold_c"] == TYPED_C, view
        finally:
            await admin.http.close()
    second = stack_with_learner(careteam_url)
    async with second.monitor:
        await asyncio.sleep(0.3)  # both have applied what they hold at start
        assert threshold_in_engine(second) == TYPED_C


SLOW_HASH_TIME_COST = 60
"""argon2 passes of bob's hash: checking his password takes about a second (a strong hash
``heatmon admin import`` took over), time enough to disable him meanwhile."""


@pytest.mark.slow
async def test_a_caregiver_disabled_while_their_password_is_checked_gets_no_session(
    careteam_url: str,
) -> None:
    from monitor.careteam.store import CareStore

    await asyncio.to_thread(seed_admin, careteam_url)

    def add_bob() -> None:
        slow = seeded_hash("bob's long passphrase", time_cost=SLOW_HASH_TIME_COST)
        with CareStore(url=careteam_url) as store:
            store.add_caregiver("bob", "caregiver", by="setup", password_hash=slow)

    await asyncio.to_thread(add_bob)
    stack = build_team_stack(careteam_url)
    async with stack.monitor:
        admin, bob = Client(stack), Client(stack)
        try:
            await admin.log_in_as_admin()
            login = asyncio.create_task(
                bob.post("/api/login", {"login": "bob", "password": "bob's long passphrase"})
            )
            await asyncio.sleep(0.3)  # bob's password is being checked
            assert not login.done()
            status, body = await admin.post(
                "/api/team/caregivers/bob", {"version": 1, "disabled": True}
            )
            assert status == 200 and body["disabled"] is True, body
            status, body = await login
            assert status == 401, body
            status, body = await bob.get("/api/session")
            assert body["kind"] == "anonymous", body
        finally:
            await admin.http.close()
            await bob.http.close()


async def test_a_suggestion_below_the_patients_floor_now_cannot_be_accepted(
    careteam_url: str,
) -> None:
    """The care team set NEW's caution margin to 0.35 °C, so no threshold under 0.40 °C is
    valid for them; a suggestion of 0.32 °C (made against the default profile) was
    answered 200 "accepted" and recorded as the threshold in force, while the engine and
    the care-team store both refused it and went on with 0.5 °C."""
    await asyncio.to_thread(seed_admin, careteam_url)
    suggestion = await asyncio.to_thread(seed_suggestion, careteam_url, 0.32)
    stack = stack_with_learner(careteam_url)
    async with stack.monitor:
        admin = Client(stack)
        try:
            await admin.log_in_as_admin()
            await admin.add_new_patient({"caution_margin_c": 0.35})
            status, body = await admin.post(f"/api/patients/{NEW}/suggestions/{suggestion}/accept")
            assert status == 409, body
            assert "0.40" in str(body["error"]), body
            assert threshold_in_engine(stack) == 0.5
            status, view = await admin.get(f"/api/patients/{NEW}/thresholds")
            assert status == 200 and view["threshold_c"] == 0.5, view
            assert view["floor_c"] == 0.4, view
            status, body = await admin.post(f"/api/patients/{NEW}/suggestions/{suggestion}/reject")
            assert status == 200, body  # it can still be declined
        finally:
            await admin.http.close()


async def test_an_unrelated_edit_keeps_a_threshold_accepted_on_the_command_line(
    careteam_url: str,
) -> None:
    """``heatmon profile accept`` (another process) writes the thresholds store only; the
    running service applied it, but the next edit of anything in the patient's record
    (an admin correcting the age) gave the engine the record's old threshold again."""
    await asyncio.to_thread(seed_admin, careteam_url)
    suggestion = await asyncio.to_thread(seed_suggestion, careteam_url)
    stack = stack_with_learner(careteam_url, poll_s=0.1)
    async with stack.monitor:
        admin = Client(stack)
        try:
            await admin.log_in_as_admin()
            status, body = await admin.post("/api/team/patients", {"id": NEW})
            assert status == 201, body

            def accept_on_the_command_line() -> None:  # what `heatmon profile accept` does
                path = sqlite_file(careteam_url)
                store = (
                    ThresholdStore(url=careteam_url) if path is None else ThresholdStore(path=path)
                )
                with store:
                    store.decide(suggestion, patient=NEW, accept=True, by="dr-ng", at=time.time())

            learner = find_learner(stack.monitor)
            assert learner is not None
            await asyncio.to_thread(accept_on_the_command_line)
            for _ in range(100):  # the sink polls; it may first apply the new patient's row
                learner.applied.clear()
                if threshold_in_engine(stack) == SUGGESTED_C:
                    break
                await asyncio.wait_for(learner.applied.wait(), 10)
            assert threshold_in_engine(stack) == SUGGESTED_C
            status, body = await admin.post(
                f"/api/team/patients/{NEW}", {"version": 1, "profile": {"age": 61}}
            )
            assert status == 200, body
            profile = stack.monitor.engine.profile(NEW)
            assert profile is not None and profile.age == 61
            await asyncio.sleep(0.5)  # the thresholds sink polls too
            assert threshold_in_engine(stack) == SUGGESTED_C
        finally:
            await admin.http.close()


async def test_a_dashboard_accept_the_care_team_record_refuses_is_not_made(
    careteam_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision and the care team's record of it are one transaction (both stores share
    the database): when the record cannot take it (here another edit of the patient landed
    in between, injected), the accept is answered 409 and nothing changed — the suggestion
    is still pending, the engine keeps its threshold, the record its version. Before, the
    decision was committed first and the record's failure only logged: 200, a threshold in
    use that the care team's pages did not show."""
    from monitor.careteam import decisions
    from monitor.careteam.records import Conflict

    def edited_meanwhile(*_args: object, **_kwargs: object) -> None:
        raise Conflict(f"patient {NEW!r} was changed meanwhile; try again")

    await asyncio.to_thread(seed_admin, careteam_url)
    suggestion = await asyncio.to_thread(seed_suggestion, careteam_url)
    stack = stack_with_learner(careteam_url)
    async with stack.monitor:
        admin = Client(stack)
        try:
            await admin.log_in_as_admin()
            await admin.add_new_patient()
            status, before = await admin.get(f"/api/team/patients/{NEW}")
            assert status == 200, before
            monkeypatch.setattr(decisions, "record_decision", edited_meanwhile)
            status, body = await admin.post(f"/api/patients/{NEW}/suggestions/{suggestion}/accept")
            assert status == 409, body
            assert "changed meanwhile" in str(body["error"])
            assert threshold_in_engine(stack) == 0.5
            status, view = await admin.get(f"/api/patients/{NEW}/thresholds")
            assert status == 200, view
            assert view["threshold_c"] == 0.5, view
            changes = view["changes"]  # only the new patient's first threshold, by the admin
            assert isinstance(changes, list), view
            assert [(c["threshold_c"], c["suggestion"]) for c in changes] == [(0.5, None)], view
            listed = view["suggestions"]
            assert isinstance(listed, list), view
            pending = [s for s in listed if s["id"] == suggestion]
            assert pending and pending[0]["status"] == "pending", view
            status, after = await admin.get(f"/api/team/patients/{NEW}")
            assert after["version"] == before["version"], after
            monkeypatch.undo()
            status, body = await admin.post(f"/api/patients/{NEW}/suggestions/{suggestion}/accept")
            assert status == 200, body  # once the record can take it, the accept is made
            assert threshold_in_engine(stack) == SUGGESTED_C
            status, after = await admin.get(f"/api/team/patients/{NEW}")
            assert after["profile"]["threshold_rise_c"] == SUGGESTED_C, after  # type: ignore[index]
        finally:
            await admin.http.close()


async def test_a_patient_added_on_the_dashboard_with_a_threshold_has_it_recorded(
    careteam_url: str,
) -> None:
    """The admin's "add patient" with a threshold: the care team's view of the patient
    gives that threshold as the newest decision, by the admin (before: ``threshold`` was
    null, no ``threshold_changes`` row)."""
    await asyncio.to_thread(seed_admin, careteam_url)
    stack = build_team_stack(careteam_url)
    async with stack.monitor:
        admin = Client(stack)
        try:
            await admin.log_in_as_admin()
            await admin.add_new_patient({"threshold_rise_c": TYPED_C})
            status, record = await admin.get(f"/api/team/patients/{NEW}")
            assert status == 200, record
            decision = record["threshold"]
            assert isinstance(decision, dict), record
            assert decision["threshold_c"] == TYPED_C and decision["previous_c"] == 0.5
            assert decision["set_by"] == ADMIN and decision["suggestion"] is None
            assert decision["set_at"]
        finally:
            await admin.http.close()
