"""The systems under test as processes (heatmon, the Node-RED flow) and what they cost:
CPU time and peak RSS from /proc, the machine's busy cores; the flow's npm installation."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from monitor.mqtt.localbroker import MosquittoBroker
from monitor.netutil import free_port

USER, PASSWORD = "bench", "bench-password"
NODE_RED = "node-red@4.1.15"
INFLUX_NODE = "node-red-contrib-influxdb@0.7.0"


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- the peer's installation ---------------------------------------------------------------


def install_nodered(cache: Path) -> Path:
    red = cache / "node_modules" / "node-red" / "red.js"
    if not red.exists() or not (cache / "node_modules" / "node-red-contrib-influxdb").exists():
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "package.json").write_text('{"name": "heatmon-bench-nodered", "private": true}')
        log(f"installing {NODE_RED} and {INFLUX_NODE} from npm into {cache}")
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                NODE_RED,
                INFLUX_NODE,
            ],
            cwd=cache,
            check=True,
            timeout=600,
        )
    return red


def nodered_flow(*, broker_port: int, prefix: str, influx_port: int, db: str) -> list[Any]:
    fn = (
        "const parts = msg.topic.split('/'); const patient = parts[parts.length - 2];\n"
        "msg.payload = msg.payload.samples.map(s => ({measurement: 'vitals',"
        " tags: {patient: patient, kind: s.kind, device: s.device || '', source: 'mqtt'},"
        " fields: {value: s.value}, timestamp: new Date(Math.round(s.time * 1000))}));\n"
        "return msg;"
    )
    return [
        {"id": "f1tab", "type": "tab", "label": "bench"},
        {
            "id": "f1broker",
            "type": "mqtt-broker",
            "broker": "127.0.0.1",
            "port": str(broker_port),
            "clientid": f"nodered-{prefix.split('/')[0]}",
            "autoConnect": True,
            "usetls": False,
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": True,
        },
        {
            "id": "f1influx",
            "type": "influxdb",
            "hostname": "127.0.0.1",
            "port": str(influx_port),
            "protocol": "http",
            "database": db,
            "name": "",
            "usetls": False,
            "influxdbVersion": "1.x",
        },
        {
            "id": "f1in",
            "type": "mqtt in",
            "z": "f1tab",
            "topic": f"{prefix}/patients/+/samples",
            "qos": "1",
            "datatype": "utf8",
            "broker": "f1broker",
            "wires": [["f1json"]],
        },
        {"id": "f1json", "type": "json", "z": "f1tab", "property": "payload", "wires": [["f1fn"]]},
        {
            "id": "f1fn",
            "type": "function",
            "z": "f1tab",
            "func": fn,
            "outputs": 1,
            "wires": [["f1out"]],
        },
        {
            "id": "f1out",
            "type": "influxdb batch",
            "z": "f1tab",
            "influxdb": "f1influx",
            "precision": "ms",
            "retentionPolicy": "",
            "wires": [],
        },
    ]


# -- the services under test ---------------------------------------------------------------


def proc_cpu_s(pid: int | None) -> float:
    """CPU time (user + system) of process ``pid`` so far, from /proc; nan if unknown."""
    if pid is None:
        return math.nan
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far (/proc/stat: idle and iowait are
    not busy)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values[:8])
    return total - values[3] - values[4], total


def busy_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Cores' worth of the machine busy between two :func:`machine_ticks` readings."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return (os.cpu_count() or 1) * busy / max(1, total)


class Service:
    """One system under test as a process: its CPU time and peak RSS from /proc."""

    def __init__(self, name: str, cmd: list[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = cwd / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self._log, stderr=self._log)

    def cpu_s(self) -> float:
        return proc_cpu_s(self.proc.pid)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def start_heatmon(
    work: Path,
    *,
    broker: MosquittoBroker,
    influx_url: str,
    prefix: str,
    db: str,
    ids: list[str],
    code: Path | None = None,
    window_phase: str = "clock",
    trace: Path | None = None,
) -> Service:
    """``heatmon run``; with ``code``, the ``monitor`` package from that folder instead (an
    earlier version, ``--base``, run in the same rounds)."""
    work.mkdir(parents=True, exist_ok=True)
    patients = "".join(
        f'[[patients]]\nid = "{p}"\nresting_hr_bpm = 70\nbaseline_core_c = 37.0\n' for p in ids
    )
    (work / "heatmon.toml").write_text(
        f'[monitor]\ninstance = "bench-{db}"\nlog_level = "WARNING"\ndata_dir = "{work}"\n\n'
        + (f'[engine]\nwindow_phase = "{window_phase}"\n\n' if window_phase != "clock" else "")
        + f"{patients}\n"
        f'[sinks.mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "{USER}"\n'
        f'topic_prefix = "{prefix}"\nclient_id = "heatmon-{db}"\n\n'
        f'[sinks.influxdb]\nurl = "{influx_url}"\ndatabase = "{db}"\n'
    )
    env = {**os.environ, "HEATMON_MQTT_PASSWORD": PASSWORD}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    if trace is not None:  # bench/peer/tracing.py, installed by its sitecustomize
        trace.parent.mkdir(parents=True, exist_ok=True)
        site = Path(__file__).resolve().parent / "trace_site"
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(site.parents[2])])
        env["HM_TRACE_OUT"] = str(trace)
    exe = str(Path(sys.executable).with_name("heatmon"))
    return Service(
        "heatmon", [exe, "run", "--config", str(work / "heatmon.toml")], cwd=work, env=env
    )


def start_spy(out: Path, pid: int) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` until it exits (``--profile``)."""
    spy = str(Path(sys.executable).with_name("py-spy"))
    cmd = [spy, "record", "-r", "250", "--idle", "-f", "speedscope", "-o", str(out)]
    cmd += ["--pid", str(pid)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_nodered(
    work: Path, red: Path, *, broker: MosquittoBroker, influx_port: int, prefix: str, db: str
) -> Service:
    work.mkdir(parents=True, exist_ok=True)
    (work / "flows.json").write_text(
        json.dumps(
            nodered_flow(broker_port=broker.port, prefix=prefix, influx_port=influx_port, db=db)
        )
    )
    (work / "flows_cred.json").write_text(
        json.dumps({"f1broker": {"user": USER, "password": PASSWORD}, "f1influx": {}})
    )
    (work / "settings.js").write_text(
        "module.exports = { credentialSecret: false, uiHost: '127.0.0.1',"
        " logging: { console: { level: 'warn' } }, editorTheme: { tours: false } };\n"
    )
    port = free_port()
    cmd = ["node", str(red), "--userDir", str(work), "--settings", str(work / "settings.js")]
    cmd += ["--port", str(port), "flows.json"]
    return Service("nodered", cmd, cwd=work, env=dict(os.environ))
