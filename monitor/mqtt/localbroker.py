"""A local Mosquitto (Debian's ``/usr/sbin/mosquitto``) started from its own configuration:
a free port on loopback, a password file, an ACL, persistence in its own directory (so
``restart()`` keeps persistent sessions and their queued QoS 1 messages), optionally TLS.

Used by the test fixtures, the benchmark and ``heatmon demo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import HeatmonError
from monitor.netutil import free_port, stop_process, wait_for_port

log = logging.getLogger(__name__)


class LocalBrokerError(HeatmonError):
    """The local Mosquitto could not be started."""


def mosquitto_available() -> bool:
    return Path(MOSQUITTO).exists() and shutil.which(MOSQUITTO_PASSWD) is not None


MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


class MosquittoBroker:
    """One broker. ``start()`` / ``stop()`` / ``restart()`` keep port and persistence."""

    def __init__(
        self,
        *,
        workdir: Path,
        users: Mapping[str, str],
        acl: str,
        tls: TlsFiles | None = None,
        port: int | None = None,
        max_inflight: int = 100,
    ) -> None:
        """``max_inflight``: QoS 1 messages the broker sends a client before it waits for
        their PUBACKs (``max_inflight_messages``). heatmon acknowledges its input only once
        it is in the fsynced spool, so this window, not its CPU, bounds how many messages
        it takes per fsync."""
        self.workdir = workdir
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.tls = tls
        self.users = dict(users)
        self._proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "data").mkdir(exist_ok=True)
        passwd = workdir / "passwd"
        passwd.touch()
        for user, password in users.items():
            subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), user, password], check=True)
        (workdir / "acl").write_text(acl, encoding="utf-8")
        lines = [
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {passwd}",
            f"acl_file {workdir / 'acl'}",
            "persistence true",
            f"persistence_location {workdir / 'data'}/",
            "autosave_interval 1",
            "max_queued_messages 100000",
            f"max_inflight_messages {max_inflight}",
            f"log_dest file {workdir / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            lines.append(f"user {getpass.getuser()}")
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        assert not self.running, "broker already running"
        self._proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Its own session: a Ctrl-C in the terminal (SIGINT to the foreground process
            # group) reaches heatmon, which stops this broker after its sinks have drained.
            start_new_session=True,
        )
        try:
            wait_for_port(self.port, timeout_s=10.0, proc=self._proc)
        except (TimeoutError, ChildProcessError):
            self._proc.kill()
            _, err = self._proc.communicate()
            raise LocalBrokerError(f"mosquitto did not start: {err.decode()[-2000:]}") from None

    def stop(self) -> None:
        """Clean stop (SIGTERM): Mosquitto writes its persistence file on the way out."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        stop_process(proc, timeout_s=STOP_TIMEOUT_S)
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


@dataclass(frozen=True, slots=True)
class LocalBroker:
    """A broker the demo started: where it is and the logins it made (random passwords)."""

    host: str
    port: int
    monitor_user: str
    monitor_password: str
    viewer_user: str
    viewer_password: str


@contextlib.asynccontextmanager
async def local_mosquitto(
    workdir: Path, *, topic_prefix: str = "heatmon/v1"
) -> AsyncIterator[LocalBroker | None]:
    """Start a Mosquitto on loopback for the demo, or yield None when there is none.

    Two logins: the monitor (read/write under ``topic_prefix``) and a read-only viewer, each
    with a fresh random password; anonymous access is off.
    """
    if not mosquitto_available():
        log.info("no Mosquitto found (install Debian's mosquitto package for MQTT in the demo)")
        yield None
        return
    info = LocalBroker(
        host="127.0.0.1",
        port=free_port(),
        monitor_user="heatmon",
        monitor_password=secrets.token_urlsafe(12),
        viewer_user="viewer",
        viewer_password=secrets.token_urlsafe(12),
    )
    acl = (
        f"user {info.monitor_user}\ntopic readwrite {topic_prefix}/#\n"
        "topic readwrite homeassistant/#\n\n"
        f"user {info.viewer_user}\ntopic read {topic_prefix}/#\n"
    )

    def make() -> MosquittoBroker:
        shutil.rmtree(workdir, ignore_errors=True)
        broker = MosquittoBroker(
            workdir=workdir,
            users={
                info.monitor_user: info.monitor_password,
                info.viewer_user: info.viewer_password,
            },
            acl=acl,
            port=info.port,
        )
        broker.start()
        return broker

    try:
        broker = await asyncio.to_thread(make)
    except LocalBrokerError as err:
        log.warning("could not start a local Mosquitto: %s", err)
        yield None
        return
    try:
        yield info
    finally:
        await asyncio.to_thread(broker.stop)
