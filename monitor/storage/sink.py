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
- the *sender* (:class:`~monitor.storage.sender.SpoolSender`, its own module) sends the
  spool to InfluxDB oldest first, pipelined, committed in order, backing off while
  InfluxDB is down.

A batch InfluxDB refuses (400/422) goes to the quarantine file (JSON lines with the
reason, size-capped and rotated: :class:`QuarantineFile`) and is never retried; a point
that cannot be written at all (a tag value with a line break) goes there too. A restart
resumes the spool where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

from monitor.errors import InputError
from monitor.model import (
    Acknowledgement,
    Event,
    Sample,
    SampleFlag,
    SessionRecord,
    SymptomReport,
    ThermalState,
)
from monitor.plugins import PluginContext, Sink, validate_options
from monitor.storage import lineprotocol as lp
from monitor.storage.handoff import HandOff
from monitor.storage.options import InfluxOptions
from monitor.storage.quarantine import QuarantineFile
from monitor.storage.sender import SinkStats, SpoolSender
from monitor.storage.spool import Spool
from monitor.storage.writer import InfluxWriter

log = logging.getLogger(__name__)

__all__ = ["InfluxSink", "SinkStats"]

_Item = TypeVar("_Item")


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
        self.stats = SinkStats()
        self.sender = SpoolSender(
            options=options,
            spool=self.spool,
            writer=InfluxWriter(options=options),
            quarantine=self.quarantine,
            stats=self.stats,
        )
        self._buffer: list[str] = []
        self._handoff = HandOff()
        """Lines put in ``_buffer`` (first in, first out) and lines appended to the spool."""
        self._rejected: list[tuple[str, str]] = []
        self._full = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def writer(self) -> InfluxWriter:
        """What sends to InfluxDB (the sender's)."""
        return self.sender.writer

    @writer.setter
    def writer(self, writer: InfluxWriter) -> None:
        self.sender.writer = writer

    @property
    def quarantine_path(self) -> Path:
        return self.quarantine.path

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        parsed = validate_options(InfluxOptions, options, section="sinks.influxdb")
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
            self.sender.spooled.set()

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
        self.sender.stopping.set()
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
        self.sender.draining += 1
        self.sender.send_now.set()
        try:
            async with asyncio.timeout(timeout_s):
                while not self.spool.empty:
                    self.sender.delivered.clear()
                    await self.sender.delivered.wait()
        except TimeoutError:
            return False
        finally:
            self.sender.draining -= 1
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

    async def _send_loop(self) -> None:
        """The sender's loop, as a task of this sink (the service's guard watches, and
        restarts, the tasks whose coroutine is a method of the sink)."""
        await self.sender.run()

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
                await self.sender.quarantine(f"cannot encode: {reason}", item, 1)
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
                self.sender.spooled.set()
                if self.spool.pending_points >= size:
                    self.sender.send_now.set()

    # -- sender --------------------------------------------------------------------------
