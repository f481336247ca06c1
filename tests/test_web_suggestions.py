"""Personal thresholds on the dashboard, end to end in real headless Chromium: symptom
reports over three sessions run by the real engine → the suggestion, with the sessions and
rises behind it, is shown to the assigned caregiver → she accepts → the running engine uses
the new threshold and the tile shows it. A caregiver not assigned sees nothing (403).

Screenshots: ``artifacts/screenshots/caregiver-threshold-*.png``.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from playwright.async_api import Browser, Page, expect

from monitor.model import Sample, SampleKind
from monitor.profile import PatientProfile
from monitor.thresholds.learner import ThresholdLearner
from monitor.thresholds.records import new_id
from monitor.web.app import OPENAPI_PATH
from monitor.web.demo import DemoUser
from tests.fixtures.web import CAROL, WebStack, build_web_stack, csrf
from tests.test_web_api import login
from tests.test_web_browser import LIVE_TIMEOUT_MS, log_in
from tests.threshold_helpers import session_with_symptoms

DAY_S = 86_400.0
NORA = DemoUser("nora", "a long passphrase for nora", ("p-learn",))
OTTO = DemoUser("otto", "a long passphrase for otto", ("p-cool",))


async def api(page: Page, method: str, path: str, *, csrf: bool = True) -> Any:
    """Call the API from inside the page, as the page's own script would."""
    return await page.evaluate(
        """async ([method, path, csrf]) => {
            const me = await (await fetch("/api/session")).json();
            const headers = csrf ? { "X-CSRF-Token": me.csrf } : {};
            const resp = await fetch(path, { method, headers });
            return { status: resp.status, body: await resp.json().catch(() => null) };
        }""",
        [method, path, csrf],
    )


@pytest.mark.slow
async def test_caregiver_accepts_a_learnt_threshold_and_the_engine_uses_it(
    chromium: Browser, screenshots: Path, tmp_path: Path
) -> None:
    learner = ThresholdLearner(
        path=tmp_path / "thresholds.sqlite",
        profiles={"p-learn": PatientProfile(id="p-learn", display_name="Lena")},
    )
    stack: WebStack = build_web_stack(
        patients={"p-cool": ("Carl", "cool_gym_strength")},
        unsimulated={"p-learn": "Lena"},
        users=(NORA, OTTO),
        sinks=(learner,),
    )
    learner.attach(stack.monitor.engine)
    async with stack.monitor:
        # Three earlier sessions, each with "I feel symptoms" at a rise below the default.
        now = stack.clock()
        for k, rise in enumerate((0.34, 0.36, 0.38)):
            await session_with_symptoms(
                stack.monitor, "p-learn", start=now - (3 - k) * DAY_S, rise_c=rise
            )
        async with asyncio.timeout(LIVE_TIMEOUT_MS / 1000):
            while learner.counters.get("reports_stored", 0) < 3:
                learner.stored.clear()
                await learner.stored.wait()
        (suggestion,) = learner.store.suggestions("p-learn")
        suggested = f"{suggestion.suggested_c:+.2f} °C"
        assert suggestion.suggested_c < 0.45

        page = await chromium.new_page(viewport={"width": 1280, "height": 1000})
        await log_in(page, stack, NORA.login, NORA.password)
        card = page.locator(f'.suggestion[data-suggestion="{suggestion.id}"]')
        await expect(card).to_be_visible(timeout=LIVE_TIMEOUT_MS)
        await expect(card.locator("h3")).to_contain_text(f"Lena: personal threshold {suggested}")
        await expect(card.locator(".now")).to_have_text("+0.50 °C")
        await expect(card.locator(".new")).to_have_text(suggested)
        await expect(card.locator(".evidence tbody tr")).to_have_count(3)
        await expect(card.locator(".evidence tbody tr .rise").first).to_have_text(
            re.compile(r"^\+0\.3\d °C ± 0\.\d\d$")
        )
        await expect(card.locator(".onset-chart circle.onset")).to_have_count(3)
        tile = page.locator('.tile[data-patient="p-learn"]')
        await expect(tile.locator(".thr")).to_have_text("+0.50 °C")
        await page.screenshot(path=str(screenshots / "caregiver-threshold-suggested.png"))

        # Otto is not assigned to Lena: nothing shown, the API refuses to read or decide.
        other = await chromium.new_context()
        otto = await other.new_page()
        await log_in(otto, stack, OTTO.login, OTTO.password)
        await expect(otto.locator('.tile[data-patient="p-cool"]')).to_have_count(1)
        await expect(otto.locator(".suggestion")).to_have_count(0)
        resp = await api(otto, "GET", "/api/patients/p-learn/thresholds")
        assert resp["status"] == 403 and "Lena" not in str(resp["body"])
        path = f"/api/patients/p-learn/suggestions/{suggestion.id}/accept"
        assert (await api(otto, "POST", path))["status"] == 403
        # Without the CSRF token even the assigned caregiver is refused.
        assert (await api(page, "POST", path, csrf=False))["status"] == 403
        await other.close()
        assert learner.store.suggestion(suggestion.id).status == "pending"  # type: ignore[union-attr]
        assert stack.monitor.engine.profile("p-learn").threshold_rise_c == 0.5  # type: ignore[union-attr]

        # Nora accepts: recorded with who and when, in use at once.
        await card.locator("button.accept").click()
        await expect(card.locator(".decision")).to_contain_text(
            "Accepted by nora at", timeout=LIVE_TIMEOUT_MS
        )
        await expect(card.locator(".decision")).to_contain_text(f"threshold is now {suggested}")
        stored = learner.store.suggestion(suggestion.id)
        assert stored is not None and (stored.status, stored.decided_by) == ("accepted", "nora")
        profile = stack.monitor.engine.profile("p-learn")
        assert profile is not None and profile.threshold_rise_c == suggestion.suggested_c

        # The next readings are judged against it, and the tile shows it.
        for _ in range(20):
            t = stack.clock()
            await stack.monitor.ingest(Sample("p-learn", SampleKind.HEART_RATE, 80.0, t, "hr", "t"))
            await asyncio.sleep(0.05)
        await expect(tile.locator(".thr")).to_have_text(suggested, timeout=LIVE_TIMEOUT_MS)
        state = stack.monitor.state("p-learn")
        assert state is not None and state.threshold_rise_c == suggestion.suggested_c
        await page.screenshot(path=str(screenshots / "caregiver-threshold-accepted.png"))

        # Decided suggestions are not offered again.
        await page.reload()
        await expect(tile).to_have_count(1)
        await expect(page.locator(".suggestion")).to_have_count(0)
        await expect(page.locator("#suggestions")).to_be_hidden()


def schema(name: str) -> dict[str, Any]:
    """A component of openapi.json as a JSON Schema (its $refs resolve in the document)."""
    doc = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    return {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}


async def test_thresholds_api_answers_as_documented(tmp_path: Path) -> None:
    learner = ThresholdLearner(path=tmp_path / "t.sqlite", profiles={})
    stack = build_web_stack(
        patients={"p-cool": ("Carl", "cool_gym_strength")},
        unsimulated={"p-learn": "Lena"},
        users=(NORA, OTTO),
        sinks=(learner,),
    )
    learner.attach(stack.monitor.engine)
    async with (
        stack.monitor,
        aiohttp.ClientSession(
            base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as http,
    ):
        assert (await login(http, NORA.login, NORA.password)).status == 200
        token = await csrf(http)
        async with http.get("/api/patients/p-learn/thresholds") as resp:
            assert resp.status == 200
            view = await resp.json()
        jsonschema.validate(view, schema("ThresholdView"))
        assert (view["threshold_c"], view["floor_c"], view["suggestions"]) == (0.5, 0.3, [])

        now = stack.clock()
        for k, rise in enumerate((0.65, 0.7, 0.75, 0.8)):
            await session_with_symptoms(
                stack.monitor, "p-learn", start=now - (4 - k) * DAY_S, rise_c=rise
            )
        async with asyncio.timeout(30):
            while learner.counters.get("reports_stored", 0) < 4:
                learner.stored.clear()
                await learner.stored.wait()
        async with http.get("/api/patients/p-learn/thresholds") as resp:
            view = await resp.json()
        jsonschema.validate(view, schema("ThresholdView"))
        pending = [s for s in view["suggestions"] if s["status"] == "pending"]
        (suggestion,) = pending
        assert suggestion["suggested_c"] > 0.5, "onsets above the default: a higher threshold"
        assert len(suggestion["evidence"]) == suggestion["n_sessions"] == 4

        base = "/api/patients/p-learn/suggestions"
        headers = {"X-CSRF-Token": token}
        async with http.post(f"{base}/{new_id()}/reject", headers=headers) as resp:
            assert resp.status == 404
        async with http.post(f"{base}/not-an-id/reject", headers=headers) as resp:
            assert resp.status == 404
        async with http.post(f"{base}/{suggestion['id']}/reject", headers=headers) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["change"] is None
        assert (body["suggestion"]["status"], body["suggestion"]["decided_by"]) == (
            "rejected",
            "nora",
        )
        jsonschema.validate(body["suggestion"], schema("Suggestion"))
        async with http.post(f"{base}/{suggestion['id']}/accept", headers=headers) as resp:
            assert resp.status == 409
        assert stack.monitor.engine.profile("p-learn").threshold_rise_c == 0.5  # type: ignore[union-attr]

        # A patient's own phone may report symptoms but not decide or read suggestions.
        async with aiohttp.ClientSession(
            base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as phone:
            link = stack.sink.patient_url("p-learn").removeprefix(stack.base_url)
            async with phone.get(link) as resp:
                assert resp.status == 200
            async with phone.get("/api/patients/p-learn/thresholds") as resp:
                assert resp.status == 403


async def test_without_the_thresholds_sink_the_api_says_so(web_stack: WebStack) -> None:
    async with aiohttp.ClientSession(
        base_url=web_stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:
        await login(http, CAROL.login, CAROL.password)
        async with http.get("/api/patients/p-hot/thresholds") as resp:
            assert resp.status == 503
            assert "[sinks.thresholds]" in (await resp.json())["error"]
