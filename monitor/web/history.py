"""The history view's reads: a past session's thermal series, alerts and symptoms, with
InfluxQL over the ``/query`` endpoint (InfluxDB 1.x; 2.x and 3.x through their
v1-compatible API with a token).

Every measurement and field name the web app reads is in :data:`SCHEMA` below, in this one
place; ``tests/test_web_history.py`` checks them against ``docs/data-model.md``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import aiohttp

from monitor.errors import HeatmonError
from monitor.web.config import HistoryConfig

log = logging.getLogger(__name__)

THERMAL = "thermal"
ALERTS = "alerts"
SESSIONS = "sessions"
SYMPTOMS = "symptoms"

THERMAL_FIELDS = (
    "heart_rate_bpm",
    "core_delta_c",
    "core_temp_sd_c",
    "skin_temp_c",
    "threshold_rise_c",
    "level_rank",
)
ALERT_FIELDS = ("event_id", "level", "message", "core_delta_c", "requires_ack")
SESSION_FIELDS = ("activity", "start_s", "stop_s", "duration_s")
SYMPTOM_FIELDS = ("note", "core_delta_c")

SCHEMA: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        THERMAL: THERMAL_FIELDS,
        ALERTS: ALERT_FIELDS,
        SESSIONS: SESSION_FIELDS,
        SYMPTOMS: SYMPTOM_FIELDS,
    }
)
"""Measurement → the fields the history view reads (tags used: ``patient``, ``session``)."""

MAX_SESSIONS = 50
MAX_POINTS = 20_000
MAX_MARKERS = 1_000
"""Alerts, and symptom reports, read for one session at most (the earliest): a patient
link can send reports without end, and every row read is held by the service."""

_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class HistoryError(HeatmonError):
    """The store could not answer (down, refused, or an InfluxQL error)."""


class InvalidIdError(HistoryError):
    """An id (patient or session) that cannot be one; the message never repeats it."""


def valid_id(value: str) -> bool:
    """Whether ``value`` may be a patient or session id: 1–128 of ``A-Za-z0-9._:-``."""
    return _SAFE_ID.fullmatch(value) is not None


def _literal(value: str) -> str:
    """A quoted InfluxQL string for an id that has been checked against ``_SAFE_ID``."""
    if not valid_id(value):
        raise InvalidIdError(f"not a valid id ({len(value)} characters)")
    return "'" + value + "'"


def _fields(names: tuple[str, ...]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def sessions_query(patient: str) -> str:
    return (
        f'SELECT {_fields(SESSION_FIELDS)}, "session" FROM "{SESSIONS}" '
        f'WHERE "patient" = {_literal(patient)} ORDER BY time DESC LIMIT {MAX_SESSIONS}'
    )


def thermal_query(patient: str, session: str) -> str:
    return (
        f'SELECT {_fields(THERMAL_FIELDS)} FROM "{THERMAL}" '
        f'WHERE "patient" = {_literal(patient)} AND "session" = {_literal(session)} '
        f"ORDER BY time ASC LIMIT {MAX_POINTS}"
    )


def alerts_query(patient: str, session: str) -> str:
    return (
        f'SELECT {_fields(ALERT_FIELDS)}, "kind" FROM "{ALERTS}" '
        f'WHERE "patient" = {_literal(patient)} AND "session" = {_literal(session)} '
        f"ORDER BY time ASC LIMIT {MAX_MARKERS}"
    )


def symptoms_query(patient: str, session: str) -> str:
    return (
        f'SELECT {_fields(SYMPTOM_FIELDS)} FROM "{SYMPTOMS}" '
        f'WHERE "patient" = {_literal(patient)} AND "session" = {_literal(session)} '
        f"ORDER BY time ASC LIMIT {MAX_MARKERS}"
    )


def _rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for series in result.get("series", []):
        columns = series["columns"]
        for values in series["values"]:
            rows.append(dict(zip(columns, values, strict=True)))
    return rows


class HistoryReader:
    """Reads past sessions from InfluxDB. ``time`` in results is epoch milliseconds."""

    __slots__ = ("_config", "_http")

    def __init__(self, *, config: HistoryConfig, http: aiohttp.ClientSession) -> None:
        self._config = config
        self._http = http

    @property
    def configured(self) -> bool:
        return bool(self._config.url)

    async def _query(self, *queries: str) -> list[list[dict[str, Any]]]:
        c = self._config
        params = {"db": c.database, "q": ";".join(queries), "epoch": "ms"}
        if c.retention_policy:
            params["rp"] = c.retention_policy
        headers = {}
        if c.token:
            headers["Authorization"] = f"Token {c.token}"
        auth = aiohttp.BasicAuth(c.username, c.password) if c.username else None
        try:
            async with self._http.post(
                c.url.rstrip("/") + "/query",
                data=params,
                headers=headers,
                auth=auth,
                timeout=aiohttp.ClientTimeout(total=c.timeout_s),
            ) as resp:
                if resp.status != 200:
                    text = (await resp.text())[:200]
                    raise HistoryError(f"InfluxDB answered {resp.status}: {text}")
                body = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as err:
            raise HistoryError(f"InfluxDB at {c.url} is unreachable: {err}") from err
        out: list[list[dict[str, Any]]] = []
        for result in body.get("results", []):
            if "error" in result:
                raise HistoryError(f"InfluxQL error: {result['error']}")
            out.append(_rows(result))
        while len(out) < len(queries):
            out.append([])
        return out

    async def sessions(self, patient: str) -> list[dict[str, Any]]:
        (rows,) = await self._query(sessions_query(patient))
        return rows

    async def session(self, patient: str, session: str) -> dict[str, Any]:
        thermal, alerts, symptoms = await self._query(
            thermal_query(patient, session),
            alerts_query(patient, session),
            symptoms_query(patient, session),
        )
        return {
            "patient": patient,
            "session": session,
            "thermal": thermal,
            "alerts": alerts,
            "symptoms": symptoms,
        }
