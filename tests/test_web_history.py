"""The history view: a session stored in a real InfluxDB (Debian's influxd, through the
real InfluxDB sink) shown on one chart in headless Chromium; the acknowledgement made in
the browser is stored in InfluxDB too."""

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
from monitor.web.history import alerts_query, sessions_query, symptoms_query, thermal_query
from tests.fixtures.influxdb import InfluxDatabase
from tests.fixtures.web import build_web_stack

TIMEOUT_MS = 30_000
NURSE = DemoUser("nina", "a fourth long passphrase", ("p-hot",))


async def stored(db: InfluxDatabase, influxql: str) -> int:
    """Rows InfluxDB returns for ``influxql``, waiting (a while) for the sink to flush."""
    for _ in range(100):
        series = await asyncio.to_thread(db.query, influxql)
        rows = sum(len(s["values"]) for s in series)
        if rows:
            return rows
        await asyncio.sleep(0.2)
    return 0


@pytest.mark.slow
async def test_history_view_charts_a_stored_session(
    influx_db: InfluxDatabase, chromium: Browser, screenshots: Path, tmp_path: Path
) -> None:
    influx = InfluxSink(
        options=InfluxOptions(url=influx_db.url, database=influx_db.name, flush_interval_s=0.2),
        data_dir=tmp_path,
    )
    stack = build_web_stack(
        patients={"p-hot": ("Hanna", "hot_day_aerobic")},
        users=(NURSE,),
        speed=120.0,
        history=HistoryConfig(url=influx_db.url, database=influx_db.name),
        sinks=(influx,),
    )
    async with stack.monitor:
        page = await chromium.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(f"{stack.base_url}/login")
        await page.fill("#login", NURSE.login)
        await page.fill("#password", NURSE.password)
        await page.click("button[type=submit]")
        await expect(page).to_have_url(re.compile(r"/caregiver$"))
        alert = await asyncio.wait_for(
            stack.recorder.wait_for_event("p-hot", Level.COOL_DOWN), TIMEOUT_MS / 1000
        )
        await page.locator(f'.banner[data-event="{alert.id}"] button.ack').click()
        await expect(page.locator(f'.banner[data-event="{alert.id}"]')).to_have_count(0)
        acks = await stored(
            influx_db, f"SELECT \"by\" FROM alert_acks WHERE event_id = '{alert.id}'"
        )
        assert acks == 1, "the acknowledgement is stored in InfluxDB"
        session = alert.session
        assert await stored(influx_db, alerts_query("p-hot", session)) >= 2
        assert await stored(influx_db, sessions_query("p-hot")) >= 1
        points = await stored(influx_db, thermal_query("p-hot", session))
        assert points > 30

        # A symptom report from the patient's page, stamped on the patient's (fast) clock,
        # is stored inside the session and shows on its chart.
        await page.goto(f"{stack.base_url}/patient/p-hot")
        await page.click("#symptoms")
        await expect(page.locator("#noted")).to_contain_text("Your caregiver can see it")
        assert await stored(influx_db, symptoms_query("p-hot", session)) == 1
        (last,) = await asyncio.to_thread(
            influx_db.query, f"SELECT last(core_delta_c) FROM thermal WHERE session = '{session}'"
        )
        last_state_ns = last["values"][0][0]
        (symptom,) = await asyncio.to_thread(influx_db.query, symptoms_query("p-hot", session))
        symptom_ns = symptom["values"][0][0]
        assert abs(symptom_ns - last_state_ns) < 120e9, "symptom time is on the session's clock"

        await page.goto(f"{stack.base_url}/history?patient=p-hot")
        status = page.locator("#history-status")
        await expect(status).to_have_text(
            re.compile(r"^\d+ points, \d+ alerts$"), timeout=TIMEOUT_MS
        )
        await expect(page.locator("#session option")).not_to_have_count(0)
        await expect(page.locator("#chart .uplot canvas")).to_have_count(1)
        legend = page.locator("#chart .u-legend")
        for label in (
            "heart rate (bpm)",
            "core rise est. (°C)",
            "skin temp (°C)",
            "threshold",
            "alert: getting warm",
            "alert: cool down",
            "symptoms",
        ):
            await expect(legend).to_contain_text(label)
        await expect(page.locator("#alerts")).to_contain_text("Cool down now")
        await expect(page.locator("#alerts")).to_contain_text("symptoms reported")
        await page.screenshot(path=str(screenshots / "history.png"), full_page=True)


async def test_history_api_says_when_the_store_is_down(
    chromium: Browser, screenshots: Path
) -> None:
    stack = build_web_stack(
        patients={"p-hot": ("Hanna", "hot_day_aerobic")},
        users=(NURSE,),
        history=HistoryConfig(url="http://127.0.0.1:9", database="heatmon", timeout_s=2),
    )
    async with stack.monitor:
        page = await chromium.new_page()
        await page.goto(f"{stack.base_url}/login")
        await page.fill("#login", NURSE.login)
        await page.fill("#password", NURSE.password)
        await page.click("button[type=submit]")
        await expect(page).to_have_url(re.compile(r"/caregiver$"))
        await page.goto(f"{stack.base_url}/history")
        await expect(page.locator("#history-status")).to_have_text(
            "history unavailable: the history store did not answer", timeout=TIMEOUT_MS
        )


@pytest.mark.timeout(90)
async def test_a_session_with_a_flood_of_symptom_reports_reads_a_bounded_history(
    influx_db: InfluxDatabase,
) -> None:
    """A patient link may send symptom reports without end (each is stored); the history
    of that session read every one of them into the monitoring process (no LIMIT on the
    alerts and symptoms queries), so opening it could cost the service hundreds of MB.
    Now each list is cut at MAX_MARKERS, like the thermal series at MAX_POINTS."""
    import aiohttp

    from monitor.web.history import MAX_MARKERS
    from tests.fixtures.web import csrf

    t0 = 1_780_000_000 * 10**9
    note = "n" * 400
    body = "\n".join(
        f'symptoms,patient=p-hot,session=s-flood note="{note}",core_delta_c=0.3 {t0 + k * 10**6}'
        for k in range(MAX_MARKERS + 500)
    )
    await asyncio.to_thread(influx_db.write, body)
    assert await stored(influx_db, symptoms_query("p-hot", "s-flood")) > 0
    stack = build_web_stack(
        patients={"p-hot": ("Hanna", "hot_day_aerobic")},
        users=(NURSE,),
        history=HistoryConfig(url=influx_db.url, database=influx_db.name),
    )
    async with (
        stack.monitor,
        aiohttp.ClientSession(
            base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as http,
    ):
        async with http.post(
            "/api/login",
            json={"login": NURSE.login, "password": NURSE.password},
            headers={"X-CSRF-Token": await csrf(http)},
        ) as resp:
            assert resp.status == 200
        async with http.get("/api/patients/p-hot/sessions/s-flood") as resp:
            assert resp.status == 200
            data = await resp.json()
    assert len(data["symptoms"]) == MAX_MARKERS
    assert data["symptoms"][0]["note"] == note  # the earliest first, as before
