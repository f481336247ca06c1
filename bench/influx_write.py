"""Benchmark (not a test): sustained points/s heatmon writes into a local InfluxDB 1.x,
side by side with a bulk write of the same line protocol by ``curl``.

    .venv/bin/python bench/influx_write.py [--points 200000] [--rounds 3]

Starts its own ``influxd`` (Debian's package) on a free loopback port with a temporary
data directory. Each round writes the same points (4 patients x heart rate, skin
temperature, core temperature, battery) twice, into two fresh databases:

- heatmon: ``InfluxSink.submit_sample`` for every point (line protocol built per point,
  batches of 5000, spooled to disk with fsync, gzip, v1 ``/write``), timed from the
  first submit until everything is confirmed written;
- curl: the same line protocol, pre-built, in batches of 5000, all in one ``curl``
  process (``--next``, keep-alive, uncompressed): the database's own limit here.

Both databases are counted afterwards, so a run that lost points fails loudly.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from monitor.model import Sample, SampleFlag, SampleKind
from monitor.storage import lineprotocol as lp
from monitor.storage.localserver import InfluxServer
from monitor.storage.options import InfluxOptions
from monitor.storage.sink import InfluxSink

BATCH = 5000
T0 = 1_715_949_000.0
KINDS = (SampleKind.HEART_RATE, SampleKind.SKIN_TEMP, SampleKind.CORE_TEMP, SampleKind.BATTERY)


def make_samples(n: int) -> list[Sample]:
    out = []
    for i in range(n):
        kind = KINDS[i % 4]
        patient = f"p-{(i // 4) % 4:03d}"
        t = T0 + (i // 16) * 0.25
        value = {"heart_rate": 90.0, "skin_temp": 33.0, "core_temp": 37.2, "battery": 80.0}[
            kind.value
        ] + (i % 97) / 10
        rr = (60.0 / value,) if kind is SampleKind.HEART_RATE else ()
        out.append(
            Sample(
                patient, kind, value, t, device=f"dev-{kind.value}", source="bench", rr_intervals=rr
            )
        )
    return out


def influxql(url: str, q: str, db: str = "") -> dict[str, object]:
    import json

    data = urllib.parse.urlencode({"q": q, "db": db}).encode()
    with urllib.request.urlopen(f"{url}/query", data=data, timeout=60) as resp:
        result: dict[str, object] = json.load(resp)
        return result


def count(url: str, db: str) -> int:
    body = influxql(url, 'SELECT count("value") FROM "vitals"', db)
    results = body["results"]
    assert isinstance(results, list)
    return int(results[0]["series"][0]["values"][0][1])


async def heatmon_round(url: str, db: str, samples: list[Sample], spool: Path) -> float:
    influxql(url, f'CREATE DATABASE "{db}"')
    options = InfluxOptions(url=url, database=db, batch_size=BATCH, stop_timeout_s=60)
    start = time.perf_counter()
    async with InfluxSink(options=options, data_dir=spool) as sink:
        for i in range(0, len(samples), BATCH):
            for s in samples[i : i + BATCH]:
                sink.submit_sample(s, SampleFlag.OK)
            await asyncio.sleep(0)  # a real producer yields between readings
        if not await sink.drain(timeout_s=600):
            raise SystemExit("heatmon did not finish writing")
        elapsed = time.perf_counter() - start
    return elapsed


def curl_round(url: str, db: str, lines: list[str], workdir: Path) -> float:
    influxql(url, f'CREATE DATABASE "{db}"')
    files = []
    for n, i in enumerate(range(0, len(lines), BATCH)):
        path = workdir / f"batch-{n:05d}.lp"
        path.write_text("\n".join(lines[i : i + BATCH]), encoding="utf-8")
        files.append(path)
    args = ["curl", "-s", "--fail", "-o", "/dev/null"]
    for n, path in enumerate(files):
        if n:
            args.append("--next")
        args += ["-XPOST", f"{url}/write?db={db}&precision=ns", "--data-binary", f"@{path}"]
    start = time.perf_counter()
    subprocess.run(args, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    samples = make_samples(args.points)
    lines = [lp.sample_line(s, SampleFlag.OK) for s in samples]
    mb = sum(len(line) + 1 for line in lines) / 1e6
    heatmon_rates: list[float] = []
    curl_rates: list[float] = []
    with tempfile.TemporaryDirectory(prefix="heatmon-bench-") as tmp:
        root = Path(tmp)
        with InfluxServer(data_dir=root / "influxdb") as server:
            for r in range(args.rounds):
                t_curl = curl_round(server.url, f"curl{r}", lines, root)
                t_heatmon = asyncio.run(
                    heatmon_round(server.url, f"heatmon{r}", samples, root / f"spool{r}")
                )
                for db in (f"curl{r}", f"heatmon{r}"):
                    got = count(server.url, db)
                    if got != len(samples):
                        raise SystemExit(f"{db}: {got} points stored, {len(samples)} sent")
                curl_rates.append(len(samples) / t_curl)
                heatmon_rates.append(len(samples) / t_heatmon)
                print(
                    f"round {r + 1}: curl {len(samples) / t_curl:,.0f} points/s, "
                    f"heatmon {len(samples) / t_heatmon:,.0f} points/s",
                    flush=True,
                )
    h, c = statistics.median(heatmon_rates), statistics.median(curl_rates)
    print(
        f"\n{len(samples):,} points ({mb:.1f} MB of line protocol), batches of {BATCH}, "
        f"median of {args.rounds} rounds"
    )
    print(f"  curl bulk write (database limit): {c:>10,.0f} points/s")
    print(f"  heatmon InfluxSink:               {h:>10,.0f} points/s")
    print(f"  ratio heatmon / curl:             {h / c:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
