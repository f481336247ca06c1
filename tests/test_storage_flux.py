"""The Flux path (``HeatmonStore.flux``, ``heatmon query --flux``) on the wire.

InfluxDB 2.x cannot be installed here and nothing else serves Flux, so this checks the
request against what InfluxDB 2.x's ``POST /api/v2/query`` accepts (path, ``org``,
``Authorization: Token …``, JSON body with the query and the annotated-CSV dialect) with a
recording HTTP server, which answers with annotated CSV as InfluxDB 2.x does. It proves
the request and the parsing of the answer, not that a real 2.x runs the query.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pandas as pd
import pytest
from aiohttp import web

from monitor.netutil import free_port
from monitor.storage.query import HeatmonStore
from tests.test_storage_query import run_cli

FLUX = (
    'from(bucket: "heatmon") |> range(start: 2024-05-17T12:00:00Z, stop: 2024-05-17T13:00:00Z)'
    ' |> filter(fn: (r) => r._measurement == "thermal" and r._field == "core_delta_c")'
)
ANSWER = (
    "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,"
    "string,string,string\r\n"
    "#group,false,false,true,true,false,false,true,true,true\r\n"
    "#default,_result,,,,,,,,\r\n"
    ",result,table,_start,_stop,_time,_value,_field,_measurement,patient\r\n"
    ",,0,2024-05-17T12:00:00Z,2024-05-17T13:00:00Z,2024-05-17T12:30:00Z,0.31,"
    "core_delta_c,thermal,p-001\r\n"
    ",,0,2024-05-17T12:00:00Z,2024-05-17T13:00:00Z,2024-05-17T12:30:10Z,0.33,"
    "core_delta_c,thermal,p-001\r\n"
    "\r\n"
)
"""Annotated CSV, as InfluxDB 2.x answers a Flux query."""


@dataclass
class FluxRecorder:
    url: str
    requests: list[tuple[str, str, dict[str, str], dict[str, str], bytes]] = field(
        default_factory=list
    )


@pytest.fixture
async def flux_server() -> AsyncIterator[FluxRecorder]:
    port = free_port()
    recorder = FluxRecorder(url=f"http://127.0.0.1:{port}")

    async def query(request: web.Request) -> web.Response:
        body = await request.read()
        recorder.requests.append(
            (request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        return web.Response(text=ANSWER, content_type="text/csv")

    app = web.Application()
    app.router.add_post("/api/v2/query", query)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield recorder
    await runner.cleanup()


def assert_influxdb2_query(
    request: tuple[str, str, dict[str, str], dict[str, str], bytes], *, token: str
) -> None:
    method, path, query, headers, body = request
    assert (method, path) == ("POST", "/api/v2/query")
    assert query == {"org": "clinic"}
    assert headers["Authorization"] == f"Token {token}"
    assert headers["Content-Type"].startswith("application/json")
    sent = json.loads(body)
    assert sent["query"] == FLUX
    assert sent["dialect"]["header"] is True
    assert sent["dialect"]["annotations"] == ["datatype", "group", "default"]
    assert sent["dialect"]["delimiter"] == ","


async def test_flux_sends_what_influxdb_2_accepts_and_returns_a_frame(
    flux_server: FluxRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    store = HeatmonStore(url=flux_server.url, token="flux-s3cret")
    with caplog.at_level(logging.DEBUG):
        frame = await asyncio.to_thread(store.flux, FLUX, org="clinic")
    (request,) = flux_server.requests
    assert_influxdb2_query(request, token="flux-s3cret")
    assert frame["_value"].tolist() == [0.31, 0.33]
    assert set(frame["patient"]) == {"p-001"}
    assert frame["_time"].tolist() == [
        pd.Timestamp("2024-05-17T12:30:00Z"),
        pd.Timestamp("2024-05-17T12:30:10Z"),
    ]
    assert "flux-s3cret" not in caplog.text


async def test_query_command_runs_flux_with_the_token_from_the_environment(
    flux_server: FluxRecorder,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HEATMON_INFLUXDB_TOKEN", "env-token")
    code = await asyncio.to_thread(
        run_cli, "query", FLUX, "--flux", "--org", "clinic", "--format", "csv",
        "--url", flux_server.url,
    )  # fmt: skip
    assert code == 0
    (request,) = flux_server.requests
    assert_influxdb2_query(request, token="env-token")
    out = capsys.readouterr().out.splitlines()
    header = out[0].split(",")
    values = [dict(zip(header, line.split(","), strict=True))["_value"] for line in out[1:]]
    assert values == ["0.31", "0.33"]
