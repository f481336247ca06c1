"""The InfluxDB sink's sender: the durable spool to InfluxDB, oldest first.

:class:`SpoolSender` sends the oldest spooled points as one batch (at most ``batch_size``)
as soon as the previous write returned and the batch's first point lingered ``linger_s``
(or, with ``flush_interval_s`` set, once the batch is full or that old), with up to
``max_in_flight`` writes under way while the spool holds more; it marks batches delivered
in order (the spool's position never passes a batch not written); while InfluxDB is down or
slow it backs off (:class:`monitor.backoff.Backoff`), sends again from the oldest batch not
written, and points pile up in the spool. A batch InfluxDB refuses (400/422) goes to the
quarantine file (:class:`QuarantineFile`) and is never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from monitor.backoff import Backoff
from monitor.errors import HeatmonError
from monitor.storage.options import InfluxOptions
from monitor.storage.quarantine import QuarantineFile
from monitor.storage.segments import Chunk
from monitor.storage.spool import Spool
from monitor.storage.writer import InfluxWriter, WriteError

log = logging.getLogger(__name__)

RETRY_BASE_S = 0.2
"""First wait after a failed write."""
RETRY_MAX_S = 10.0
"""Longest wait between two write attempts while InfluxDB is down."""
OUTAGE_LOG_INTERVAL_S = 30.0
"""While InfluxDB stays unreachable, the sink repeats its warning this often."""


async def first_of(
    timeout_s: float | None, event: asyncio.Event, *, task: asyncio.Task[None] | None = None
) -> None:
    """Wait until ``event`` is set, ``task`` (left running) is done, or ``timeout_s``."""
    waiter = asyncio.ensure_future(event.wait())
    waits: set[asyncio.Future[Any]] = {waiter}
    if task is not None:
        waits.add(task)
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


@dataclass(slots=True)
class SinkStats:
    """Counters of the InfluxDB sink (points unless named otherwise)."""

    submitted: int = 0
    written: int = 0
    quarantined: int = 0
    batches_written: int = 0
    write_failures: int = 0
    spool_dropped: int = 0
    spooled: int = 0
    duplicates_not_stored: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class SpoolSender:
    """Sends what the spool holds; the sink's flusher sets :attr:`spooled` after each
    append (and :attr:`send_now` when a full batch waits or someone drains)."""

    def __init__(
        self,
        *,
        options: InfluxOptions,
        spool: Spool,
        writer: InfluxWriter,
        quarantine: QuarantineFile,
        stats: SinkStats,
    ) -> None:
        self.options = options
        self.spool = spool
        self.writer = writer
        self.quarantine_file = quarantine
        self.stats = stats
        self.spooled = asyncio.Event()
        self.send_now = asyncio.Event()
        self.delivered = asyncio.Event()
        self.stopping = asyncio.Event()
        self.draining = 0
        self._outage_since: float | None = None
        self._outage_logged_at = 0.0
        self._downsample_done = False

    async def run(self) -> None:
        backoff = Backoff(base_s=RETRY_BASE_S, max_s=RETRY_MAX_S)
        in_flight: deque[tuple[Chunk, asyncio.Task[None]]] = deque()
        try:
            while True:
                if in_flight and in_flight[0][1].done():
                    done, task = in_flight.popleft()
                    err = task.exception()
                    if err is None:
                        await self._written(done, backoff)
                        continue
                    if not isinstance(err, WriteError):
                        raise err
                    # retry from the oldest batch not written; the ones sent after it may
                    # be written again, which overwrites the same points (nothing twice)
                    for _, later in in_flight:
                        with contextlib.suppress(Exception):
                            await later
                    in_flight.clear()
                    self.stats.write_failures += 1
                    self._note_outage(err, done)
                    delay = err.retry_after_s if err.retry_after_s is not None else 0.0
                    delay = max(delay, backoff.next_delay())
                    await first_of(delay, self.stopping)
                    continue
                if len(in_flight) >= self.options.max_in_flight:
                    await asyncio.wait([in_flight[0][1]])
                    continue
                self.send_now.clear()
                self.spooled.clear()
                after = in_flight[-1][0].end if in_flight else None
                size = self.options.batch_size
                known, chunk = self.spool.read_cached(max_points=size, after=after)
                if not known:  # on disk (a restart, an outage), or an append holds the lock
                    chunk = await asyncio.to_thread(self.spool.read, max_points=size, after=after)
                head = in_flight[0][1] if in_flight else None
                if chunk is None:
                    if head is None:
                        self.delivered.set()
                        if self.spool.empty:
                            await self.spooled.wait()
                    else:
                        await first_of(None, self.spooled, task=head)
                    continue
                hold_s = self._hold_s(chunk, busy=head is not None)
                if hold_s > 0:  # not a full batch yet: let more points join it
                    await first_of(hold_s, self.send_now, task=head)
                    continue
                task = asyncio.create_task(
                    self._deliver(chunk.payload, chunk.points), name="influxdb-write"
                )
                in_flight.append((chunk, task))
        finally:
            for _, task in in_flight:
                task.cancel()

    async def _written(self, chunk: Chunk, backoff: Backoff) -> None:
        if not self.spool.commit_in_memory(chunk):  # a segment to delete, the position due
            await asyncio.to_thread(self.spool.commit, chunk)
        self.stats.spooled = self.spool.pending_points
        self.stats.batches_written += 1
        backoff.reset()
        self._note_recovery()
        if self.options.downsample and not self._downsample_done:
            await self._set_up_downsampling()
        self.delivered.set()

    def _hold_s(self, chunk: Chunk, *, busy: bool) -> float:
        """How long to wait for more points before sending ``chunk``; 0 to send now.
        ``busy``: a write is under way (a partial batch then waits for it)."""
        if (
            chunk.points >= self.options.batch_size
            or chunk.first_appended_at is None  # spooled before a restart
            or self.draining
        ):
            return 0.0
        flush_interval_s = self.options.flush_interval_s
        if flush_interval_s is not None:
            return chunk.first_appended_at + flush_interval_s - time.monotonic()
        if busy:
            return RETRY_MAX_S  # until the write under way returns (or a batch is full)
        return chunk.first_appended_at + self.options.linger_s - time.monotonic()

    async def _deliver(self, payload: bytes, points: int) -> None:
        """Write, quarantine (drop) or split; raise :class:`WriteError` to retry later."""
        try:
            await self.writer.write(payload)
        except WriteError as err:
            if err.action == "drop":
                await self.quarantine(str(err), payload.decode(), points)
                return
            if err.action == "split":
                lines = payload.split(b"\n")
                if len(lines) == 1:
                    await self.quarantine(str(err), payload.decode(), 1)
                    return
                half = len(lines) // 2
                await self._deliver(b"\n".join(lines[:half]), half)
                await self._deliver(b"\n".join(lines[half:]), len(lines) - half)
                return
            raise
        self.stats.written += points

    async def _set_up_downsampling(self) -> None:
        """Create the one-minute continuous queries (InfluxDB 1.x only; 2.x uses a task)."""
        self._downsample_done = True
        if self.writer.api != "v1":
            log.info("downsample: on InfluxDB 2.x/3.x install docs/influxdb2-downsample.flux")
            return
        from monitor.storage.downsample import ensure_continuous_queries
        from monitor.storage.query import HeatmonStore

        try:
            await asyncio.to_thread(
                ensure_continuous_queries, HeatmonStore.from_options(self.options)
            )
        except HeatmonError as err:
            log.warning("could not create the one-minute continuous queries: %s", err)

    def _note_outage(self, err: WriteError, chunk: Chunk) -> None:
        now = time.monotonic()
        if self._outage_since is None:
            self._outage_since = now
            self._outage_logged_at = now
            log.warning("InfluxDB write failed (%s); points are kept in the spool and retried", err)
        elif now - self._outage_logged_at >= OUTAGE_LOG_INTERVAL_S:
            self._outage_logged_at = now
            log.warning(
                "InfluxDB still failing after %.0f s (%s); %d points waiting in the spool",
                now - self._outage_since,
                err,
                self.spool.pending_points,
            )
        log.debug("batch of %d points not written: %s", chunk.points, err)

    def _note_recovery(self) -> None:
        if self._outage_since is not None:
            log.info(
                "InfluxDB writes work again after %.1f s; %d points still to replay",
                time.monotonic() - self._outage_since,
                self.spool.pending_points,
            )
            self._outage_since = None

    async def quarantine(self, reason: str, lines: str, points: int) -> None:
        self.stats.quarantined += points
        log.error(
            "%d points quarantined, not retried (%s); kept in %s",
            points,
            reason[:200],
            self.quarantine_file.path,
        )
        try:
            await asyncio.to_thread(
                self.quarantine_file.add, reason=reason, lines=lines, points=points
            )
        except OSError as err:
            log.error("cannot write the quarantine file %s: %s", self.quarantine_file.path, err)
