"""One-minute series for long-term views.

InfluxDB 1.x: continuous queries ``vitals_1m`` and ``thermal_1m`` (created by
``heatmon downsample`` or the sink's ``downsample = true``), writing the measurements
``vitals_1m`` and ``thermal_1m`` in the same database; ``heatmon downsample --backfill``
runs the same ``SELECT … INTO`` over past data. InfluxDB 2.x: the Flux task in
``docs/influxdb2-downsample.flux`` does the same into a ``heatmon_1m`` bucket.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType

from monitor.storage.query import HeatmonStore, quote_ident

log = logging.getLogger(__name__)

DOWNSAMPLE_SPECS: Mapping[str, tuple[str, str, str]] = MappingProxyType(
    {
        "vitals_1m": (
            "vitals",
            'mean("value") AS "mean", min("value") AS "min", max("value") AS "max", '
            'count("value") AS "count"',
            '"patient", "kind", "device"',
        ),
        "thermal_1m": (
            "thermal",
            'mean("core_temp_c") AS "core_temp_c", mean("core_delta_c") AS "core_delta_c", '
            'max("core_delta_c") AS "core_delta_max_c", max("level_rank") AS "level_rank_max", '
            'mean("heart_rate_bpm") AS "heart_rate_bpm", max("strain_index") AS "strain_index_max"',
            '"patient", "session"',
        ),
    }
)
"""target measurement → (source measurement, aggregates, GROUP BY tags). Only accepted
vitals (``flag = 'ok'`` or ``'gap'``) enter ``vitals_1m``."""


def _select(target: str, database: str, time_range: str = "") -> str:
    source, aggregates, tags = DOWNSAMPLE_SPECS[target]
    where = ""
    if source == "vitals":
        where = " WHERE (\"flag\" = 'ok' OR \"flag\" = 'gap')"
    if time_range:
        where = f"{where} AND {time_range}" if where else f" WHERE {time_range}"
    into = f"{quote_ident(database)}..{quote_ident(target)}"
    return (
        f"SELECT {aggregates} INTO {into} FROM {quote_ident(source)}{where} "
        f"GROUP BY time(1m), {tags}"
    )


def continuous_query_statements(database: str) -> list[str]:
    return [
        f"CREATE CONTINUOUS QUERY {quote_ident(target)} ON {quote_ident(database)} "
        f"BEGIN {_select(target, database)} END"
        for target in DOWNSAMPLE_SPECS
    ]


def ensure_continuous_queries(store: HeatmonStore) -> list[str]:
    """Create the continuous queries that are missing; returns the names created."""
    results = store.execute("SHOW CONTINUOUS QUERIES")
    existing = {
        row[0]
        for s in (results[0].get("series", []) if results else [])
        if s.get("name") == store.database
        for row in s.get("values", [])
    }
    created = []
    for target, statement in zip(
        DOWNSAMPLE_SPECS, continuous_query_statements(store.database), strict=True
    ):
        if target not in existing:
            store.execute(statement)
            created.append(target)
            log.info("created continuous query %s on %s", target, store.database)
    return created


def backfill(store: HeatmonStore, start_ns: int, stop_ns: int) -> dict[str, int]:
    """Compute the one-minute series for ``[start, stop)``; points written per target."""
    written: dict[str, int] = {}
    for target in DOWNSAMPLE_SPECS:
        time_range = f"time >= {start_ns} AND time < {stop_ns}"
        results = store.execute(_select(target, store.database, time_range))
        series = results[0].get("series", []) if results else []
        written[target] = sum(int(v[1]) for s in series for v in s.get("values", []))
    return written
