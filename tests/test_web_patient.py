"""The patient page reaches a person who is not looking, in real headless Chromium, fed by
the real engine and service with a simulated patient, storing into a real ``influxd``:
sound, vibration and speech on ``cool_down``, repeated until "I'm cooling down" is tapped
(the acknowledgement reaches the caregiver's page and InfluxDB), one gentle cue on
``caution``, the wake lock, a notification while hidden; and the "not watching" warning
when the context goes offline or the server stops, within the documented time.

The APIs that make sound, vibrate, speak, hold the screen and notify are instrumented in
the page (``tests/web_instrument.py``): each call is recorded and passed on to Chromium.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from monitor.model import Acknowledgement, Level, Sample, SampleKind
from monitor.storage.options import InfluxOptions
from monitor.storage.sink import InfluxSink
from monitor.web.demo import DemoUser
from monitor.web.patient_routes import PATIENT_ACK_BY
from tests.fixtures.influxdb import InfluxDatabase
from tests.fixtures.web import WebStack, build_web_stack
from tests.patient_page import axe, instrument_script, played, rec, tones, until

LIVE_TIMEOUT_MS = 30_000
PROMPT_REPEAT_S = 1.0
"""The page's cool_down repeat, shortened from its 30 s for the test."""
NOT_WATCHING_WITHIN_S = 15.0
"""docs/dashboards.md: the page says heatmon is not watching within 15 s."""
NURSE = DemoUser("nina", "a fourth long passphrase", ("p-hot",))
SAM = DemoUser("sam", "a fifth long passphrase", ("p-cool", "p-strap"))
DOCS = Path(__file__).resolve().parents[1] / "docs" / "dashboards.md"


async def open_phone(context: BrowserContext, stack: WebStack, patient: str) -> Page:
    phone = await context.new_page()
    await phone.goto(stack.sink.patient_url(patient))
    await expect(phone).to_have_url(f"{stack.base_url}/patient/{patient}")
    await expect(phone.locator("footer")).to_contain_text("not a medical device")
    sound = phone.locator("#sound-state")
    await expect(sound).to_have_text("Tap anywhere to turn on sound and spoken prompts.")
    # The first tap unlocks sound and speech (autoplay rules), and the page says so.
    await phone.locator("#message").click()
    await expect(sound).to_have_text("Sound and spoken prompts are on.")
    return phone


async def log_in(context: BrowserContext, stack: WebStack, user: DemoUser) -> Page:
    page = await context.new_page()
    await page.goto(f"{stack.base_url}/login")
    await page.fill("#login", user.login)
    await page.fill("#password", user.password)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/caregiver$"))
    return page


async def stored_acks(db: InfluxDatabase, event_id: str) -> list[list[Any]]:
    for _ in range(100):
        series = await asyncio.to_thread(
            db.query, f"SELECT \"by\" FROM alert_acks WHERE event_id = '{event_id}'"
        )
        if series:
            values: list[list[Any]] = series[0]["values"]
            return values
        await asyncio.sleep(0.2)
    return []


@pytest.mark.slow
async def test_cool_down_prompts_until_the_patient_says_cooling_down(
    influx_db: InfluxDatabase, chromium: Browser, screenshots: Path, tmp_path: Path
) -> None:
    influx = InfluxSink(
        options=InfluxOptions(url=influx_db.url, database=influx_db.name, flush_interval_s=0.2),
        data_dir=tmp_path,
    )
    stack = build_web_stack(
        patients={"p-hot": ("Hanna", "hot_day_aerobic")}, users=(NURSE,), sinks=(influx,)
    )
    async with stack.monitor:
        phone_ctx = await chromium.new_context(
            viewport={"width": 412, "height": 860}, permissions=["notifications"]
        )
        await phone_ctx.add_init_script(instrument_script({"promptRepeatS": PROMPT_REPEAT_S}))
        phone = await open_phone(phone_ctx, stack, "p-hot")
        carer_ctx = await chromium.new_context(viewport={"width": 1280, "height": 800})
        await carer_ctx.add_init_script(instrument_script())
        carer = await log_in(carer_ctx, stack, NURSE)
        # The caregiver turns on the sound for new cool-downs (the click unlocks audio).
        await carer.click("#sound")
        await expect(carer.locator("#sound")).to_have_attribute("aria-pressed", "true")

        # A session is live: the page asks to keep the screen on.
        await until(phone, "window.__rec.wakeLock.length > 0")
        await until(phone, "window.__rec.wakeLock[0].result !== 'pending'")
        # Asked once for the screen, not again with every update.
        assert [w["type"] for w in await rec(phone, "wakeLock")] == ["screen"]
        # The service worker that shows notifications in the background is running.
        scope = await phone.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
        assert scope == f"{stack.base_url}/"
        # Chromium itself finds the page installable (manifest, icons, worker).
        cdp = await phone_ctx.new_cdp_session(phone)
        manifest = await cdp.send("Page.getAppManifest")
        assert manifest["url"] == f"{stack.base_url}/manifest.webmanifest"
        assert manifest["errors"] == []
        installable = await cdp.send("Page.getInstallabilityErrors")
        # The one objection is to the test's browser context (incognito), not to the app.
        ids = {e["errorId"] for e in installable["installabilityErrors"]}
        assert ids <= {"in-incognito"}, ids

        # Getting warm: one gentle cue (a soft note, a short buzz, one spoken line).
        await expect(phone.locator("body")).to_have_attribute(
            "data-phase", "caution", timeout=LIVE_TIMEOUT_MS
        )
        caution = await tones(phone, "caution")
        await until(phone, "window.__rec.speak.length >= 1")
        assert played(await rec(phone, "tones"), caution)
        assert [v["pattern"] for v in await rec(phone, "vibrate")] == [[250]]
        assert [s["text"] for s in await rec(phone, "speak")] == [
            "Getting warm. Ease off: lower the intensity for a few minutes."
        ]

        # The phone goes into a pocket: cool_down arrives while the page is hidden.
        await phone.evaluate("window.__setHidden(true)")
        alert = await asyncio.wait_for(
            stack.recorder.wait_for_event("p-hot", Level.COOL_DOWN), LIVE_TIMEOUT_MS / 1000
        )
        await until(phone, "window.__rec.notifications.some(n => n.title === 'Cool down now')")
        shown = await phone.evaluate(
            "navigator.serviceWorker.ready.then(r => r.getNotifications())"
            ".then(ns => ns.map(n => [n.title, n.body]))"
        )
        assert ["Cool down now", alert.advice[0]] in shown
        await phone.evaluate("window.__setHidden(false)")

        # Sound, vibration and the spoken advice, repeated while nobody answers.
        status = phone.locator("#status")
        await expect(status).to_have_text("Cool down now")
        await expect(phone.locator("#announce")).to_contain_text("Cool down now.")
        await until(phone, "Number(document.body.dataset.prompts) >= 3")
        cool = await tones(phone, "cool_down")
        tone_log = await rec(phone, "tones")
        assert played(tone_log, cool)
        assert sum(round(t["f"], 2) == round(cool[0], 2) for t in tone_log) >= 2 * 3
        prompts = [s for s in await rec(phone, "speak") if s["text"].startswith("Cool down now")]
        assert len(prompts) >= 3
        assert all(s["lang"] == "en" for s in prompts)
        assert alert.advice[0] in prompts[0]["text"] and alert.advice[1] in prompts[0]["text"]
        assert all(alert.advice[0] in s["text"] for s in prompts)
        buzzes = [v["pattern"] for v in await rec(phone, "vibrate")]
        assert buzzes.count([600, 250, 600, 250, 600]) >= 3
        await expect(phone.locator("#cooling")).to_be_visible()
        await expect(phone.locator("#announce")).to_have_attribute("aria-live", "assertive")
        await expect(phone.locator("h1")).to_have_text("Cool down now")
        assert await axe(phone) == [], "patient page, cool down"
        # 200 % zoom on a phone: half the CSS pixels. Nothing scrolls sideways; the prompt
        # and its button stay whole.
        await phone.set_viewport_size({"width": 206, "height": 430})
        overflow = await phone.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{overflow} px of sideways scrolling at 200 %"
        for selector in ("#status", "#cooling", "#advice", ".disclaimer"):
            box = await phone.locator(selector).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 206, selector
        # The answer is on the first screen, without scrolling.
        button = await phone.locator("#cooling").bounding_box()
        assert button is not None and button["y"] + button["height"] <= 430
        await phone.screenshot(path=str(screenshots / "patient-200-percent.png"), full_page=True)
        await phone.set_viewport_size({"width": 412, "height": 860})

        await phone.screenshot(path=str(screenshots / "patient-prompting.png"), full_page=True)

        # The caregiver sees the alert; the patient answers on the phone.
        banner = carer.locator(f'.banner[data-event="{alert.id}"]')
        await expect(banner).to_contain_text("Hanna: Cool down now")
        assert played(await rec(carer, "tones"), cool)
        assert [s["text"] for s in await rec(carer, "speak")] == ["Hanna: cool down now."]
        await phone.click("#cooling")
        await expect(phone.locator("#cooling-noted")).to_contain_text(
            "your caregiver can see you are cooling down"
        )
        await expect(phone.locator("#cooling")).to_be_hidden()
        count = len(await rec(phone, "speak"))
        await asyncio.sleep(PROMPT_REPEAT_S * 3)
        assert len(await rec(phone, "speak")) == count, "prompts stop once answered"

        # ... which reaches the caregiver's page, the service's sinks and InfluxDB.
        await expect(banner).to_contain_text("Hanna: cooling down")
        await expect(banner).to_contain_text('tapped "I\'m cooling down" at')
        tile = carer.locator('.tile[data-patient="p-hot"]')
        await expect(tile.locator(".cooling")).to_contain_text("I'm cooling down")
        await carer.screenshot(path=str(screenshots / "caregiver-patient-cooling.png"))
        acks = [r for r in stack.recorder.records if isinstance(r, Acknowledgement)]
        assert [(a.patient, a.event_id, a.by) for a in acks] == [
            ("p-hot", alert.id, PATIENT_ACK_BY)
        ]
        rows = await stored_acks(influx_db, alert.id)
        assert [row[1] for row in rows] == [PATIENT_ACK_BY]

        # A reload neither prompts again nor forgets the answer; the caregiver's tile keeps it.
        await phone.reload()
        await expect(status).to_have_text("Cool down now")
        await expect(phone.locator("#cooling")).to_be_hidden()
        await carer.reload()
        await expect(tile.locator(".cooling")).to_contain_text("I'm cooling down")
        await expect(banner).to_have_count(0)

        # Only the patient's own link may answer for the patient; not another patient's.
        carer_post = await carer.evaluate(
            """async (id) => {
                const s = await (await fetch('/api/session')).json();
                const r = await fetch(`/api/patients/p-hot/alerts/${id}/patient-ack`,
                    {method: 'POST', headers: {'X-CSRF-Token': s.csrf}});
                return r.status;
            }""",
            alert.id,
        )
        assert carer_post == 403
        no_csrf = await phone.evaluate(
            """async (id) => (await fetch(`/api/patients/p-hot/alerts/${id}/patient-ack`,
                {method: 'POST'})).status""",
            alert.id,
        )
        assert no_csrf == 403
        await phone_ctx.close()
        await carer_ctx.close()


async def stop_server(stack: WebStack) -> int:
    port = stack.sink.port
    await stack.sink.stop()
    return port


async def start_server(stack: WebStack, port: int) -> None:
    """The same server (same sessions) back on the same port."""
    stack.sink.config = stack.sink.config.model_copy(update={"port": port})
    await stack.sink.start()


@pytest.mark.slow
async def test_not_watching_when_offline_or_the_server_stops(
    chromium: Browser, screenshots: Path
) -> None:
    documented = DOCS.read_text(encoding="utf-8")
    assert f"within {NOT_WATCHING_WITHIN_S:.0f} s" in documented
    stack = build_web_stack(
        patients={"p-cool": ("Carl", "cool_gym_strength")},
        unsimulated={"p-strap": "Stina"},
        users=(SAM,),
    )
    async with stack.monitor:
        # The page's own timings, as documented: nothing shortened.
        phone_ctx = await chromium.new_context(viewport={"width": 412, "height": 860})
        await phone_ctx.add_init_script(instrument_script())
        phone = await open_phone(phone_ctx, stack, "p-cool")
        await expect(phone.locator("#status")).to_have_text("You're fine", timeout=LIVE_TIMEOUT_MS)
        carer_ctx = await chromium.new_context(viewport={"width": 1280, "height": 800})
        carer = await log_in(carer_ctx, stack, SAM)
        tile = carer.locator('.tile[data-patient="p-cool"]')
        await expect(tile).to_have_attribute("data-level", "ok", timeout=LIVE_TIMEOUT_MS)
        await expect(tile).to_have_attribute("data-watching", "yes")

        # Per patient: Stina's wearable sends for a minute of its time, then nothing.
        strap_ctx = await chromium.new_context(viewport={"width": 412, "height": 860})
        strap_phone = await strap_ctx.new_page()
        await strap_phone.goto(stack.sink.patient_url("p-strap"))
        await expect(strap_phone.locator("body")).to_have_attribute("data-phase", "waiting")
        strap = carer.locator('.tile[data-patient="p-strap"]')
        for _ in range(20):
            t = stack.clock()
            await stack.monitor.ingest(Sample("p-strap", SampleKind.HEART_RATE, 95.0, t, "hr", "t"))
            await asyncio.sleep(0.05)  # 3 s of sample time at 60x
        await expect(strap.locator(".watch")).to_have_text(
            "Not watching: no fresh readings from the sensor", timeout=LIVE_TIMEOUT_MS
        )
        await expect(strap).to_have_attribute("data-watching", "no")
        await expect(strap_phone.locator("#watch")).to_contain_text(
            "heatmon cannot see your readings — stop if you feel warm"
        )
        await expect(strap_phone.locator("#watch")).to_contain_text(
            "No new readings are arriving from your sensor."
        )
        await strap_ctx.close()
        await expect(tile).to_have_attribute("data-watching", "yes")
        await expect(tile.locator(".watch")).to_be_hidden()

        watch = phone.locator("#watch")
        await expect(watch).to_be_hidden()
        not_watching = await tones(phone, "not_watching")

        # Gym Wi-Fi drops: the phone says so, in words and with a sound.
        await phone_ctx.set_offline(True)
        start = time.monotonic()
        await expect(watch).to_contain_text(
            "heatmon cannot see your readings — stop if you feel warm",
            timeout=NOT_WATCHING_WITHIN_S * 1000,
        )
        offline_s = time.monotonic() - start
        await expect(phone.locator("body")).to_have_attribute("data-watching", "no")
        # The last level stays, marked as what heatmon knew before it lost the readings.
        await expect(phone.locator("#last-known")).to_be_visible()
        await expect(phone.locator("#status")).to_have_text("You're fine")
        assert played(await rec(phone, "tones"), not_watching)
        assert await axe(phone) == [], "patient page, not watching"
        assert any("cannot see your readings" in s["text"] for s in await rec(phone, "speak"))
        await phone.screenshot(path=str(screenshots / "patient-not-watching.png"), full_page=True)
        # Reopened without a network, the page comes from the service worker and says the same.
        reopened = await phone_ctx.new_page()
        await reopened.goto(f"{stack.base_url}/patient/p-cool")
        await expect(reopened.locator("h1")).to_have_text(
            "heatmon cannot see your readings — stop if you feel warm."
        )
        await expect(reopened.locator("footer")).to_contain_text("not a medical device")
        await reopened.close()
        await phone_ctx.set_offline(False)
        await expect(watch).to_have_text(
            "heatmon can see your readings again.", timeout=NOT_WATCHING_WITHIN_S * 1000
        )
        await expect(phone.locator("body")).to_have_attribute("data-watching", "yes")
        await expect(phone.locator("#last-known")).to_be_hidden()

        # Quiet mode (a shared room): no sound, no speech; the phone still vibrates. It is
        # remembered across a reload.
        await phone.click("#quiet")
        await phone.reload()
        await phone.locator("#message").click()
        await expect(phone.locator("#quiet")).to_have_attribute("aria-pressed", "true")
        await expect(phone.locator("#sound-state")).to_contain_text("Quiet mode")
        await expect(phone.locator("#status")).to_have_text("You're fine")

        # heatmon's server stops: both pages say so; it comes back: both say it is watching.
        port = await stop_server(stack)
        start = time.monotonic()
        await expect(watch).to_contain_text(
            "heatmon cannot see your readings", timeout=NOT_WATCHING_WITHIN_S * 1000
        )
        stopped_s = time.monotonic() - start
        await until(phone, "window.__rec.vibrate.length > 0")
        assert [v["pattern"] for v in await rec(phone, "vibrate")] == [
            [300, 150, 300, 150, 300, 150, 300]
        ]
        assert await rec(phone, "tones") == [] and await rec(phone, "speak") == []
        await expect(carer.locator("#watch-banner")).to_contain_text(
            "heatmon cannot see your patients' readings", timeout=NOT_WATCHING_WITHIN_S * 1000
        )
        await expect(tile).to_have_attribute("data-watching", "no")
        await expect(tile.locator(".watch")).to_have_text(
            "Not watching: the connection to heatmon is lost"
        )
        await carer.screenshot(path=str(screenshots / "caregiver-not-watching.png"))
        assert await axe(carer) == [], "caregiver page, not watching"
        await start_server(stack, port)
        await expect(watch).to_have_text(
            "heatmon can see your readings again.", timeout=NOT_WATCHING_WITHIN_S * 1000
        )
        await expect(carer.locator("#watch-banner")).to_have_text(
            "heatmon can see your patients' readings again.", timeout=NOT_WATCHING_WITHIN_S * 1000
        )
        await expect(tile).to_have_attribute("data-watching", "yes")
        await expect(phone.locator("#status")).to_have_text("You're fine")
        assert max(offline_s, stopped_s) <= NOT_WATCHING_WITHIN_S
        print(f"not watching after: offline {offline_s:.1f} s, server stop {stopped_s:.1f} s")
        await phone_ctx.close()
        await carer_ctx.close()
