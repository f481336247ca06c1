"""A running service with the dashboard and the care-team store (SQLite or PostgreSQL):
the simulated patient ``p-new`` wears a wearable from the start, but the engine does not
know them until the care team adds them (as at a practice on Monday morning)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from adapters.simulator import SimulatedPatientOptions, SimulatorOptions, SimulatorSource
from monitor.careteam.store import CareStore
from monitor.config import EngineConfig
from monitor.engine import MonitorEngine
from monitor.plugins import Sink
from monitor.service import Monitor
from monitor.web.demo import demo_web_config
from monitor.web.sink import WebSink
from tests.fixtures.web import RecordingSink
from tests.passwords import seeded_hash

ADMIN = "ada"
ADMIN_PASSWORD = "a long passphrase for ada"
NEW = "p-new"
SPEED = 60.0


@dataclass
class TeamStack:
    sink: WebSink
    monitor: Monitor
    recorder: RecordingSink

    @property
    def base_url(self) -> str:
        return self.sink.base_url


def seed_admin(url: str) -> None:
    """What ``heatmon admin import --admin ada`` leaves: one admin with a password."""
    with CareStore(url=url) as store:
        store.add_caregiver(ADMIN, "admin", by="setup", password_hash=seeded_hash(ADMIN_PASSWORD))


def build_team_stack(
    url: str,
    *,
    scenario: str = "hot_day_aerobic",
    poll_s: float = 1.0,
    speed: float = SPEED,
    sinks: tuple[Sink, ...] = (),
) -> TeamStack:
    source = SimulatorSource(
        options=SimulatorOptions(
            speed=speed,
            interval_s=2.0,
            patients=(SimulatedPatientOptions(patient=NEW, scenario=scenario, seed=3),),
        )
    )
    sink = WebSink(config=demo_web_config([]), careteam_url=url, careteam_poll_s=poll_s)
    recorder = RecordingSink()
    start_wall = time.time()

    def clock() -> float:
        return start_wall + (time.time() - start_wall) * speed

    monitor = Monitor(
        engine=MonitorEngine(profiles={}, config=EngineConfig()),
        sources=[source],
        sinks=[sink, recorder, *sinks],
        clock=clock,
    )
    sink.attach(monitor)
    return TeamStack(sink=sink, monitor=monitor, recorder=recorder)


__all__ = ["ADMIN", "ADMIN_PASSWORD", "NEW", "Path", "TeamStack", "build_team_stack", "seed_admin"]
