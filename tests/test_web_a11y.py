"""Accessibility of every page, checked with axe-core (npm, installed by scripts/setup.sh)
in real headless Chromium against the live service: no serious or critical violation on the
login, caregiver, history (a session stored in a real ``influxd``) and patient pages. The
patient page also reflows at 200 % zoom, announces its phases to screen readers, stops
prompting when the level drops, and shows one consistent message per phase, after a
reload too (issue 10: it could show "You're fine", "Nearly there…" and "You're back to
baseline" at once)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from monitor.model import Level
from monitor.storage.options import InfluxOptions
from monitor.storage.sink import InfluxSink
from monitor.web.config import HistoryConfig
from monitor.web.demo import DemoUser
from tests.fixtures.influxdb import InfluxDatabase
from tests.fixtures.web import build_web_stack
from tests.patient_page import AXE, axe, instrument_script, played, rec, tones, until

TIMEOUT_MS = 30_000
WENDY = DemoUser("wendy", "a third long passphrase", ("p-warm",))


@pytest.mark.slow
async def test_every_page_passes_axe_and_the_patient_page_stays_consistent(
    influx_db: InfluxDatabase, chromium: Browser, screenshots: Path, tmp_path: Path
) -> None:
    assert (AXE / "package.json").exists(), "axe-core missing: run scripts/setup.sh (npm ci)"
    version = await asyncio.to_thread((AXE / "package.json").read_text, encoding="utf-8")
    assert re.search(r'"version": "4\.', version)
    influx = InfluxSink(
        options=InfluxOptions(url=influx_db.url, database=influx_db.name, flush_interval_s=0.2),
        data_dir=tmp_path,
    )
    # A heat-sensitive patient who stops and cools down when told to, on a fast clock.
    stack = build_web_stack(
        patients={"p-warm": ("Wim", "heat_sensitive")},
        users=(WENDY,),
        speed=150.0,
        heed_cool_down=True,
        history=HistoryConfig(url=influx_db.url, database=influx_db.name),
        sinks=(influx,),
    )
    async with stack.monitor:
        carer = await chromium.new_page(viewport={"width": 1280, "height": 800})
        await carer.goto(f"{stack.base_url}/login")
        assert await axe(carer) == [], "login page"
        await carer.fill("#login", WENDY.login)
        await carer.fill("#password", WENDY.password)
        await carer.click("button[type=submit]")
        await expect(carer).to_have_url(re.compile(r"/caregiver$"))

        phone_ctx = await chromium.new_context(viewport={"width": 412, "height": 860})
        await phone_ctx.add_init_script(instrument_script({"promptRepeatS": 1.0}))
        phone = await phone_ctx.new_page()
        await phone.goto(stack.sink.patient_url("p-warm"))
        await phone.locator("#message").click()
        await expect(phone.locator("#sound-state")).to_have_text("Sound and spoken prompts are on.")
        assert await axe(phone) == [], "patient page, fine"

        body = phone.locator("body")
        # The cool-down comes (and, this patient heeding it, soon goes): it was prompted.
        await until(phone, "Number(document.body.dataset.prompts) >= 1")
        await expect(carer.locator(".banner")).to_have_count(1)
        assert await axe(carer) == [], "caregiver page with a cool-down banner"
        await carer.screenshot(path=str(screenshots / "a11y-caregiver.png"))

        # Nobody taps: the prompts go on until the level drops, then stop.
        await until(
            phone, "['cooling', 'nearly', 'recovered'].includes(document.body.dataset.phase)"
        )
        await expect(phone.locator("#cooling")).to_be_hidden()
        count = len(await rec(phone, "speak"))
        await asyncio.sleep(3.0)
        speaks = await rec(phone, "speak")
        assert not [s for s in speaks[count:] if s["text"].startswith("Cool down now")]

        # Back to baseline: one gentle cue, and one consistent set of words, after a reload.
        await expect(body).to_have_attribute("data-phase", "recovered", timeout=TIMEOUT_MS)
        await until(phone, 'window.__rec.speak.some(s => s.text.startsWith("You\'re back"))')
        assert played(await rec(phone, "tones"), await tones(phone, "recovered"))
        for _ in range(2):
            await expect(phone.locator("#status")).to_have_text("You're fine")
            await expect(phone.locator("#message")).to_have_text(
                re.compile(r"^You're back to baseline after \d+ min")
            )
            await expect(phone.locator("#recovery")).to_have_text("You're back to baseline.")
            assert "Nearly there" not in await phone.locator("main").inner_text()
            await phone.reload()
            await expect(body).to_have_attribute("data-phase", "recovered")
        assert await axe(phone) == [], "patient page, recovered"
        await phone.screenshot(path=str(screenshots / "a11y-patient-recovered.png"))

        # The history of the session, read back from InfluxDB.
        alert = await stack.recorder.wait_for_event("p-warm", Level.COOL_DOWN)
        await carer.goto(f"{stack.base_url}/history?patient=p-warm&session={alert.session}")
        await expect(carer.locator("#history-status")).to_have_text(
            re.compile(r"^\d+ points, \d+ alerts$"), timeout=TIMEOUT_MS
        )
        await expect(carer.locator("#chart .uplot canvas")).to_have_count(1)
        assert await axe(carer) == [], "history page"
        await phone_ctx.close()
