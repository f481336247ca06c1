"""Benchmark: how fast the care team's changes take effect, on SQLite and PostgreSQL.

Run: ``.venv/bin/python -m bench.careteam_latency [--runs 20] [--no-postgres]``.

The real service (simulated patient, engine, web sink with the care-team store) and a real
HTTP client. Measured per run, from sending the request:

- *threshold → tile*: a clinician's threshold change (``POST /api/team/patients/{id}``,
  store transaction with its audit entry) until the SSE ``state`` frame with the new
  threshold reaches her open stream (what the tile shows);
- *disable → stream cut*: an admin disables a caregiver until that caregiver's open
  ``/api/events`` stream ends (then enabled again for the next run).

PostgreSQL is Debian's, started in a temp dir on a free port (``tests/fixtures/postgres.py``).
Not a test: the figures go into docs/careteam.md, measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from monitor.careteam.base import sqlite_url
from tests.careteam_helpers import ADMIN, ADMIN_PASSWORD, NEW, build_team_stack, seed_admin
from tests.fixtures.postgres import PostgresServer, pg_bin


async def session(base: str, login: str, password: str) -> tuple[aiohttp.ClientSession, str]:
    http = aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.get("/api/session") as resp:
        csrf = (await resp.json())["csrf"]
    async with http.post(
        "/api/login", json={"login": login, "password": password}, headers={"X-CSRF-Token": csrf}
    ) as resp:
        csrf = (await resp.json())["csrf"]
    return http, csrf


async def post(http: aiohttp.ClientSession, csrf: str, path: str, body: Any) -> Any:
    async with http.post(path, json=body, headers={"X-CSRF-Token": csrf}) as resp:
        data = await resp.json()
        if resp.status >= 300:
            raise RuntimeError(f"{path}: {resp.status} {data}")
        return data


async def frames(stream: aiohttp.ClientResponse) -> Any:
    """Yield (event, data) of an SSE stream."""
    while True:
        block = await stream.content.readuntil(b"\n\n")
        kind, data = "", ""
        for line in block.decode().splitlines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if kind:
            yield kind, json.loads(data)


async def measure(url: str, runs: int, progress: Progress) -> dict[str, list[float]]:
    await asyncio.to_thread(seed_admin, url)
    stack = build_team_stack(url)
    out: dict[str, list[float]] = {"threshold → tile": [], "disable → stream cut": []}
    async with stack.monitor:
        admin, acsrf = await session(stack.base_url, ADMIN, ADMIN_PASSWORD)
        await post(admin, acsrf, "/api/team/patients", {"id": NEW})
        person = {}
        for login, role in (("clara", "clinician"), ("cody", "caregiver")):
            made = await post(admin, acsrf, "/api/team/caregivers", {"login": login, "role": role})
            anon = aiohttp.ClientSession(
                base_url=stack.base_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
            )
            async with anon.get("/api/session") as resp:
                csrf = (await resp.json())["csrf"]
            await post(
                anon,
                csrf,
                "/api/invite",
                {"token": made["invite_url"].split("#")[1], "password": f"{login} long password"},
            )
            await anon.close()
            await post(admin, acsrf, "/api/team/assignments", {"login": login, "patient": NEW})
            person[login] = f"{login} long password"
        clara, ccsrf = await session(stack.base_url, "clara", person["clara"])
        task = progress.add_task(url.split(":", 1)[0], total=2 * runs)
        async with clara.get("/api/events") as stream:
            events = frames(stream)
            async for kind, data in events:  # until the tile has a state
                if (kind == "snapshot" and data["patients"][0]["state"]) or kind == "state":
                    break
            version = (await (await clara.get(f"/api/team/patients/{NEW}")).json())["version"]
            for n in range(runs):
                value = 0.45 if n % 2 == 0 else 0.4
                start = time.perf_counter()
                sent = post(
                    clara,
                    ccsrf,
                    f"/api/team/patients/{NEW}",
                    {"version": version, "profile": {"threshold_rise_c": value}},
                )
                answer = asyncio.ensure_future(sent)
                async for kind, data in events:
                    if kind == "state" and data["state"]["threshold_rise_c"] == value:
                        break
                out["threshold → tile"].append(time.perf_counter() - start)
                version = (await answer)["version"]
                progress.advance(task)
        for _ in range(runs):
            cody, _ = await session(stack.base_url, "cody", person["cody"])
            async with cody.get("/api/events") as stream:
                await stream.content.readuntil(b"\n\n")
                people = (await (await admin.get("/api/team/caregivers")).json())["caregivers"]
                v = next(c["version"] for c in people if c["login"] == "cody")
                start = time.perf_counter()
                answer = asyncio.ensure_future(
                    post(
                        admin, acsrf, "/api/team/caregivers/cody", {"version": v, "disabled": True}
                    )
                )
                while await stream.content.read(4096):
                    pass
                out["disable → stream cut"].append(time.perf_counter() - start)
                done = await answer
            await post(
                admin,
                acsrf,
                "/api/team/caregivers/cody",
                {"version": done["version"], "disabled": False},
            )
            await cody.close()
            progress.advance(task)
        await clara.close()
        await admin.close()
    return out


def row(name: str, values: list[float]) -> list[str]:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return [
        name,
        str(len(ms)),
        f"{statistics.median(ms):.1f} ms",
        f"{p95:.1f} ms",
        f"{ms[-1]:.1f} ms",
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    results: list[tuple[str, dict[str, list[float]]]] = []
    with tempfile.TemporaryDirectory() as tmp, Progress() as progress:
        results.append(
            ("SQLite", await measure(sqlite_url(Path(tmp) / "c.sqlite"), args.runs, progress))
        )
        bindir = pg_bin()
        if not args.no_postgres and bindir is not None:
            server = PostgresServer(bindir=bindir)
            try:
                await asyncio.to_thread(server.start)
                url = await asyncio.to_thread(server.new_database)
                results.append(("PostgreSQL", await measure(url, args.runs, progress)))
            finally:
                await asyncio.to_thread(server.stop)
    table = Table("store", "from the request to", "runs", "median", "p95", "max")
    for backend, out in results:
        for name, values in out.items():
            table.add_row(backend, *row(name, values))
    Console().print(table)


if __name__ == "__main__":
    asyncio.run(main())
