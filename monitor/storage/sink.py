"""The ``influxdb`` sink: everything the engine produces, stored, surviving outages.

``submit_*`` only encode one line of line protocol and append it to a list: the engine
and the alerts never wait on storage. Two tasks do the rest:

- the *flusher* appends what is in the list to the durable :class:`Spool` every
  ``spool_interval_s`` (0.1 s by default; at once when ``batch_size`` points are waiting,
  or when someone awaits :meth:`InfluxSink.durable`), so a crash or SIGKILL of heatmon
  loses at most that much; a stop loses nothing. An input that must not be lost (an MQTT
  message) is acknowledged only after :meth:`InfluxSink.durable` returned: everything
  submitted before the call is then in the fsynced spool. Many callers share one append
  and one fsync;
- the *sender* sends the oldest spooled points as one batch (at most ``batch_size``) as
  soon as the previous write returned and the batch's first point lingered ``linger_s``
  (or, with ``flush_interval_s`` set, once the batch is full or that old), with up to
  ``max_in_flight`` writes under way while the spool holds more; it marks batches
  delivered in order (the spool's position never passes a batch not written); while
  InfluxDB is down or slow it backs off (:class:`monitor.backoff.Backoff`), sends again
  from the oldest batch not written, and points pile up in the spool.

A batch InfluxDB refuses (400/422) goes to the quarantine file (JSON lines with the
reason, size-capped and rotated: :class:`QuarantineFile`) and is never retried; a point
that cannot be written at all (a tag value with a line break) goes there too. A restart
resumes the spool where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from pydantic import ValidationError

from monitor.backoff import Backoff
from monitor.errors import ConfigError, HeatmonError, InputError
from monitor.model import (
    Acknowledgement,
    Event,
    Sample,
    SampleFlag,
    SessionRecord,
    SymptomReport,
    ThermalState,
)
from monitor.plugins import PluginContext, Sink
from monitor.storage import lineprotocol as lp
from monitor.storage.handoff import HandOff
from monitor.storage.options import InfluxOptions
from monitor.storage.quarantine import QuarantineFile
from monitor.storage.spool import Chunk, Spool
from monitor.storage.writer import InfluxWriter, WriteError

log = logging.getLogger(__name__)

RETRY_BASE_S = 0.2
"""First wait after a failed write."""
RETRY_MAX_S = 10.0
"""Longest wait between two write attempts while InfluxDB is down."""
OUTAGE_LOG_INTERVAL_S = 30.0
"""While InfluxDB stays unreachable, the sink repeats its warning this often."""

_Item = TypeVar("_Item")


async def _first_of(
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


def _flagged_sample_line(item: tuple[Sample, SampleFlag], precision: lp.Precision) -> str:
    return lp.sample_line(item[0], item[1], precision)


class InfluxSink(Sink):
    """Stores samples, thermal state, alerts, acknowledgements, sessions and symptoms."""

    name = "influxdb"

    def __init__(self, *, options: InfluxOptions, data_dir: Path) -> None:
        self.options = options
        spool_dir = Path(options.spool_dir) if options.spool_dir else data_dir / "spool"
        self.quarantine = QuarantineFile(
            path=(
                Path(options.quarantine_file)
                if options.quarantine_file
                else data_dir / "quarantine.jsonl"
            ),
            max_bytes=options.quarantine_max_bytes,
            keep=options.quarantine_keep,
        )
        self.spool = Spool(
            directory=spool_dir, max_bytes=options.spool_max_bytes, fsync=options.spool_fsync
        )
        self.writer = InfluxWriter(options=options)
        self.stats = SinkStats()
        self._buffer: list[str] = []
        self._handoff = HandOff()
        """Lines put in ``_buffer`` (first in, first out) and lines appended to the spool."""
        self._rejected: list[tuple[str, str]] = []
        self._full = asyncio.Event()
        self._spooled = asyncio.Event()
        self._send_now = asyncio.Event()
        self._draining = 0
        self._delivered = asyncio.Event()
        self._stopping = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._outage_since: float | None = None
        self._outage_logged_at = 0.0
        self._downsample_done = False

    @property
    def quarantine_path(self) -> Path:
        return self.quarantine.path

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        try:
            parsed = InfluxOptions.model_validate(dict(options))
        except ValidationError as err:
            problems = "; ".join(
                f"sinks.influxdb.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in err.errors()
            )
            raise ConfigError(problems) from err
        monitor_cfg = getattr(context.config, "monitor", None)
        base = Path(getattr(monitor_cfg, "data_dir", "var"))
        return cls(options=parsed, data_dir=base / "influxdb")

    # -- lifetime ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await asyncio.to_thread(self.spool.open)
        self.stats.spooled = self.spool.pending_points
        await self.writer.start()
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="influxdb-flush"),
            asyncio.create_task(self._send_loop(), name="influxdb-send"),
        ]
        if self.spool.pending_points:
            self._spooled.set()

    async def stop(self) -> None:
        """Spool what is buffered, try to deliver for ``stop_timeout_s``, then stop; what
        is still spooled is sent at the next start."""
        if not self._tasks:
            return
        flusher, sender = self._tasks
        async with self._flush_lock:  # never cancel the flusher in the middle of an append
            flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        await self._flush_buffer()
        if not await self.drain(timeout_s=self.options.stop_timeout_s):
            log.warning(
                "InfluxDB sink stops with %d points in the spool %s; they are sent at the "
                "next start",
                self.spool.pending_points,
                self.spool.directory,
            )
        self._stopping.set()
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        self._tasks = []
        await self.writer.close()
        await asyncio.to_thread(self.spool.close)

    async def drain(self, *, timeout_s: float) -> bool:
        """Spool what is buffered and wait until the spool is delivered (sending at once,
        without waiting for a full batch); False on timeout."""
        await self._flush_buffer()
        self._draining += 1
        self._send_now.set()
        try:
            async with asyncio.timeout(timeout_s):
                while not self.spool.empty:
                    self._delivered.clear()
                    await self._delivered.wait()
        except TimeoutError:
            return False
        finally:
            self._draining -= 1
        return True

    async def durable(self) -> None:
        """Return once everything submitted before this call is in the spool (fsynced unless
        ``spool_fsync = false``) or quarantined: safe to acknowledge the input it came from.
        Callers that wait together share one append and one fsync. While the spool cannot
        be written this waits (the input stays unacknowledged, so nothing is lost)."""
        waiter = self._handoff.pending()
        if waiter is not None:
            self._full.set()  # the flusher spools now instead of at its next interval
            await waiter

    # -- submit (never blocks, never raises) -------------------------------------------

    def _add(self, make: Callable[[_Item, lp.Precision], str], item: _Item) -> None:
        self.stats.submitted += 1
        try:
            line = make(item, self.options.precision)
        except InputError as err:
            self._rejected.append((err.reason, repr(item)[:2000]))
            return
        except (TypeError, ValueError, AttributeError) as err:  # never raise into the engine
            self._rejected.append((f"{type(err).__name__}: {err}", repr(item)[:2000]))
            return
        self._buffer.append(line)
        self._handoff.took()
        if len(self._buffer) >= self.options.batch_size:
            self._full.set()

    def submit_sample(self, sample: Sample, flag: SampleFlag) -> None:
        if flag is SampleFlag.DUPLICATE:
            # a copy of a reading already taken (sent or delivered again): the first copy
            # is the stored point; writing this one would overwrite it with its flag
            self.stats.duplicates_not_stored += 1
            return
        self._add(_flagged_sample_line, (sample, flag))

    def submit_samples(self, samples: Sequence[Sample], flags: Sequence[SampleFlag]) -> None:
        """A gateway's batch: its line protocol built in one pass, appended at once."""
        kept: list[Sample] = []
        kept_flags: list[SampleFlag] = []
        for sample, flag in zip(samples, flags, strict=True):
            if flag is SampleFlag.DUPLICATE:  # as in submit_sample
                self.stats.duplicates_not_stored += 1
            else:
                kept.append(sample)
                kept_flags.append(flag)
        try:
            lines = lp.sample_lines(kept, kept_flags, self.options.precision)
        except (TypeError, ValueError, AttributeError):  # a malformed sample: one at a time
            for sample, flag in zip(kept, kept_flags, strict=True):
                self._add(_flagged_sample_line, (sample, flag))
            return
        self.stats.submitted += len(kept)
        taken = 0
        for sample, line in zip(kept, lines, strict=True):
            if isinstance(line, InputError):
                self._rejected.append((line.reason, repr(sample)[:2000]))
            else:
                self._buffer.append(line)
                taken += 1
        self._handoff.took(taken)
        if len(self._buffer) >= self.options.batch_size:
            self._full.set()

    def submit_state(self, state: ThermalState) -> None:
        self._add(lp.state_line, state)

    def submit_event(self, event: Event) -> None:
        self._add(lp.event_line, event)

    def submit_record(self, record: SymptomReport | Acknowledgement | SessionRecord) -> None:
        self._add(lp.record_line, record)

    # -- flusher -------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        interval = min(
            self.options.spool_interval_s,
            self.options.flush_interval_s or self.options.spool_interval_s,
        )
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._full.wait()
            self._full.clear()
            await self._flush_buffer()

    async def _flush_buffer(self) -> None:
        async with self._flush_lock:
            rejected, self._rejected = self._rejected, []
            for reason, item in rejected:
                await self._quarantine(f"cannot encode: {reason}", item, 1)
            size = self.options.batch_size
            while self._buffer:
                part = self._buffer[:size]
                payload = "\n".join(part).encode()
                try:
                    await asyncio.to_thread(self.spool.append, payload, len(part))
                except OSError as err:
                    log.error(
                        "cannot append to the InfluxDB spool %s (%s); keeping %d points in "
                        "memory and trying again",
                        self.spool.directory,
                        err,
                        len(self._buffer),
                    )
                    return
                del self._buffer[: len(part)]
                self._handoff.kept(len(part))
                self.stats.spooled = self.spool.pending_points
                self.stats.spool_dropped = self.spool.dropped_points
                self._spooled.set()
                if self.spool.pending_points >= size:
                    self._send_now.set()

    # -- sender --------------------------------------------------------------------------

    async def _send_loop(self) -> None:
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
                    await _first_of(delay, self._stopping)
                    continue
                if len(in_flight) >= self.options.max_in_flight:
                    await asyncio.wait([in_flight[0][1]])
                    continue
                self._send_now.clear()
                self._spooled.clear()
                after = in_flight[-1][0].end if in_flight else None
                chunk = await asyncio.to_thread(
                    self.spool.read, max_points=self.options.batch_size, after=after
                )
                head = in_flight[0][1] if in_flight else None
                if chunk is None:
                    if head is None:
                        self._delivered.set()
                        if self.spool.empty:
                            await self._spooled.wait()
                    else:
                        await _first_of(None, self._spooled, task=head)
                    continue
                hold_s = self._hold_s(chunk, busy=head is not None)
                if hold_s > 0:  # not a full batch yet: let more points join it
                    await _first_of(hold_s, self._send_now, task=head)
                    continue
                task = asyncio.create_task(
                    self._deliver(chunk.payload, chunk.points), name="influxdb-write"
                )
                in_flight.append((chunk, task))
        finally:
            for _, task in in_flight:
                task.cancel()

    async def _written(self, chunk: Chunk, backoff: Backoff) -> None:
        await asyncio.to_thread(self.spool.commit, chunk)
        self.stats.spooled = self.spool.pending_points
        self.stats.batches_written += 1
        backoff.reset()
        self._note_recovery()
        if self.options.downsample and not self._downsample_done:
            await self._set_up_downsampling()
        self._delivered.set()

    def _hold_s(self, chunk: Chunk, *, busy: bool) -> float:
        """How long to wait for more points before sending ``chunk``; 0 to send now.
        ``busy``: a write is under way (a partial batch then waits for it)."""
        if (
            chunk.points >= self.options.batch_size
            or chunk.first_appended_at is None  # spooled before a restart
            or self._draining
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
                await self._quarantine(str(err), payload.decode(), points)
                return
            if err.action == "split":
                lines = payload.split(b"\n")
                if len(lines) == 1:
                    await self._quarantine(str(err), payload.decode(), 1)
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

    async def _quarantine(self, reason: str, lines: str, points: int) -> None:
        self.stats.quarantined += points
        log.error(
            "%d points quarantined, not retried (%s); kept in %s",
            points,
            reason[:200],
            self.quarantine.path,
        )
        try:
            await asyncio.to_thread(self.quarantine.add, reason=reason, lines=lines, points=points)
        except OSError as err:
            log.error("cannot write the quarantine file %s: %s", self.quarantine.path, err)
