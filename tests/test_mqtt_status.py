"""The monitor's status topic: ``online`` while ``heatmon run`` is up, ``offline`` from the
broker's last will when the process dies, and ``offline`` on a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path

import pytest

from monitor.mqtt.acl import render_acl
from monitor.mqtt.options import MqttOptions
from tests.fixtures.mosquitto import BrokerFactory
from tests.mqtt_helpers import ACL, PASSWORDS, Listener, running_monitor

pytestmark = pytest.mark.slow


async def test_heatmon_run_status_online_then_last_will_offline(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str, tmp_path: Path
) -> None:
    broker = mosquitto_factory(
        users=PASSWORDS, acl=render_acl(MqttOptions(topic_prefix=mqtt_prefix, acl=ACL))
    )
    config = tmp_path / "heatmon.toml"
    config.write_text(
        f"""
[monitor]
instance = "central"
data_dir = "{tmp_path / "var"}"

[[patients]]
id = "p1"

[sinks.mqtt]
host = "{broker.host}"
port = {broker.port}
username = "heatmon"
topic_prefix = "{mqtt_prefix}"
""",
        encoding="utf-8",
    )
    env = {**os.environ, "HEATMON_MQTT_PASSWORD": PASSWORDS["heatmon"]}
    status = f"{mqtt_prefix}/monitors/central/status"
    async with Listener(broker, user="anna", topics=[status], identifier="anna") as anna:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "monitor.cli", "run", "--config", str(config)),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await anna.wait_for(
                lambda a: bool(a.messages) and a.messages[-1].json()["status"] == "online",
                what="online",
            )
            proc.send_signal(signal.SIGKILL)
            await anna.wait_for(
                lambda a: a.messages[-1].json()["status"] == "offline", what="last will"
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            _, err = await proc.communicate()
        assert PASSWORDS["heatmon"].encode() not in err, "the password was logged"
        assert (tmp_path / "var" / "mqtt-outbox-central.sqlite").exists()


async def test_clean_stop_says_offline(mosquitto_factory: BrokerFactory, mqtt_prefix: str) -> None:
    broker = mosquitto_factory(
        users=PASSWORDS, acl=render_acl(MqttOptions(topic_prefix=mqtt_prefix, acl=ACL))
    )
    status = f"{mqtt_prefix}/monitors/m1/status"
    async with Listener(broker, user="anna", topics=[status], identifier="anna") as anna:
        async with running_monitor(broker, mqtt_prefix):
            await anna.wait_for(
                lambda a: bool(a.messages) and a.messages[-1].json()["status"] == "online",
                what="online",
            )
        await anna.wait_for(
            lambda a: a.messages[-1].json()["status"] == "offline", what="offline on stop"
        )
        assert "time" in anna.messages[-1].json(), "said by the monitor, not by its will"
