"""``heatmon demo``, the main job, end to end as a newcomer runs it: virtual wearables through
bleak, the engine, a local InfluxDB, a local Mosquitto and the dashboard, all real."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt

from monitor.storage.localserver import InfluxServer
from monitor.storage.query import HeatmonStore

PATIENTS = {"p-ana", "p-ben", "p-cas", "p-dia"}
RUN_S = 40


def read_until(
    proc: subprocess.Popen[str], patterns: dict[str, str], timeout_s: float
) -> dict[str, re.Match[str]]:
    """Lines of the demo's output until every pattern has matched once."""
    assert proc.stdout is not None
    found: dict[str, re.Match[str]] = {}
    deadline = time.monotonic() + timeout_s
    lines: list[str] = []
    while len(found) < len(patterns):
        assert time.monotonic() < deadline, "demo did not print:\n" + "".join(lines)
        line = proc.stdout.readline()
        assert line, "demo ended early:\n" + "".join(lines)
        lines.append(line)
        for name, pattern in patterns.items():
            m = re.search(pattern, line)
            if m and name not in found:
                found[name] = m
    return found


async def retained_states(port: int, user: str, password: str) -> dict[str, dict[str, Any]]:
    states: dict[str, dict[str, Any]] = {}
    async with aiomqtt.Client("127.0.0.1", port, username=user, password=password) as client:
        await client.subscribe("heatmon/v1/patients/+/state")
        async with asyncio.timeout(30):
            async for message in client.messages:
                payload = json.loads(bytes(message.payload))
                states[str(message.topic).split("/")[3]] = payload
                if set(states) == PATIENTS and all(
                    s.get("heart_rate_bpm") for s in states.values()
                ):
                    return states
    return states


async def caregiver_board(base: str, password: str) -> list[dict[str, Any]]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=base, cookie_jar=jar) as http:
        async with http.get("/api/patients") as resp:
            assert resp.status == 401, "no patient data without logging in"
        async with http.get("/api/session") as resp:
            token = (await resp.json())["csrf"]
        async with http.post(
            "/api/login",
            json={"login": "caregiver", "password": password},
            headers={"X-CSRF-Token": token},
        ) as resp:
            assert resp.status == 200
        async with http.get("/api/patients") as resp:
            assert resp.status == 200
            body = await resp.json()
    patients: list[dict[str, Any]] = body["patients"]
    return patients


def test_the_demo_runs_every_part_for_real(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "demo",
            "--speed",
            "60",
            "--duration",
            str(RUN_S),
            "--web-port",
            "0",
            "--data-dir",
            str(data),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        found = read_until(
            proc,
            {
                "mqtt": r"-p (\d+) -u (\S+) -P (\S+) ",
                "web": r"Caregiver view: (http://127\.0\.0\.1:\d+)/caregiver",
                "password": r"log in as 'caregiver' with password '([^']+)'",
            },
            timeout_s=60,
        )
        port, user, password = found["mqtt"].groups()
        states = asyncio.run(retained_states(int(port), user, password))
        assert set(states) == PATIENTS
        for state in states.values():
            assert 40 < state["heart_rate_bpm"] < 200
        board = asyncio.run(caregiver_board(found["web"].group(1), found["password"].group(1)))
        assert {p["patient"] for p in board} == PATIENTS
        assert all(p["state"] and p["state"]["heart_rate_bpm"] for p in board)
        _out, err = proc.communicate(timeout=RUN_S + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    assert "not a medical device" in err
    # Every patient's vitals reached InfluxDB through the BLE source.
    with InfluxServer(data_dir=data / "influxdb") as server:
        store = HeatmonStore(url=server.url, database="heatmon")
        assert set(store.patients()) == PATIENTS
        rows = store.execute(
            "SELECT count(value) FROM vitals WHERE source = 'ble' GROUP BY patient"
        )
        counts = {s["tags"]["patient"]: s["values"][0][1] for s in rows[0]["series"]}
    assert set(counts) == PATIENTS
    assert min(counts.values()) > 100
