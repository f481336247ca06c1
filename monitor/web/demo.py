"""The dashboard with throw-away credentials, for ``heatmon demo``, the browser tests and the
latency benchmark: one caregiver who sees every demo patient, a fresh random password, and
one-time patient links.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from monitor.profile import PatientProfile
from monitor.web.auth import hash_password
from monitor.web.config import HistoryConfig, UserConfig, WebConfig
from monitor.web.sink import WebSink

log = logging.getLogger(__name__)

DEMO_LOGIN = "caregiver"


@dataclass(frozen=True, slots=True)
class DemoUser:
    login: str
    password: str
    patients: tuple[str, ...]


def demo_web_config(
    users: Sequence[DemoUser],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    history: HistoryConfig | None = None,
) -> WebConfig:
    return WebConfig(
        host=host,
        port=port,
        users={
            u.login: UserConfig(password_hash=hash_password(u.password), patients=u.patients)
            for u in users
        },
        history=history or HistoryConfig(),
    )


def demo_dashboard(
    profiles: Mapping[str, PatientProfile],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    history: HistoryConfig | None = None,
) -> tuple[WebSink, DemoUser]:
    """A web sink whose one caregiver (random password) sees every patient in ``profiles``.

    Wire it as ``Monitor(..., sinks=[sink])``, then ``sink.attach(monitor)``; after the
    monitor has started, :func:`demo_links` gives the text to print.
    """
    user = DemoUser(DEMO_LOGIN, secrets.token_urlsafe(9), tuple(sorted(profiles)))
    config = demo_web_config([user], host=host, port=port, history=history)
    names = {pid: p.display_name for pid, p in profiles.items()}
    return WebSink(config=config, display_names=names), user


def demo_links(sink: WebSink, user: DemoUser) -> str:
    """What ``heatmon demo`` prints: the caregiver view with its login, and a one-time
    link per patient (printed for the person at the console, never logged)."""
    lines = [
        f"Caregiver view: {sink.base_url}/caregiver",
        f"  log in as {user.login!r} with password {user.password!r}",
        "Patient views (open each link once on the patient's phone):",
    ]
    for patient in user.patients:
        lines.append(f"  {patient}: {sink.patient_url(patient)}")
    lines.append(f"History view: {sink.base_url}/history")
    return "\n".join(lines)
