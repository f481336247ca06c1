"""The care team runs heatmon from the dashboard, end to end in real headless Chromium,
against SQLite and against a real PostgreSQL (``careteam_url``):

an admin adds a patient (whose wearable is already sending: the running engine learns them
without a restart), invites a clinician and a plain caregiver, assigns both, issues a
patient link (QR code) → the clinician sets her password from the invitation, sees only
that patient, lowers the threshold → the live tile shows it within a second and the
engine's level follows it; the plain caregiver's attempt is refused (403) and in the audit
log; the admin disables the clinician → her live stream ends at once; the revoked link no
longer opens the patient's page.

Screenshots: ``artifacts/screenshots/careteam-*.png``.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from monitor.model import Level
from tests.careteam_helpers import ADMIN, ADMIN_PASSWORD, NEW, build_team_stack, seed_admin
from tests.test_web_browser import LIVE_TIMEOUT_MS

CLARA_PASSWORD = "clara's long passphrase"
CODY_PASSWORD = "cody's long passphrase"


async def api(page: Page, method: str, path: str, body: Any = None) -> Any:
    """Call the API from inside the page, with its session's CSRF token."""
    return await page.evaluate(
        """async ([method, path, body]) => {
            const me = await (await fetch("/api/session")).json();
            const resp = await fetch(path, { method, headers: {
                "X-CSRF-Token": me.csrf, "Content-Type": "application/json" },
                body: body === null ? undefined : JSON.stringify(body) });
            return { status: resp.status, body: await resp.json().catch(() => null) };
        }""",
        [method, path, body],
    )


async def invite(page: Page, login: str, role: str) -> str:
    form = page.locator("#new-caregiver")
    await form.locator("input[name=login]").fill(login)
    await form.locator("select[name=role]").select_option(role)
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#invite-msg")).to_contain_text(f"Invited {login}")
    await expect(page.locator(f"#caregiver-row-{login}")).to_contain_text("invited")
    url = await page.locator("#invite-url").text_content()
    assert url is not None and "/invite#" in url
    return url


async def assign(page: Page, login: str, patient: str) -> None:
    form = page.locator("#assign")
    await form.locator("select[name=login]").select_option(login)
    await form.locator("select[name=patient]").select_option(patient)
    await form.locator("button[type=submit]").click()
    await expect(page.locator(f"#caregiver-row-{login}")).to_contain_text(patient)


async def accept_invitation(page: Page, url: str, password: str) -> None:
    await page.goto(url)
    await page.fill("#password", password)
    await page.fill("#again", password)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/caregiver$"))


@pytest.mark.slow
async def test_the_care_team_runs_heatmon_from_the_dashboard(
    chromium: Browser, careteam_url: str, screenshots: Path
) -> None:
    backend = "postgresql" if careteam_url.startswith("postgresql") else "sqlite"
    await asyncio.to_thread(seed_admin, careteam_url)
    stack = build_team_stack(careteam_url, speed=30.0)
    async with stack.monitor:
        engine = stack.monitor.engine
        assert engine.profile(NEW) is None  # the wearable sends; nobody knows the patient yet

        # -- the admin: a patient, two caregivers, who sees whom, a patient link ----------
        admin = await chromium.new_page(viewport={"width": 1280, "height": 1000})
        await admin.goto(f"{stack.base_url}/login")
        await admin.fill("#login", ADMIN)
        await admin.fill("#password", ADMIN_PASSWORD)
        await admin.click("button[type=submit]")
        await expect(admin).to_have_url(re.compile(r"/caregiver$"))
        await admin.goto(f"{stack.base_url}/team")
        await expect(admin.locator("#who")).to_have_text(f"{ADMIN} (admin)")
        form = admin.locator("#new-patient")
        await form.locator("input[name=id]").fill(NEW)
        await form.locator("input[name=display_name]").fill("Nina")
        await form.locator("button[type=submit]").click()
        await expect(admin.locator(f"#patient-row-{NEW}")).to_contain_text("Nina")
        # A duplicate pseudonym is refused, with the reason.
        await form.locator("input[name=id]").fill(NEW)
        await form.locator("button[type=submit]").click()
        await expect(admin.locator("#new-patient-msg")).to_contain_text("already taken")
        assert engine.profile(NEW) is not None  # the running engine learnt the patient

        clara_url = await invite(admin, "clara", "clinician")
        cody_url = await invite(admin, "cody", "caregiver")
        await assign(admin, "clara", NEW)
        await assign(admin, "cody", NEW)

        await admin.locator(f"#patient-row-{NEW} button").click()
        await admin.click("#issue-link")
        await expect(admin.locator("#link-qr")).to_have_attribute(
            "src", re.compile(r"^data:image/svg\+xml")
        )
        link = await admin.locator("#link-url").text_content()
        assert link is not None and f"/patient/{NEW}?token=" in link
        await admin.screenshot(path=str(screenshots / f"careteam-admin-{backend}.png"))

        # -- the clinician: her invitation, only her patient, a lower threshold -----------
        clara_browser = await chromium.new_context(viewport={"width": 1280, "height": 1000})
        clara = await clara_browser.new_page()
        await accept_invitation(clara, clara_url, CLARA_PASSWORD)
        tiles = clara.locator(".tile")
        await expect(tiles).to_have_count(1)
        tile = clara.locator(f'.tile[data-patient="{NEW}"]')
        await expect(tile.locator("dd.thr")).to_have_attribute(
            "data-value", "0.5", timeout=LIVE_TIMEOUT_MS
        )
        team = await clara_browser.new_page()  # her second tab
        await team.goto(f"{stack.base_url}/team?patient={NEW}")
        await expect(team.locator("#who")).to_have_text("clara (clinician)")
        await expect(team.locator("#patients tbody tr")).to_have_count(1)  # only hers
        await expect(team.locator("#new-patient")).to_be_hidden()  # admins only
        await expect(team.locator("#caregivers-section")).to_be_hidden()
        await team.fill("#profile input[name=threshold_rise_c]", "0.25")
        await team.fill("#profile input[name=caution_margin_c]", "0.1")
        await team.click("#save-profile")
        await expect(team.locator("#profile-msg")).to_contain_text("Saved")
        # The live tile follows within a second, and the running engine uses it.
        await expect(tile.locator("dd.thr")).to_have_attribute("data-value", "0.25", timeout=1000)
        profile = engine.profile(NEW)
        assert profile is not None and profile.threshold_rise_c == 0.25
        # The engine's level follows the new threshold: past it, the level is cool-down
        # (with the old 0.5 °C, a rise of 0.26–0.30 °C would be "caution" at most).
        async with asyncio.timeout(LIVE_TIMEOUT_MS / 1000):
            while True:
                state = engine.state(NEW)
                if (
                    state is not None
                    and state.threshold_rise_c == 0.25
                    and state.core_delta_c > 0.26
                ):
                    break
                await asyncio.sleep(0.05)
        assert state.level is Level.COOL_DOWN, state
        await expect(team.locator("#patient-audit")).to_contain_text("threshold.change")
        await team.screenshot(path=str(screenshots / f"careteam-clinician-{backend}.png"))

        # -- the plain caregiver: watches, cannot change a threshold ----------------------
        cody = await chromium.new_page()
        await accept_invitation(cody, cody_url, CODY_PASSWORD)
        await cody.goto(f"{stack.base_url}/team?patient={NEW}")
        await expect(cody.locator("#profile input[name=threshold_rise_c]")).to_be_disabled()
        detail = await api(cody, "GET", f"/api/team/patients/{NEW}")
        refused = await api(
            cody,
            "POST",
            f"/api/team/patients/{NEW}",
            {"version": detail["body"]["version"], "profile": {"threshold_rise_c": 0.9}},
        )
        assert refused["status"] == 403
        assert "clinician" in refused["body"]["error"]
        profile = engine.profile(NEW)
        assert profile is not None and profile.threshold_rise_c == 0.25
        await admin.goto(f"{stack.base_url}/team")
        row = admin.locator("#audit tr.refused").first
        await expect(row).to_contain_text("cody")
        await expect(row).to_contain_text("REFUSED threshold.change")

        # -- the admin disables the clinician: her live stream ends at once ---------------
        await expect(clara.locator("#conn")).to_have_attribute("data-state", "live")
        await admin.locator("#caregiver-row-clara button", has_text="Disable").click()
        await expect(admin.locator("#caregiver-row-clara")).to_contain_text("disabled")
        await expect(clara.locator("#conn")).to_have_attribute("data-state", "lost", timeout=1000)
        assert (await api(team, "GET", "/api/team/me"))["status"] == 401

        # -- the patient link: opens the page; once revoked, it does not -------------------
        phone = await chromium.new_page()
        await phone.goto(link)
        await expect(phone).to_have_url(re.compile(rf"/patient/{NEW}$"))
        await admin.locator(f"#patient-row-{NEW} button").click()
        await admin.locator("#links button", has_text="Revoke").click()
        await expect(admin.locator("#links")).to_contain_text("revoked")
        assert (await api(phone, "GET", f"/api/patients/{NEW}"))["status"] == 401
        fresh = await chromium.new_page()
        response = await fresh.goto(link)
        assert response is not None and response.status == 403
