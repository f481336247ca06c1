"""heatmon as an operator installs it: the wheel, not the checkout.

The wheel is built with ``pip wheel`` from a copy of exactly what the Dockerfile's ``wheel``
stage copies (its ``COPY`` lines are read), then installed, non-editable, into a fresh
virtualenv in a temporary directory, as the image's last stage installs it. Its dependencies
are hard links of the development virtualenv's installed packages (without heatmon itself):
installing them from the pip cache takes about 50 s on the development machine, linking them
under a second, and ``pip install --no-index`` of the wheel then checks that they satisfy
what the wheel declares. ``HEATMON_PACKAGING_FULL_INSTALL=1`` installs them from the index
into an empty virtualenv instead (about 2 min; the test's time limit grows to match).
``heatmon run`` from that virtualenv (working directory outside the checkout) drives the
web, MQTT and InfluxDB sinks against real servers, and headless Chromium loads the dashboard
it serves from site-packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from monitor.netutil import free_port
from monitor.web.auth import hash_password
from tests.fixtures.influxdb import InfluxDatabase
from tests.fixtures.mosquitto import BrokerFactory
from tests.mqtt_helpers import PASSWORDS, Listener, start_broker

FULL_INSTALL = os.environ.get("HEATMON_PACKAGING_FULL_INSTALL") == "1"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 if FULL_INSTALL else 120)]

ROOT = Path(__file__).resolve().parent.parent
CAREGIVER = ("carol", "a long enough passphrase")
WAIT_S = 60.0


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, (
        f"{cmd[:4]} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    )
    return result  # type: ignore[no-any-return]


def dockerfile_wheel_context(dest: Path) -> None:
    """Copy into ``dest`` what the Dockerfile's ``wheel`` stage copies (its ``COPY`` lines;
    ``--from=web-assets``, the stage that runs ``npm ci``, is this checkout's node_modules)."""
    in_stage = False
    copies = 0
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            in_stage = words[-2:] == ["AS", "wheel"]
            continue
        if not in_stage or words[:1] != ["COPY"]:
            continue
        copies += 1
        if words[1].startswith("--from=web-assets"):
            sources = [ROOT / "dashboards" / "web" / "node_modules"]
            words = words[1:]
        else:
            sources = [ROOT / w for w in words[1:-1]]
        target = dest / words[-1]
        for source in sources:
            to = target / source.name if words[-1].endswith("/") else target
            to.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                # .dockerignore keeps node_modules and __pycache__ out of the build context
                ignore = shutil.ignore_patterns("__pycache__", "node_modules")
                shutil.copytree(source, to, ignore=ignore)
            else:
                shutil.copy2(source, to)
    assert copies >= 4, "the Dockerfile has no wheel stage to follow"


def build_wheel(out: Path) -> Path:
    """The wheel, built as the Dockerfile builds it: from what its wheel stage copies."""
    context = out.parent / "wheel-context"
    dockerfile_wheel_context(context)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(context)])
    (wheel,) = out.glob("heatmon-*.whl")
    return wheel


def link_or_copy(source: str, dest: str) -> None:
    try:
        os.link(source, dest)
    except OSError:  # another file system: copy
        shutil.copy2(source, dest)


def fresh_venv(path: Path, *, full_install: bool) -> Path:
    """A new virtualenv. With ``full_install`` it is empty and pip installs the wheel's
    dependencies from the index (the pip cache helps); otherwise its site-packages holds
    hard links of the development venv's packages, less heatmon."""
    if full_install:
        run([sys.executable, "-m", "venv", str(path)])
        return path / "bin" / "python"
    run([sys.executable, "-m", "venv", "--without-pip", str(path)])
    source = Path(sysconfig.get_paths()["purelib"])
    target = Path(
        run(
            [
                str(path / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ]
        ).stdout.strip()
    )
    for entry in source.iterdir():
        if entry.name.startswith(("heatmon", "__editable__", "__pycache__")):
            continue
        dest = target / entry.name
        if entry.is_dir():
            shutil.copytree(entry, dest, copy_function=link_or_copy, symlinks=True)
        else:
            link_or_copy(str(entry), str(dest))
    return path / "bin" / "python"


def write_config(
    path: Path, *, influx: InfluxDatabase, mqtt_port: int, prefix: str, web_port: int
) -> None:
    path.write_text(
        f"""
[monitor]
instance = "packaged"
data_dir = "var"

[[patients]]
id = "p1"
display_name = "Pat"

[sources.simulator]
speed = 60.0
interval_s = 2.0
patients = [{{ patient = "p1", scenario = "hot_day_aerobic" }}]

[sinks.influxdb]
url = "{influx.url}"
database = "{influx.name}"
flush_interval_s = 0.2

[sinks.mqtt]
host = "127.0.0.1"
port = {mqtt_port}
username = "heatmon"
topic_prefix = "{prefix}"

[sinks.web]
port = {web_port}

[web]
host = "127.0.0.1"

[web.users.{CAREGIVER[0]}]
password_hash = "{hash_password(CAREGIVER[1])}"
patients = ["p1"]
""",
        encoding="utf-8",
    )


@contextlib.contextmanager
def heatmon_run(
    heatmon: Path, config: Path, *, env: dict[str, str]
) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [str(heatmon), "run", "--config", str(config)],
        cwd=config.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


async def wait_healthy(url: str, proc: subprocess.Popen[str]) -> dict[str, object]:
    async with asyncio.timeout(WAIT_S):
        while True:
            assert proc.poll() is None, "heatmon run ended early"
            try:
                body = await asyncio.to_thread(_get_json, url)
            except OSError:
                await asyncio.sleep(0.2)
                continue
            return body


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        data: dict[str, object] = json.load(resp)
        return data


async def test_the_installed_wheel_serves_the_dashboard_and_feeds_every_sink(
    tmp_path: Path,
    influx_db: InfluxDatabase,
    mosquitto_factory: BrokerFactory,
    mqtt_prefix: str,
    chromium: Browser,
) -> None:
    wheel = build_wheel(tmp_path / "dist")
    python = fresh_venv(tmp_path / "venv", full_install=FULL_INSTALL)
    offline = [] if FULL_INSTALL else ["--no-index"]
    run([str(python), "-m", "pip", "install", "-q", *offline, str(wheel)])
    heatmon = tmp_path / "venv" / "bin" / "heatmon"
    # The installed package, not the checkout, and its dashboard and schemas inside it.
    where = run(
        [
            str(python),
            "-c",
            "import monitor, monitor.web.app as a, monitor.mqtt.codec as p; "
            "print(monitor.__file__); print(a.default_static_dir()); p.load_schema('status')",
        ],
        cwd=tmp_path,
    ).stdout.split()
    assert all(line.startswith(str(tmp_path / "venv")) for line in where), where
    assert where[1].endswith("site-packages/monitor/web/static")

    broker = start_broker(mosquitto_factory, mqtt_prefix)
    web_port = free_port()
    app = tmp_path / "app"
    app.mkdir()
    config = app / "heatmon.toml"
    write_config(
        config, influx=influx_db, mqtt_port=broker.port, prefix=mqtt_prefix, web_port=web_port
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "HEATMON_MQTT_PASSWORD": PASSWORDS["heatmon"],
    }
    run([str(heatmon), "run", "--config", str(config), "--check"], env=env, cwd=app)
    base = f"http://127.0.0.1:{web_port}"
    state_topic = f"{mqtt_prefix}/patients/p1/state"
    async with Listener(broker, user="anna", topics=[state_topic], identifier="anna") as anna:
        with heatmon_run(heatmon, config, env=env) as proc:
            health = await wait_healthy(f"{base}/healthz", proc)
            assert health["status"] == "ok"
            await anna.wait_for(lambda a: bool(a.on("/state")), what="a state on MQTT")
            assert anna.on("/state")[-1].json()["patient"] == "p1"

            page = await chromium.new_page()
            await page.goto(f"{base}/caregiver")
            await expect(page).to_have_url(re.compile(r"/login$"))
            await page.fill("#login", CAREGIVER[0])
            await page.fill("#password", CAREGIVER[1])
            await page.click("button[type=submit]")
            await expect(page).to_have_url(re.compile(r"/caregiver$"))
            tile = page.locator('.tile[data-patient="p1"]')
            await expect(tile).to_have_count(1)
            await expect(tile.locator(".hr")).to_have_text(
                re.compile(r"^\d+ bpm$"), timeout=WAIT_S * 1000
            )
            # uPlot came from the package too: the sparkline is drawn.
            await expect(tile.locator(".spark .uplot canvas")).to_have_count(
                1, timeout=WAIT_S * 1000
            )
            # the patient app's files travel in the wheel as well
            for path, kind in (
                ("/sw.js", "javascript"),
                ("/manifest.webmanifest", "manifest+json"),
                ("/assets/icon.svg", "svg"),
            ):
                response = await page.request.get(f"{base}{path}")
                assert response.status == 200, path
                assert kind in response.headers["content-type"], path
            await page.close()

            for _ in range(int(WAIT_S / 0.5)):
                if influx_db.query("SELECT count(value) FROM vitals WHERE patient = 'p1'"):
                    break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError("no vitals reached InfluxDB")
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
