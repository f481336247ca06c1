"""Every query in the Grafana dashboards, and every name the history view reads, refers to
measurements, fields and tags that ``docs/data-model.md`` documents."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.web.history import SCHEMA

ROOT = Path(__file__).resolve().parents[1]
DATA_MODEL = ROOT / "docs" / "data-model.md"
GRAFANA = ROOT / "dashboards" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
COLUMN_LISTS = r"(?:group|rowKey|columns)\s*[:(]\s*(?:columns:\s*)?\[([^\]]*)\]"
"""``group(columns: [...])``, ``rowKey: [...]``: the tag names listed there."""
FLUX_BUILTINS = {"_measurement", "_field", "_value", "_time", "_start", "_stop"}


def data_model() -> dict[str, set[str]]:
    """Measurement → every tag and field name its section of the data model mentions.

    A ``### `` heading names one or more measurements in backticks; the backticked names
    in its tables and text are its tags and fields."""
    model: dict[str, set[str]] = {}
    sections = re.split(r"^### ", DATA_MODEL.read_text(encoding="utf-8"), flags=re.MULTILINE)
    for section in sections[1:]:
        heading, _, body = section.partition("\n")
        names = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", body))
        for measurement in re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", heading):
            model.setdefault(measurement, set()).update(names)
    return model


def queries(node: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every Flux query string in a dashboard (targets, variables, annotations)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "query" and isinstance(value, str) and "bucket:" in value:
                yield where, value
            else:
                yield from queries(value, f"{where}.{key}")
    elif isinstance(node, list):
        for n, item in enumerate(node):
            yield from queries(item, f"{where}[{n}]")


def all_queries() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in DASHBOARDS:
        found.extend(queries(json.loads(path.read_text(encoding="utf-8")), path.name))
    return found


def names_in(query: str) -> tuple[set[str], set[str], set[str]]:
    """(measurements, fields, tags) a Flux query refers to."""
    measurements = set(re.findall(r'_measurement\s*==\s*"([^"]+)"', query))
    fields = set(re.findall(r'_field\s*==\s*"([^"]+)"', query))
    tags = set(re.findall(r"\br\.([A-Za-z_][A-Za-z0-9_]*)", query)) - FLUX_BUILTINS
    tags |= set(re.findall(r'tag:\s*"([^"]+)"', query))
    for cols in re.findall(COLUMN_LISTS, query):
        tags |= set(re.findall(r'"([^"]+)"', cols)) - FLUX_BUILTINS
    return measurements, fields, tags


def test_data_model_is_readable() -> None:
    model = data_model()
    assert {"vitals", "thermal", "alerts", "alert_acks", "sessions", "symptoms"} <= set(model)
    assert "core_delta_c" in model["thermal"] and "patient" in model["thermal"]


def test_there_are_dashboards_with_queries() -> None:
    assert DASHBOARDS, "no Grafana dashboards"
    assert len(all_queries()) >= 8


@pytest.mark.parametrize(("where", "query"), all_queries(), ids=lambda v: str(v)[:60])
def test_every_query_uses_documented_names(where: str, query: str) -> None:
    model = data_model()
    measurements, fields, tags = names_in(query)
    assert measurements, f"{where}: query names no measurement"
    for measurement in measurements:
        assert measurement in model, f"{where}: measurement {measurement!r} is not documented"
        known = model[measurement]
        assert fields <= known, f"{where}: fields {sorted(fields - known)} not in {measurement}"
        assert tags <= known, f"{where}: tags {sorted(tags - known)} not in {measurement}"


def test_the_checker_catches_an_undocumented_name() -> None:
    model = data_model()
    _, fields, _ = names_in('from(bucket: "b") |> filter(fn: (r) => r._field == "core_temp")')
    assert not fields <= model["thermal"]


def test_history_view_reads_documented_names() -> None:
    model = data_model()
    for measurement, fields in SCHEMA.items():
        assert measurement in model, measurement
        assert set(fields) | {"patient", "session"} <= model[measurement], measurement


def test_provisioning_points_at_the_dashboards_and_datasource() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "heatmon.yaml").read_text(encoding="utf-8")
    )
    (ds,) = datasources["datasources"]
    assert ds["type"] == "influxdb" and ds["jsonData"]["version"] == "Flux"
    uids = set()
    for path in DASHBOARDS:
        text = path.read_text(encoding="utf-8")
        uids |= set(re.findall(r'"uid": "(heatmon-influxdb[^"]*)"', text))
    assert uids == {ds["uid"]}
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "heatmon.yaml").read_text(encoding="utf-8")
    )
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/heatmon"
