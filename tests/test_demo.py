"""``heatmon demo``, the main job, end to end as a newcomer runs it: virtual wearables through
bleak, the engine, a local InfluxDB, a local Mosquitto and the dashboard, all real."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from rich.console import Console
from rich.live import Live
from rich.text import Text

from monitor.demo import logs_through
from monitor.mqtt.outbox import Outbox
from monitor.storage.localserver import InfluxServer
from monitor.storage.query import HeatmonStore
from monitor.storage.spool import Spool

PATIENTS = {"p-ana", "p-ben", "p-cas", "p-dia"}
RUN_S = 25


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


@pytest.mark.slow
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


def servers_under(directory: Path) -> dict[int, str]:
    """Running influxd and mosquitto processes whose command line names a path under
    ``directory`` (the demo's), pid → program."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        program = Path(args[0].decode(errors="replace")).name
        if (
            program in ("influxd", "mosquitto")
            and state != "Z"
            and any(str(directory).encode() in a for a in args[1:])
        ):
            found[int(entry.name)] = program
    return found


@pytest.mark.slow
def test_ctrl_c_drains_the_sinks_before_the_local_servers_stop(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    log_path = tmp_path / "demo.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                *("-m", "monitor.cli", "demo", "--speed", "60", "--no-web", "--no-wearables"),
                *("--data-dir", str(data)),
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            # Its own process group, as a shell gives a foreground job: Ctrl-C is SIGINT to
            # the whole group.
            start_new_session=True,
        )
        try:
            read_until(proc, {"mqtt": r"-p (\d+) -u (\S+) -P (\S+) "}, timeout_s=60)
            deadline = time.monotonic() + 30
            while set(servers_under(data).values()) != {"influxd", "mosquitto"}:
                assert time.monotonic() < deadline, servers_under(data)
                time.sleep(0.2)
            servers = servers_under(data)
            time.sleep(5)  # samples flow into the spool and on to InfluxDB
            os.killpg(proc.pid, signal.SIGINT)
            proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    err = log_path.read_text(encoding="utf-8")
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "points in the spool" not in err, err[-3000:]
    # The servers were stopped by the demo, after the sinks (not killed by the Ctrl-C).
    assert not (set(servers) & set(servers_under(data))), "a local server outlived the demo"
    outbox = Outbox(path=data / "mqtt-outbox.sqlite")
    try:
        assert len(outbox) == 0, "MQTT messages left in the outbox"
    finally:
        outbox.close()
    spool = Spool(directory=data / "influx-sink" / "spool")
    spool.open()
    try:
        assert spool.pending_points == 0, "points left in the spool"
    finally:
        spool.close()
    with InfluxServer(data_dir=data / "influxdb") as server:
        rows = HeatmonStore(url=server.url, database="heatmon").execute(
            "SELECT count(value) FROM vitals GROUP BY patient"
        )
    counts = {s["tags"]["patient"]: s["values"][0][1] for s in rows[0]["series"]}
    assert set(counts) == PATIENTS and min(counts.values()) > 10


def test_log_lines_go_through_the_live_view_while_it_runs() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    root = logging.getLogger()
    before = list(root.handlers)
    with Live(Text("the view"), console=console, auto_refresh=False), logs_through(console):
        logging.getLogger("monitor.storage.sink").warning("InfluxDB write failed")
    assert "monitor.storage.sink: InfluxDB write failed" in out.getvalue()
    assert root.handlers == before
