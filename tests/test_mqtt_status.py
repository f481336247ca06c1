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
from tests.mqtt_helpers import (
    ACL,
    PASSWORDS,
    Listener,
    TcpProxy,
    ramp,
    running_monitor,
    start_time,
    until,
)

pytestmark = pytest.mark.slow

KEEPALIVE_S = 2
"""The shortest keepalive the options allow: the broker gives up after about 1.5 times that."""


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


async def test_network_drop_last_will_offline_then_alerts_after_return(
    mosquitto_factory: BrokerFactory, mqtt_prefix: str
) -> None:
    """Not a crash: the network under a running monitor goes away (no FIN, no RST). The
    broker notices by the keepalive, publishes the last will ``offline``; alerts raised while
    cut off are delivered once when the network is back, and the status is ``online`` again."""
    broker = mosquitto_factory(
        users=PASSWORDS, acl=render_acl(MqttOptions(topic_prefix=mqtt_prefix, acl=ACL))
    )
    status = f"{mqtt_prefix}/monitors/m1/status"
    t0 = start_time()
    async with (
        TcpProxy(target_host=broker.host, target_port=broker.port) as proxy,
        Listener(
            broker,
            user="anna",
            topics=[status, f"{mqtt_prefix}/patients/p1/alerts"],
            identifier="anna",
        ) as anna,
        running_monitor(
            broker, mqtt_prefix, host=proxy.host, port=proxy.port, keepalive_s=KEEPALIVE_S
        ) as run,
    ):
        await anna.wait_for(
            lambda a: bool(a.on("/status")) and a.on("/status")[-1].json()["status"] == "online",
            what="online",
        )
        for sample in ramp("p1", t0, range(200)):
            await run.monitor.ingest(sample)
        proxy.blackhole()
        await anna.wait_for(
            lambda a: a.on("/status")[-1].json()["status"] == "offline", what="last will"
        )
        will = anna.on("/status")[-1].json()
        assert "time" not in will, "the broker's last will, not a goodbye from the monitor"
        assert anna.on("/alerts") == []

        for sample in ramp("p1", t0, range(200, 300)):
            await run.monitor.ingest(sample)
        assert run.sink.pending_alerts == 2, "caution and cool-down wait in the outbox"
        await proxy.restore()
        await anna.wait_for(
            lambda a: (
                len(a.on("/alerts")) >= 2 and a.on("/status")[-1].json()["status"] == "online"
            ),
            what="online again and the alerts",
        )
        alerts = [m.json() for m in anna.on("/alerts")]
        assert [a["level"] for a in alerts] == ["caution", "cool_down"]
        assert len({a["id"] for a in alerts}) == 2
        await until(lambda: run.sink.pending_alerts == 0, run.sink.counted, what="PUBACKs")
        assert run.sink.counters["alerts_published"] == 2
        assert run.sink.counters["connects"] >= 2
