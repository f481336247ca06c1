"""Refused reads on the care-team pages are audited without letting a caregiver's session
fill the audit table: one entry a caregiver and route a window, with the count; refused
writes are each written."""

from __future__ import annotations

import asyncio

import pytest

from monitor.careteam.store import CareStore
from monitor.profile import PatientProfile
from monitor.web import teamguard
from tests.careteam_helpers import NEW, build_team_stack, seed_admin
from tests.passwords import seeded_hash
from tests.test_careteam_thresholds import Client

pytestmark = pytest.mark.timeout(60)

CODY_PASSWORD = "cody's long passphrase"
WINDOW_S = 3.0
"""Long enough for the 33 requests below to fall in one window on a loaded machine."""


def seed(url: str) -> None:
    """NEW and p-other in the store; cody a caregiver of p-other only."""
    seed_admin(url)
    with CareStore(url=url) as store:
        store.add_patient(PatientProfile(id=NEW), by="setup")
        store.add_patient(PatientProfile(id="p-other"), by="setup")
        store.add_caregiver(
            "cody", "caregiver", by="setup", password_hash=seeded_hash(CODY_PASSWORD)
        )
        store.assign("cody", "p-other", by="setup")


async def refused_of(admin: Client) -> list[dict[str, object]]:
    status, body = await admin.get("/api/team/audit?limit=500")
    assert status == 200, body
    entries = body["entries"]
    assert isinstance(entries, list)
    return [e for e in entries if e["outcome"] == "refused" and e["actor"] == "cody"]


@pytest.mark.slow
async def test_refused_reads_are_written_once_a_window_with_their_count(
    careteam_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 refused reads of NEW's record by cody: one entry at once, one with the other 29
    when the window ends (before: 30 entries); three refused edits: three entries."""
    monkeypatch.setattr(teamguard, "READ_REFUSALS_WINDOW_S", WINDOW_S)
    await asyncio.to_thread(seed, careteam_url)
    stack = build_team_stack(careteam_url)
    async with stack.monitor:
        admin, cody = Client(stack), Client(stack)
        try:
            await admin.log_in_as_admin()
            status, body = await cody.post(
                "/api/login", {"login": "cody", "password": CODY_PASSWORD}
            )
            assert status == 200, body
            for _ in range(30):
                status, body = await cody.get(f"/api/team/patients/{NEW}")
                assert status == 403, body
            for n in range(3):
                status, body = await cody.post(
                    f"/api/team/patients/{NEW}",
                    {"version": 1, "profile": {"threshold_rise_c": 0.4 + n / 100}},
                )
                assert status == 403, body
            status, body = await cody.get("/api/team/patients/p-other")
            assert status == 200, body  # a read cody may make is answered as ever
            refused = await refused_of(admin)
            reads = [e for e in refused if e["action"] == "patient.read"]
            writes = [e for e in refused if e["action"] == "threshold.change"]
            assert len(reads) == 1, reads
            assert len(writes) == 3, writes
            await asyncio.sleep(WINDOW_S * 2.5)
            reads = [e for e in await refused_of(admin) if e["action"] == "patient.read"]
            assert len(reads) == 2, reads
            counted = reads[0]  # newest first
            assert counted["after"] == {"count": 29}, counted
            assert counted["patient"] == NEW and "29 more refused" in str(counted["detail"])
            # quiet for a window: the next refused read is written at once again
            status, _ = await cody.get(f"/api/team/patients/{NEW}")
            assert status == 403
            reads = [e for e in await refused_of(admin) if e["action"] == "patient.read"]
            assert len(reads) == 3, reads
            assert reads[0]["after"] is None
        finally:
            await admin.http.close()
            await cody.http.close()


async def test_refused_reads_still_counted_at_shutdown_are_written(careteam_url: str) -> None:
    """The default window (a minute) is still open when the service stops: the count of
    the refused reads in it is written then, not lost."""
    await asyncio.to_thread(seed, careteam_url)
    stack = build_team_stack(careteam_url)
    async with stack.monitor:
        cody = Client(stack)
        try:
            status, body = await cody.post(
                "/api/login", {"login": "cody", "password": CODY_PASSWORD}
            )
            assert status == 200, body
            for _ in range(5):
                status, body = await cody.get(f"/api/team/patients/{NEW}")
                assert status == 403, body
        finally:
            await cody.http.close()
    with CareStore(url=careteam_url) as store:
        entries = store.audit(limit=100)
    reads = [e for e in entries if e.actor == "cody" and e.action == "patient.read"]
    assert [e.after for e in reads] == [{"count": 4}, None], reads


async def test_a_refused_patient_add_keeps_an_id_that_is_no_pseudonym_out_of_the_audit(
    careteam_url: str,
) -> None:
    """A caregiver (no admin) adds a patient typing the name as its id: the refusal was
    written to the append-only audit log with the subject "patient:Hans Mueller 1950", a
    raw id kept for ever where only pseudonyms belong. The refusal is still written; its
    subject says the id was no pseudonym instead of repeating it."""
    await asyncio.to_thread(seed, careteam_url)
    stack = build_team_stack(careteam_url)
    async with stack.monitor:
        admin, cody = Client(stack), Client(stack)
        try:
            await admin.log_in_as_admin()
            status, body = await cody.post(
                "/api/login", {"login": "cody", "password": CODY_PASSWORD}
            )
            assert status == 200, body
            for pid in ("Hans Mueller 1950", "p-fine"):
                status, body = await cody.post("/api/team/patients", {"id": pid})
                assert status == 403, body
            refused = [e for e in await refused_of(admin) if e["action"] == "patient.add"]
            assert len(refused) == 2, refused
            assert "Mueller" not in str(refused), refused
            assert any("p-fine" in str(e["subject"]) for e in refused), refused
        finally:
            await admin.http.close()
            await cody.http.close()
