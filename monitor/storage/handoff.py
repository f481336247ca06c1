"""A first-in-first-out hand-off mark: how much has been taken, how much is safely kept, and
a way to wait until everything taken so far is kept.

The InfluxDB sink takes lines into memory and appends them, in order, to the fsynced spool;
an input (an MQTT message) may be acknowledged only once its lines are there. Waiters only
compare counters, so any number of them share one append and one fsync.
"""

from __future__ import annotations

import asyncio


class HandOff:
    """``took(n)`` as items are taken, ``kept(n)`` as the oldest of them are kept durably;
    ``await wait()`` returns once everything taken before the call is kept."""

    __slots__ = ("_kept", "_taken", "_waiters")

    def __init__(self) -> None:
        self._taken = 0
        self._kept = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def behind(self) -> int:
        """Items taken but not yet kept."""
        return self._taken - self._kept

    def took(self, n: int = 1) -> None:
        self._taken += n

    def kept(self, n: int) -> None:
        self._kept += n
        if not self._waiters:
            return
        waiting = []
        for mark, waiter in self._waiters:
            if waiter.done():  # cancelled: its caller went away
                continue
            if mark <= self._kept:
                waiter.set_result(None)
            else:
                waiting.append((mark, waiter))
        self._waiters = waiting

    def pending(self) -> asyncio.Future[None] | None:
        """None if everything taken so far is kept; else a future that is done once it is."""
        if self._kept >= self._taken:
            return None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._taken, waiter))
        return waiter
