"""The quarantine file stays bounded: size-capped rotation on a real file system."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from monitor.plugins import PluginContext
from monitor.storage.quarantine import QuarantineFile
from monitor.storage.sink import InfluxSink


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_the_file_rotates_at_its_cap_and_keeps_the_newest_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    q = QuarantineFile(path=tmp_path / "quarantine.jsonl", max_bytes=4096, keep=2)
    with caplog.at_level(logging.WARNING):
        for n in range(100):
            q.add(
                reason=f"HTTP 400: bad {n}",
                lines=f"vitals,patient=p value={n}.0 {n}" * 10,
                points=1,
            )
    assert q.files() == [q.path, q.rotated(1), q.rotated(2)]
    assert not q.rotated(3).exists()
    assert all(p.stat().st_size <= 4096 for p in q.files())
    kept = [r["reason"] for p in reversed(q.files()) for r in records(p)]
    # the newest records, in order, without a gap; the oldest were deleted
    assert kept == [f"HTTP 400: bad {n}" for n in range(100 - len(kept), 100)]
    assert 10 < len(kept) < 100
    assert q.rotations > 2
    assert "rotated" in caplog.text


def test_a_record_larger_than_the_cap_keeps_its_head(tmp_path: Path) -> None:
    q = QuarantineFile(path=tmp_path / "q.jsonl", max_bytes=4096, keep=1)
    lines = "\n".join(f'symptoms,patient=p-ü note="{"x" * 40}" {n}' for n in range(500))
    q.add(reason="HTTP 400: partial write", lines=lines, points=500)
    assert q.path.stat().st_size <= 4096
    (record,) = records(q.path)
    assert record["truncated"] is True
    assert record["points"] == 500
    assert isinstance(record["lines"], str) and lines.startswith(record["lines"])
    assert len(record["lines"]) > 3000


def test_the_sink_takes_the_cap_from_its_options(tmp_path: Path) -> None:
    sink = InfluxSink.from_options(
        {
            "quarantine_max_bytes": 65536,
            "quarantine_keep": 5,
            "quarantine_file": str(tmp_path / "q"),
        },
        context=PluginContext(config=None, instance="t"),
    )
    assert (sink.quarantine.path, sink.quarantine.max_bytes, sink.quarantine.keep) == (
        tmp_path / "q",
        65536,
        5,
    )
