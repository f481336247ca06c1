"""Small network helpers for starting local servers (tests, benchmarks, the demo)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(
    port: int,
    *,
    timeout_s: float = 20.0,
    host: str = "127.0.0.1",
    proc: subprocess.Popen[Any] | None = None,
) -> None:
    """Block until something accepts TCP connections on ``host:port``; with ``proc`` (the
    server that is to listen there), raise :class:`ChildProcessError` as soon as it has
    exited (a port taken, a bad configuration) instead of waiting ``timeout_s`` out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise ChildProcessError(
                    f"the server for {host}:{port} exited ({proc.returncode})"
                ) from None
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on {host}:{port} after {timeout_s} s"
                ) from None
            time.sleep(0.05)


def stop_process(
    proc: subprocess.Popen[Any], *, timeout_s: float, sig: int = signal.SIGTERM
) -> None:
    """Ask a local server to stop with ``sig``; kill it if it has not within ``timeout_s``."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
