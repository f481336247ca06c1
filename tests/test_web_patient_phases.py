"""The patient page's phases (``dashboards/web/assets/phases.js``, pure functions) run in
Node.js (installed by scripts/setup.sh for the dashboard's npm packages): one phase at a
time, one heading and one message for it. The case of issue 10 — a reload after a
cool-down showed "You're fine", "Nearly there…" and "You're back to baseline" at once —
is among them. The browser tests show the same on the live page."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

PHASES = Path(__file__).resolve().parents[1] / "dashboards" / "web" / "assets" / "phases.js"


def run_phases(known: dict[str, Any]) -> dict[str, Any]:
    """``phaseOf`` and ``phaseView`` of ``known``, computed by the page's own module."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: run scripts/setup.sh (Debian package nodejs)")
    script = (
        f"import {{ phaseOf, phaseView }} from {json.dumps(PHASES.as_uri())};\n"
        f"const k = {json.dumps(known)};\n"
        "const p = phaseOf(k);\n"
        "const [status, message, advice, recovery] = phaseView(p, k);\n"
        "console.log(JSON.stringify({ phase: p, status, message, advice, recovery }));\n"
    )
    out = subprocess.run(
        [node, "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def state(level: str, session: str = "s1") -> dict[str, Any]:
    return {"level": level, "session": session, "quality": "good"}


def event(level: str, previous: str, epoch: float, session: str = "s1") -> dict[str, Any]:
    words = {
        "ok": "Nearly there: core estimated up +0.2 °C.",
        "caution": "Cooling down: core estimated up +0.4 °C.",
        "cool_down": "Cool down now. Your core temperature is estimated up +0.5 °C.",
    }
    return {
        "id": f"e{epoch}",
        "kind": "level",
        "level": level,
        "previous_level": previous,
        "epoch": epoch,
        "session": session,
        "message": words[level],
        "advice": ["Keep resting somewhere cool."] if level != "ok" else [],
    }


def recovered(epoch: float, session: str = "s1") -> dict[str, Any]:
    return {
        "id": f"r{epoch}",
        "kind": "recovered",
        "epoch": epoch,
        "session": session,
        "message": "You're back to baseline after 12 min. If you feel well, carry on gently.",
    }


def test_after_recovered_a_reload_says_fine_and_back_to_baseline_only() -> None:
    # What a snapshot holds after the episode: the ok ("Nearly there") level event, then
    # the recovered notice.
    view = run_phases(
        {
            "state": state("ok"),
            "levelEvent": event("ok", "caution", 100.0),
            "recovered": recovered(160.0),
            "sessionOpen": True,
        }
    )
    assert view["phase"] == "recovered"
    assert view["status"] == "You're fine"
    assert view["message"].startswith("You're back to baseline after 12 min")
    assert view["recovery"] == "You're back to baseline."
    assert "Nearly there" not in json.dumps(view)


def test_nearly_there_until_the_recovered_notice_of_this_episode() -> None:
    known: dict[str, Any] = {
        "state": state("ok"),
        "levelEvent": event("ok", "caution", 500.0),
        # The notice of an earlier episode does not count.
        "recovered": recovered(160.0),
        "sessionOpen": True,
    }
    view = run_phases(known)
    assert view["phase"] == "nearly"
    assert (view["status"], view["recovery"]) == ("Nearly there", "countdown")
    assert view["message"].startswith("Nearly there:")
    # Nor does one of another session.
    known["recovered"] = recovered(600.0, session="s0")
    assert run_phases(known)["phase"] == "nearly"


@pytest.mark.parametrize(
    ("level", "previous", "phase", "status"),
    [
        ("cool_down", "caution", "cool_down", "Cool down now"),
        ("caution", "cool_down", "cooling", "Cooling down"),
        ("caution", "ok", "caution", "Getting warm"),
    ],
)
def test_each_level_has_one_heading_and_the_engine_message(
    level: str, previous: str, phase: str, status: str
) -> None:
    ev = event(level, previous, 100.0)
    view = run_phases(
        {"state": state(level), "levelEvent": ev, "recovered": None, "sessionOpen": True}
    )
    assert (view["phase"], view["status"], view["message"]) == (phase, status, ev["message"])
    assert view["advice"] == ev["advice"]


def test_waiting_fine_and_ended() -> None:
    waiting = run_phases(
        {"state": None, "levelEvent": None, "recovered": None, "sessionOpen": False}
    )
    assert (waiting["phase"], waiting["status"]) == ("waiting", "Waiting for your sensors…")
    fine = run_phases(
        {"state": state("ok"), "levelEvent": None, "recovered": None, "sessionOpen": True}
    )
    assert (fine["phase"], fine["status"], fine["recovery"]) == ("ok", "You're fine", None)
    ended = run_phases(
        {"state": state("ok"), "levelEvent": None, "recovered": None, "sessionOpen": False}
    )
    assert ended["phase"] == "ended"
    assert "not watching" in ended["message"]
