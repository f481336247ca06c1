"""The dashboard in real headless Chromium, fed by the real engine with simulated patients.

Screenshots of every view are saved to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from monitor.model import Acknowledgement, Level, Sample, SampleKind, SymptomReport
from monitor.web.demo import DemoUser
from tests.fixtures.web import CAROL, DAVE, WebStack, build_web_stack

pytestmark = pytest.mark.slow

LIVE_TIMEOUT_MS = 30_000


async def log_in(page: Page, stack: WebStack, login: str, password: str) -> None:
    await page.goto(f"{stack.base_url}/caregiver")
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.fill("#login", login)
    await page.fill("#password", password)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/caregiver$"))


async def test_caregiver_sees_live_tiles_and_acknowledges_cool_down(
    web_stack: WebStack, chromium: Browser, screenshots: Path
) -> None:
    page = await chromium.new_page(viewport={"width": 1280, "height": 800})
    await log_in(page, web_stack, CAROL.login, CAROL.password)

    tiles = page.locator(".tile")
    await expect(tiles).to_have_count(2)
    await expect(page.locator('.tile[data-patient="p-other"]')).to_have_count(0)
    await expect(page.locator("#conn")).to_have_text("live")

    # Heart rate updates live: the time stamp of the shown reading moves on.
    hr = page.locator('.tile[data-patient="p-cool"] .hr')
    await expect(hr).to_have_attribute("data-time", re.compile(r"\d"), timeout=LIVE_TIMEOUT_MS)
    first = await hr.get_attribute("data-time")
    await expect(hr).not_to_have_attribute("data-time", first or "", timeout=LIVE_TIMEOUT_MS)
    await expect(hr).to_have_text(re.compile(r"^\d+ bpm$"))

    # The hot patient reaches cool_down: the tile says so, a banner appears, the tile leads.
    hot = page.locator('.tile[data-patient="p-hot"]')
    await expect(hot).to_have_attribute("data-level", "cool_down", timeout=LIVE_TIMEOUT_MS)
    banner = page.locator('.banner[data-patient="p-hot"]')
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("Hanna: Cool down now")
    await expect(hot.locator(".rise")).to_have_text(re.compile(r"^\+0\.\d\d °C ±0\.\d\d$"))
    await expect(hot.locator(".chip")).to_have_text("Cool down now")
    # The banner tells the wall-clock time it came (the samples' clock runs 60× faster).
    since = await banner.locator(".ago").get_attribute("data-since")
    assert since is not None
    assert abs(await page.evaluate("Date.now() / 1000") - float(since)) < 30
    await expect(banner.locator(".ago")).to_have_text("(just now)")
    hot_box = await hot.bounding_box()
    cool_box = await page.locator('.tile[data-patient="p-cool"]').bounding_box()
    assert hot_box is not None and cool_box is not None
    assert (hot_box["y"], hot_box["x"]) < (cool_box["y"], cool_box["x"]), "alerting tile first"
    # The sparkline is a uPlot chart with the 30-minute history in it.
    await expect(hot.locator(".spark .uplot canvas")).to_have_count(1)
    await page.screenshot(path=str(screenshots / "caregiver-cool-down.png"), full_page=True)

    # The banner stays across a reload until it is acknowledged.
    await page.reload()
    await expect(page.locator('.banner[data-patient="p-hot"]')).to_be_visible()
    event_id = await page.locator('.banner[data-patient="p-hot"]').first.get_attribute("data-event")
    await page.locator('.banner[data-patient="p-hot"] button.ack').first.click()
    await expect(page.locator(f'.banner[data-event="{event_id}"]')).to_have_count(0)

    acks = [r for r in web_stack.recorder.records if isinstance(r, Acknowledgement)]
    assert [(a.patient, a.event_id, a.by) for a in acks] == [("p-hot", event_id, "carol")]
    assert event_id not in {e.id for e in web_stack.monitor.open_alerts("p-hot")}
    await page.reload()
    await expect(page.locator(".tile")).to_have_count(2)
    await expect(page.locator(f'.banner[data-event="{event_id}"]')).to_have_count(0)
    await page.screenshot(path=str(screenshots / "caregiver-acknowledged.png"), full_page=True)


async def test_patient_view_shows_level_and_takes_symptom_reports(
    web_stack: WebStack, chromium: Browser, screenshots: Path
) -> None:
    page = await chromium.new_page(viewport={"width": 412, "height": 860})
    await page.goto(web_stack.patient_links["p-hot"])
    # The token leaves the address bar; the session cookie keeps access.
    await expect(page).to_have_url(f"{web_stack.base_url}/patient/p-hot")
    status = page.locator("#status")
    await expect(status).to_have_text(re.compile("You're fine|Getting warm|Cool down now"))
    await expect(page.locator("footer")).to_contain_text("not a medical device")
    await page.screenshot(path=str(screenshots / "patient-early.png"), full_page=True)

    await expect(status).to_have_text("Cool down now", timeout=LIVE_TIMEOUT_MS)
    await expect(page.locator("body")).to_have_attribute("data-level", "cool_down")
    await expect(page.locator("#advice li").first).to_contain_text("Stop the exercise")
    await expect(page.locator("#recovery")).to_be_visible()
    await page.screenshot(path=str(screenshots / "patient-cool-down.png"), full_page=True)

    await page.click("#symptoms")
    await expect(page.locator("#noted")).to_contain_text("Your caregiver can see it")
    reports = [r for r in web_stack.recorder.records if isinstance(r, SymptomReport)]
    assert [r.patient for r in reports] == ["p-hot"]
    assert reports[0].core_delta_c is not None and reports[0].core_delta_c > 0.2
    await page.screenshot(path=str(screenshots / "patient-symptoms.png"), full_page=True)

    # The patient's link opens this patient only.
    resp = await page.goto(f"{web_stack.base_url}/patient/p-cool")
    assert resp is not None and resp.status == 403
    resp = await page.goto(f"{web_stack.base_url}/api/patients/p-cool")
    assert resp is not None and resp.status == 403


async def test_patient_recovery_countdown_after_cool_down(
    chromium: Browser, screenshots: Path
) -> None:
    # A heat-sensitive patient who stops and cools down when told to; a faster clock.
    stack = build_web_stack(
        patients={"p-warm": ("Wim", "heat_sensitive")},
        users=(DemoUser("wendy", "a third long passphrase", ("p-warm",)),),
        speed=150.0,
        heed_cool_down=True,
    )
    async with stack.monitor:
        page = await chromium.new_page(viewport={"width": 412, "height": 860})
        await page.goto(stack.sink.patient_url("p-warm"))
        await expect(page.locator("#status")).to_have_text("Cool down now", timeout=LIVE_TIMEOUT_MS)
        countdown = page.locator("#recovery")
        await expect(countdown).to_have_text(
            re.compile(r"Back to baseline in about \d+:\d\d"), timeout=LIVE_TIMEOUT_MS
        )
        await expect(page.locator("#message")).to_have_text(re.compile("Cooling down"))
        await page.screenshot(path=str(screenshots / "patient-recovery.png"), full_page=True)
        await expect(countdown).to_have_text("You're back to baseline.", timeout=LIVE_TIMEOUT_MS)
        await expect(page.locator("#status")).to_have_text("You're fine")
        await page.screenshot(path=str(screenshots / "patient-recovered.png"), full_page=True)


async def test_user_without_access_sees_no_data(
    web_stack: WebStack, chromium: Browser, screenshots: Path
) -> None:
    context = await chromium.new_context()
    page = await context.new_page()
    # Not logged in: pages send to the login, the API and the stream refuse.
    for path in ("/api/patients", "/api/patients/p-hot", "/api/events"):
        resp = await page.goto(f"{web_stack.base_url}{path}")
        assert resp is not None and resp.status == 401, path
        assert "p-hot" not in await page.content()
    resp = await page.goto(f"{web_stack.base_url}/patient/p-hot")
    assert resp is not None and resp.status == 403
    resp = await page.goto(f"{web_stack.base_url}/patient/p-hot?token=not-the-token")
    assert resp is not None and resp.status == 403

    # Dave is assigned p-other only: he sees its tile and nothing of Carol's patients,
    # even while p-hot is alerting.
    await log_in(page, web_stack, DAVE.login, DAVE.password)
    await expect(page.locator('.tile[data-patient="p-other"]')).to_have_count(1)
    await expect(page.locator(".tile")).to_have_count(1)
    await asyncio.wait_for(
        web_stack.recorder.wait_for_event("p-hot", Level.COOL_DOWN), LIVE_TIMEOUT_MS / 1000
    )
    await expect(page.locator('.tile[data-patient="p-other"] .hr')).to_have_attribute(
        "data-time", re.compile(r"\d"), timeout=LIVE_TIMEOUT_MS
    )
    assert await page.locator(".banner").count() == 0
    html = await page.content()
    assert "p-hot" not in html and "Hanna" not in html
    await page.screenshot(path=str(screenshots / "caregiver-other-user.png"), full_page=True)
    resp = await page.goto(f"{web_stack.base_url}/api/patients/p-hot")
    assert resp is not None and resp.status == 403
    await context.close()


async def test_data_quality_badges_show_when_readings_stop_or_the_strap_is_off(
    chromium: Browser, screenshots: Path
) -> None:
    """A wearable the test drives itself: readings, then none (stale), then a strap with no
    skin contact (zeros): the tile and the patient's page say so."""
    stack = build_web_stack(
        patients={"p-cool": ("Carl", "cool_gym_strength")},
        unsimulated={"p-strap": "Stina"},
        users=(DemoUser("sam", "a fifth long passphrase", ("p-cool", "p-strap")),),
    )

    async def feed(hr: float, count: int) -> None:
        for _ in range(count):
            t = stack.clock()
            await stack.monitor.ingest(Sample("p-strap", SampleKind.HEART_RATE, hr, t, "hr", "t"))
            await asyncio.sleep(0.05)  # 3 s of sample time at 60×

    async with stack.monitor:
        page = await chromium.new_page(viewport={"width": 1280, "height": 800})
        await log_in(page, stack, "sam", "a fifth long passphrase")
        phone = await chromium.new_page(viewport={"width": 412, "height": 860})
        await phone.goto(stack.sink.patient_url("p-strap"))
        tile = page.locator('.tile[data-patient="p-strap"]')
        await feed(95.0, 20)
        await expect(tile).to_have_attribute("data-quality", "good", timeout=LIVE_TIMEOUT_MS)
        await expect(tile.locator(".badge.warn")).to_have_count(0)
        await expect(phone.locator("#quality")).to_be_hidden()

        # No readings for more than 30 s of sample time: stale.
        await expect(tile).to_have_attribute("data-quality", "stale", timeout=LIVE_TIMEOUT_MS)
        await expect(tile.locator(".badge.warn")).to_have_text(["data stale"])
        await expect(phone.locator("#quality")).to_contain_text("No new readings")
        await page.screenshot(path=str(screenshots / "caregiver-stale.png"), full_page=True)
        await phone.screenshot(path=str(screenshots / "patient-stale.png"), full_page=True)

        # The strap loses skin contact: zeros are rejected, counted, and the sensor is off.
        await feed(0.0, 4)
        await expect(tile).to_have_attribute("data-quality", "sensor_off", timeout=LIVE_TIMEOUT_MS)
        await expect(tile.locator(".badge.warn").first).to_have_text("sensor off")
        await expect(tile.locator(".badges")).to_contain_text(re.compile(r"strap off skin ×\d"))
        await expect(phone.locator("#quality")).to_contain_text("no skin contact")
        await page.screenshot(path=str(screenshots / "caregiver-sensor-off.png"), full_page=True)
