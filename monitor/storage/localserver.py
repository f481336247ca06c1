"""A private InfluxDB 1.x (Debian's ``influxd``) on loopback, with its own data directory.

Used by the test fixture, the benchmark and the demo ("stores to a local InfluxDB when one
is present"), so all three start the server the same way. The server listens on
``127.0.0.1`` only, reports nothing home, and keeps meta, data and WAL under ``data_dir``;
``stop()`` then ``start()`` restarts it on the same port with the same data, which is what
the outage tests need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from monitor.errors import HeatmonError
from monitor.netutil import free_port, stop_process

log = logging.getLogger(__name__)

INFLUXD = "/usr/bin/influxd"
"""Where Debian's ``influxdb`` package puts the server."""
START_TIMEOUT_S = 30.0
"""How long ``start()`` waits for ``/ping`` to answer."""
STOP_TIMEOUT_S = 15.0
"""How long ``stop()`` waits after SIGTERM before it kills the server."""
POLL_S = 0.05
"""Interval between two ``/ping`` attempts while the server starts."""

_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"
  index-version = "inmem"

[coordinator]
  log-queries-after = "0s"

[retention]
  enabled = true

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0

[subscriber]
  enabled = false

[continuous_queries]
  enabled = true
  log-enabled = false
  run-interval = "1s"

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
"""


class LocalServerError(HeatmonError):
    """The local InfluxDB could not be started."""


def influxd_available(binary: str = INFLUXD) -> bool:
    return Path(binary).is_file() or shutil.which(binary) is not None


def ping(url: str, *, timeout_s: float = 1.0) -> str | None:
    """The server's version (``X-Influxdb-Version``) if ``url`` answers ``/ping``, else None."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout_s) as resp:
            version: str = resp.headers.get("X-Influxdb-Version", "")
            return version
    except (urllib.error.URLError, OSError, TimeoutError):
        return None


DEFAULT_URL = "http://127.0.0.1:8086"
"""Where the demo looks for an InfluxDB that is already running."""


@contextlib.asynccontextmanager
async def local_influxdb(
    data_dir: Path, *, url: str = DEFAULT_URL, binary: str = INFLUXD
) -> AsyncIterator[str | None]:
    """The URL of a local InfluxDB for the demo, or None when there is none.

    An InfluxDB already answering at ``url`` is used as it is; otherwise Debian's
    ``influxd`` is started on loopback with its data in ``data_dir`` (kept between runs)
    and stopped on exit.
    """
    if await asyncio.to_thread(ping, url) is not None:
        log.info("storing to the InfluxDB at %s", url)
        yield url
        return
    if not influxd_available(binary):
        log.info("no InfluxDB found (install Debian's influxdb package to store the demo)")
        yield None
        return
    server = InfluxServer(data_dir=data_dir, binary=binary)
    try:
        await asyncio.to_thread(server.start)
    except LocalServerError as err:
        log.warning("could not start a local InfluxDB: %s", err)
        yield None
        return
    try:
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)


class InfluxServer:
    """``influxd`` started from its own configuration file in ``data_dir``.

    Use as a context manager, or call :meth:`start` and :meth:`stop` (the data survives
    a stop; the port stays the same).
    """

    def __init__(self, *, data_dir: Path, port: int | None = None, binary: str = INFLUXD) -> None:
        self.data_dir = data_dir
        self.port = port if port is not None else free_port()
        self.rpc_port = free_port()
        self.binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "influxdb.conf"
        path.write_text(
            _CONFIG.format(
                root=self.data_dir.resolve(), http_port=self.port, rpc_port=self.rpc_port
            ),
            encoding="utf-8",
        )
        return path

    def start(self) -> None:
        """Start ``influxd`` and wait until ``/ping`` answers."""
        if self.running:
            return
        if not influxd_available(self.binary):
            raise LocalServerError(
                f"{self.binary} not found; install Debian's influxdb package (scripts/setup.sh)"
            )
        config = self._write_config()
        self._log_file = (self.data_dir / "influxd.log").open("ab")
        self._proc = subprocess.Popen(
            [self.binary, "-config", str(config)],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Its own session: a Ctrl-C in the terminal (SIGINT to the foreground process
            # group) reaches heatmon, which stops this server after its sinks have drained.
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while ping(self.url, timeout_s=0.5) is None:
            if self._proc.poll() is not None:
                self._close_log()
                raise LocalServerError(
                    f"influxd exited with {self._proc.returncode}; "
                    f"see {self.data_dir / 'influxd.log'}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise LocalServerError(f"influxd did not answer on {self.url}")
            time.sleep(POLL_S)
        log.info("local InfluxDB at %s (data in %s)", self.url, self.data_dir)

    def stop(self, *, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGTERM by default; pass ``signal.SIGKILL`` for a crash)."""
        proc = self._proc
        if proc is None:
            return
        stop_process(proc, timeout_s=STOP_TIMEOUT_S, sig=sig)
        self._proc = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
