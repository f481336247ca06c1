"""``heatmon gateway`` end to end with the real ``ble`` source: virtual wearables (bumble
peripherals speaking real GATT) → bleak → the gateway (built from its TOML file, as the
command builds it) → a real Mosquitto under the ACL → a real Monitor's MQTT input → the
engine → the patient's state published back and read by a caregiver."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from adapters.ble.source import BleSource
from adapters.ble.virtual import (
    VirtualChestStrap,
    VirtualCoreSensor,
    VirtualSkinSensor,
    VirtualWorld,
)
from monitor.commands.gateway import build_gateway, serve
from monitor.config import load_config
from monitor.mqtt.acl import render_acl
from monitor.mqtt.options import MqttOptions
from monitor.mqtt.outbox import Outbox
from tests.fixtures.mosquitto import BrokerFactory
from tests.mqtt_helpers import ACL, PASSWORDS, Listener, running_monitor, until

pytestmark = pytest.mark.slow

STRAP = "C0:00:00:00:51:01"
SKIN = "C0:00:00:00:51:02"
CORE = "C0:00:00:00:51:03"
HEART_RATE = 131.0
SKIN_C = 33.5
CORE_C = 37.6
SPEED = 60.0
"""Simulated seconds per wall-clock second: the 2-min baseline takes 2 s."""
NOTIFY_S = 1.0 / SPEED


class FastClock:
    """UTC seconds running ``SPEED`` times faster than the wall, starting an hour ago."""

    def __init__(self) -> None:
        self._t0 = time.time() - 3600.0
        self._m0 = time.monotonic()

    def __call__(self) -> float:
        return self._t0 + (time.monotonic() - self._m0) * SPEED


async def test_gateway_ble_wearables_to_monitor_state(
    mosquitto_factory: BrokerFactory,
    mqtt_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = mosquitto_factory(
        users=PASSWORDS, acl=render_acl(MqttOptions(topic_prefix=mqtt_prefix, acl=ACL))
    )
    config_file = tmp_path / "gateway.toml"
    config_file.write_text(
        f"""
[monitor]
instance = "home-p1"
data_dir = "{tmp_path / "gw"}"

[[patients]]
id = "p1"

[[devices]]
address = "{STRAP}"
patient = "p1"
role = "heart_rate"

[[devices]]
address = "{SKIN}"
patient = "p1"
role = "skin_temp"

[[devices]]
address = "{CORE}"
patient = "p1"
role = "core"

[sinks.mqtt]
host = "{broker.host}"
port = {broker.port}
username = "gw-a"
topic_prefix = "{mqtt_prefix}"
reconnect_base_s = 0.1
reconnect_max_s = 0.5
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("HEATMON_MQTT_PASSWORD", PASSWORDS["gw-a"])
    config = load_config(config_file)
    clock = FastClock()
    world = VirtualWorld(
        wearables=[
            VirtualChestStrap(address=STRAP, heart_rate=lambda: HEART_RATE, interval_s=NOTIFY_S),
            VirtualSkinSensor(
                address=SKIN, skin_temp=lambda: SKIN_C, interval_s=NOTIFY_S, clock=clock
            ),
            VirtualCoreSensor(
                address=CORE,
                core_temp=lambda: CORE_C,
                skin_temp=lambda: SKIN_C,
                interval_s=NOTIFY_S,
            ),
        ]
    )
    stop = asyncio.Event()
    async with (
        world,
        running_monitor(broker, mqtt_prefix) as run,
        Listener(
            broker, user="anna", topics=[f"{mqtt_prefix}/patients/p1/state"], identifier="anna"
        ) as anna,
    ):
        source = BleSource(
            devices=config.devices,
            scan_timeout_s=2.0,
            reconnect_base_s=0.1,
            reconnect_max_s=0.5,
            scanner_backend=world.scanner_backend,
            client_backend=world.client_backend,
            clock=clock,
        )
        gateway = build_gateway(config, source=source)
        serving = asyncio.create_task(serve(gateway, stop))

        def measured(doc: dict[str, object]) -> bool:
            keys = ("heart_rate_bpm", "skin_temp_c", "measured_core_c")
            return doc["quality"] == "good" and all(doc[k] is not None for k in keys)

        await anna.wait_for(
            lambda a: any(measured(m.json()) for m in a.messages),
            what="a state made from all three wearables",
        )
        state = next(m.json() for m in anna.messages if measured(m.json()))
        assert state["patient"] == "p1"
        assert state["heart_rate_bpm"] == pytest.approx(HEART_RATE, abs=1.0)
        assert state["skin_temp_c"] == pytest.approx(SKIN_C, abs=0.05)
        assert state["measured_core_c"] == pytest.approx(CORE_C, abs=0.05)
        assert state["level"] == "ok"

        # stop the gateway: every sample acknowledged by the broker reached the monitor; a
        # batch in flight at the stop stays in the gateway's buffer for its next start
        stop.set()
        await serving
        published = gateway.counters["published"]
        assert published > 0
        await until(
            lambda: run.sink.counters.get("samples_in", 0) >= published,
            run.sink.counted,
            what="every published sample taken by the monitor",
        )
        with Outbox(path=tmp_path / "gw" / "gateway.sqlite") as kept:
            assert published <= run.sink.counters["samples_in"] <= published + len(kept)
        assert run.sink.counters.get("rejected", 0) == 0
