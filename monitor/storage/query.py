"""Researchers' access to the stored series, as pandas DataFrames.

>>> store = HeatmonStore(url="http://127.0.0.1:8086", database="heatmon")
>>> hr = store.vitals("p-001", "2024-05-17T10:00:00Z", "2024-05-17T12:00:00Z",
...                   kind="heart_rate")
>>> thermal = store.thermal("p-001", start, stop)      # estimated core, rise, level, …
>>> alerts = store.alerts("p-001", start, stop)        # with acked_at / acked_by

Queries are InfluxQL over the v1 ``/query`` endpoint, which InfluxDB 1.x, 2.x (its
v1-compatible API, with a token) and 3.x all serve. :meth:`HeatmonStore.flux` runs Flux on
an InfluxDB 2.x through ``influxdb-client``. Every frame has a ``time`` column
(``datetime64[ns, UTC]``); tags and fields are columns named as in
``docs/data-model.md``. Patient ids are the pseudonyms stored; nothing else identifies a
person.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import urllib3

from monitor.errors import HeatmonError
from monitor.model import parse_time
from monitor.storage import lineprotocol as lp
from monitor.storage.options import InfluxOptions

log = logging.getLogger(__name__)

TimeLike = float | int | str | datetime | pd.Timestamp
DEFAULT_TIMEOUT_S = 60.0
"""Longest a single query may take."""


class QueryError(HeatmonError):
    """InfluxDB refused a query, or could not be reached; the message says which."""


def to_epoch_ns(value: TimeLike) -> int:
    """Epoch seconds, ISO 8601 UTC text, or an aware datetime → integer nanoseconds."""
    if isinstance(value, pd.Timestamp | datetime):
        ts = pd.Timestamp(value)
        if ts.tzinfo is None:
            raise QueryError(f"time {value!s} has no zone; use UTC")
        return int(ts.value)
    if isinstance(value, str):
        try:
            seconds = parse_time(value)
        except ValueError as err:
            raise QueryError(f"cannot read time {value!r}: {err}") from err
        return lp.timestamp(seconds, "ns")
    return lp.timestamp(float(value), "ns")


def quote_ident(name: str) -> str:
    """An InfluxQL identifier (measurement, tag or field name)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_literal(text: str) -> str:
    """An InfluxQL string literal (a tag value in ``WHERE``)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def series_to_frame(series: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The ``series`` of one InfluxQL result (``epoch=ns``) as one frame."""
    frames = []
    for s in series:
        frame = pd.DataFrame(s.get("values", []), columns=s["columns"])
        for tag, value in (s.get("tags") or {}).items():
            frame[tag] = value
        if len(series) > 1:
            frame.insert(0, "measurement", s.get("name", ""))
        frames.append(frame)
    if not frames:
        return pd.DataFrame({"time": pd.Series([], dtype="datetime64[ns, UTC]")})
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if "time" in out.columns:
        out["time"] = pd.to_datetime(out["time"], unit="ns", utc=True)
    return out


class HeatmonStore:
    """Read access to heatmon's InfluxDB (sync, for notebooks and scripts)."""

    def __init__(
        self,
        *,
        url: str,
        database: str = "heatmon",
        retention_policy: str = "",
        token: str = "",
        username: str = "",
        password: str = "",
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        headers: dict[str, str] = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        elif username:
            headers.update(urllib3.make_headers(basic_auth=f"{username}:{password}"))
        self._headers = headers
        self._token = token
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(total=timeout_s), retries=urllib3.Retry(total=2)
        )

    @classmethod
    def from_options(cls, options: InfluxOptions) -> HeatmonStore:
        return cls(
            url=options.url,
            database=options.database,
            retention_policy=options.retention_policy,
            token=options.token.get_secret_value(),
            username=options.username,
            password=options.password.get_secret_value(),
        )

    # -- InfluxQL ------------------------------------------------------------------------

    def execute(self, influxql: str) -> list[dict[str, Any]]:
        """Run InfluxQL; the raw ``results`` (one per statement). Raises on any error."""
        fields = {"q": influxql, "db": self.database, "epoch": "ns"}
        if self.retention_policy:
            fields["rp"] = self.retention_policy
        try:
            resp = self._http.request(
                "POST",
                f"{self.url}/query",
                fields=fields,
                encode_multipart=False,
                headers=self._headers,
            )
        except urllib3.exceptions.HTTPError as err:
            raise QueryError(f"cannot reach InfluxDB at {self.url}: {err}") from err
        try:
            body = json.loads(resp.data or b"{}")
        except ValueError as err:
            raise QueryError(f"InfluxDB answered {resp.status} with no JSON") from err
        if resp.status != 200 or "error" in body:
            raise QueryError(f"InfluxDB refused the query ({resp.status}): {body.get('error')}")
        results: list[dict[str, Any]] = body.get("results", [])
        for result in results:
            if "error" in result:
                raise QueryError(f"InfluxQL error: {result['error']}")
        return results

    def query(self, influxql: str) -> pd.DataFrame:
        """Run one InfluxQL statement and return its rows as a frame."""
        results = self.execute(influxql)
        return series_to_frame(results[0].get("series", []) if results else [])

    def measurement(
        self,
        measurement: str,
        patient: str,
        start: TimeLike,
        stop: TimeLike,
        *,
        where: str = "",
        columns: str = "*",
    ) -> pd.DataFrame:
        """Rows of ``measurement`` for one patient, ``start <= time < stop``."""
        clause = (
            f"{quote_ident('patient')} = {quote_literal(patient)} "
            f"AND time >= {to_epoch_ns(start)} AND time < {to_epoch_ns(stop)}"
        )
        if where:
            clause += f" AND ({where})"
        frame = self.query(f"SELECT {columns} FROM {quote_ident(measurement)} WHERE {clause}")
        return frame.sort_values("time", kind="stable", ignore_index=True)

    def vitals(
        self, patient: str, start: TimeLike, stop: TimeLike, *, kind: str | None = None
    ) -> pd.DataFrame:
        """Raw readings: ``value`` in the kind's unit, ``flag``, ``accepted``, RR intervals."""
        where = f"{quote_ident('kind')} = {quote_literal(kind)}" if kind else ""
        return self.measurement(lp.VITALS, patient, start, stop, where=where)

    def thermal(self, patient: str, start: TimeLike, stop: TimeLike) -> pd.DataFrame:
        """Estimated core temperature, its SD, the rise, forecast, strain index, level."""
        return self.measurement(lp.THERMAL, patient, start, stop)

    def alerts(self, patient: str, start: TimeLike, stop: TimeLike) -> pd.DataFrame:
        """Alerts, each with ``acked_at``/``acked_by`` of its first acknowledgement (if any).

        Acknowledgements are looked up until ``stop`` plus a day, since they come later.
        """
        alerts = self.measurement(lp.ALERTS, patient, start, stop)
        acks_until_s = to_epoch_ns(stop) / 1e9 + 86_400
        acks = self.measurement(lp.ALERT_ACKS, patient, start, acks_until_s)
        if alerts.empty or acks.empty or "event_id" not in acks.columns:
            alerts["acked_at"] = pd.Series(dtype="datetime64[ns, UTC]")
            alerts["acked_by"] = pd.Series(dtype="object")
            return alerts
        first = (
            acks.sort_values("time")
            .groupby("event_id", as_index=False)
            .first()[["event_id", "time", "by"]]
            .rename(columns={"time": "acked_at", "by": "acked_by"})
        )
        return alerts.merge(first, on="event_id", how="left")

    def sessions(self, patient: str, start: TimeLike, stop: TimeLike) -> pd.DataFrame:
        """Sessions that started in the range: activity, environment, start, stop, duration."""
        return self.measurement(lp.SESSIONS, patient, start, stop)

    def symptoms(self, patient: str, start: TimeLike, stop: TimeLike) -> pd.DataFrame:
        """Patient-reported symptoms, with the estimated rise at that moment."""
        return self.measurement(lp.SYMPTOMS, patient, start, stop)

    def patients(self) -> list[str]:
        """Every pseudonymous patient id in the store."""
        results = self.execute(f"SHOW TAG VALUES FROM {quote_ident(lp.VITALS)} WITH KEY = patient")
        series = results[0].get("series", []) if results else []
        return sorted(str(v[1]) for s in series for v in s.get("values", []))

    def windows(
        self, start: TimeLike, stop: TimeLike, *, step_s: float = 3600.0
    ) -> Iterator[tuple[int, int]]:
        """``[start, stop)`` cut into windows of ``step_s`` (ns bounds), for progress."""
        lo, hi = to_epoch_ns(start), to_epoch_ns(stop)
        step = int(step_s * 1e9)
        while lo < hi:
            yield lo, min(hi, lo + step)
            lo += step

    # -- Flux (InfluxDB 2.x) -------------------------------------------------------------

    def flux(self, query: str, *, org: str) -> pd.DataFrame:
        """Run Flux on an InfluxDB 2.x (needs a token); one frame of every table.

        The tables come as Flux returns them (``_time``, ``_field``, ``_value``, tags); end
        the query with ``pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn:
        "_value")`` for one column per field."""
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.warnings import MissingPivotFunction

        with (
            InfluxDBClient(url=self.url, token=self._token, org=org) as client,
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", MissingPivotFunction)
            result: Any = client.query_api().query_data_frame(query, org=org)
        if isinstance(result, list):
            return pd.concat(result, ignore_index=True) if result else pd.DataFrame()
        frame: pd.DataFrame = result
        return frame
