"""Small built-in sinks. The big ones live in their own packages (storage, mqtt, web)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Self

from pydantic import ConfigDict, Field

from monitor.model import Acknowledgement, Event, SessionRecord, SymptomReport, iso_utc
from monitor.plugins import PluginContext, Sink, validate_options
from monitor.strict import StrictModel

log = logging.getLogger(__name__)


MAX_QUEUED = 10_000
"""Lines waiting for the writer; beyond, new ones are dropped and counted."""
MAX_BATCH = 500
"""Lines written (and flushed) at once."""
STOP_TIMEOUT_S = 5.0
"""How long ``stop()`` waits for the writer to drain the queue."""


class JsonlOptions(StrictModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(default="var/events.jsonl", min_length=1, max_length=4096)


class JsonlEventSink(Sink):
    """Sink "jsonl": appends every event and record to a JSON lines file (an audit trail).
    ``submit_*`` only encode and enqueue; a writer task appends the lines (in a worker
    thread, so a slow disk never stalls the engine) and flushes after each batch."""

    name = "jsonl"

    def __init__(self, *, path: Path, max_queued: int = MAX_QUEUED) -> None:
        self._path = path
        self._file: IO[str] | None = None
        self._max_queued = max_queued
        self._pending: deque[str] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.counters: dict[str, int] = {}

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        opts = validate_options(JsonlOptions, options, section="sinks.jsonl")
        return cls(path=Path(opts.path))

    async def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._path.open("a", encoding="utf-8")
        self._task = asyncio.create_task(self._writer(), name="jsonl-writer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    while self._pending and not task.done():
                        self._wake.set()
                        await asyncio.sleep(0.01)
            except TimeoutError:
                pass
            if self._pending:
                log.warning("jsonl: %d line(s) not written at stop", len(self._pending))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def _writer(self) -> None:
        """Write what is queued; a batch leaves the queue only once written (if writing
        raises, the task dies, the service restarts the sink and the lines are still here)."""
        while True:
            if not self._pending:
                await self._wake.wait()
                self._wake.clear()
                continue
            lines = list(itertools.islice(self._pending, MAX_BATCH))
            await asyncio.to_thread(self._append, lines)
            for _ in lines:
                self._pending.popleft()

    def _append(self, lines: list[str]) -> None:
        file = self._file
        if file is None:
            raise RuntimeError("jsonl sink file is closed")
        file.write("".join(lines))
        file.flush()

    def _write(self, obj: dict[str, object]) -> None:
        line = json.dumps(obj, ensure_ascii=False) + "\n"
        if len(self._pending) < self._max_queued:
            self._pending.append(line)
            self._wake.set()
        else:
            self.counters["dropped_full"] = self.counters.get("dropped_full", 0) + 1
            if self.counters["dropped_full"] == 1:
                log.warning("jsonl: queue full; dropping lines (counted)")

    def submit_event(self, event: Event) -> None:
        self._write(event.to_json_dict())

    def submit_record(self, record: SymptomReport | Acknowledgement | SessionRecord) -> None:
        if isinstance(record, SymptomReport):
            self._write(
                {
                    "kind": "symptom",
                    "time": iso_utc(record.time),
                    "patient": record.patient,
                    "session": record.session,
                    "core_delta_c": record.core_delta_c,
                    "note": record.note,
                }
            )
        elif isinstance(record, Acknowledgement):
            self._write(
                {
                    "kind": "ack",
                    "time": iso_utc(record.time),
                    "patient": record.patient,
                    "event_id": record.event_id,
                    "by": record.by,
                }
            )
        else:
            self._write(
                {
                    "kind": "session",
                    "patient": record.patient,
                    "session": record.session,
                    "start": iso_utc(record.start),
                    "stop": iso_utc(record.stop) if record.stop is not None else None,
                    "activity": record.activity,
                }
            )
