"""Small built-in sinks. The big ones live in their own packages (storage, mqtt, web)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from monitor.errors import ConfigError
from monitor.model import Acknowledgement, Event, SessionRecord, SymptomReport, iso_utc
from monitor.plugins import PluginContext, Sink

log = logging.getLogger(__name__)


class JsonlOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = "var/events.jsonl"


class JsonlEventSink(Sink):
    """Sink "jsonl": appends every event and record to a JSON lines file (an audit trail)."""

    name = "jsonl"

    def __init__(self, *, path: Path) -> None:
        self._path = path
        self._file: IO[str] | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, context: PluginContext) -> Self:
        try:
            opts = JsonlOptions.model_validate(options)
        except ValidationError as err:
            raise ConfigError(f"sinks.jsonl: {err.errors()[0]['msg']}") from err
        return cls(path=Path(opts.path))

    async def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._path.open("a", encoding="utf-8")

    async def stop(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, obj: dict[str, object]) -> None:
        if self._file is None:
            log.warning("jsonl sink not started; dropping a %s", obj.get("kind"))
            return
        self._file.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._file.flush()

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
