"""The durable spool on a real file system: order, bounds, torn writes, restarts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from monitor.storage.spool import Spool


def batch(n: int) -> bytes:
    return f"m v={n}.0 {n}".encode()


def drain(spool: Spool) -> list[bytes]:
    out = []
    while (chunk := spool.read(max_points=1)) is not None:
        out.append(chunk.payload)
        spool.commit(chunk)
    return out


def test_batches_come_back_oldest_first_across_segments_and_restarts(tmp_path: Path) -> None:
    spool = Spool(directory=tmp_path, max_bytes=1 << 20, segment_bytes=4096, fsync=True)
    spool.open()
    for n in range(300):
        spool.append(batch(n), 1)
    assert len(list(tmp_path.glob("seg-*.lp"))) > 1
    first = [spool.read(max_points=1) for _ in range(1)]
    assert first[0] is not None and first[0].payload == batch(0)
    for _ in range(100):
        chunk = spool.read(max_points=1)
        assert chunk is not None
        spool.commit(chunk)
    spool.close()
    again = Spool(directory=tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    again.open()
    assert again.pending_points == 200
    assert drain(again) == [batch(n) for n in range(100, 300)]
    assert again.empty
    again.close()


def test_read_merges_records_up_to_max_points(tmp_path: Path) -> None:
    spool = Spool(directory=tmp_path)
    spool.open()
    for n in range(10):
        spool.append(b"\n".join([batch(n)] * 3), 3)
    chunk = spool.read(max_points=9)
    assert chunk is not None and chunk.points == 9 and chunk.records == 3
    spool.close()


def test_a_record_keeps_its_append_time_after_a_read_that_looked_past_it(
    tmp_path: Path,
) -> None:
    # the sender reads the batch after the one being written, then, once that write
    # returns, reads the same last record again: it must still know when it was appended,
    # or a partial batch is sent at once instead of waiting for more points
    spool = Spool(directory=tmp_path)
    spool.open()
    spool.append(batch(1), 1)
    spool.append(batch(2), 1)
    first = spool.read(max_points=1)
    assert first is not None and first.first_appended_at is not None
    ahead = spool.read(max_points=5, after=first.end)
    assert ahead is not None and ahead.payload == batch(2)
    assert ahead.first_appended_at is not None
    spool.commit(first)
    again = spool.read(max_points=5)
    assert again is not None and again.payload == batch(2)
    assert again.first_appended_at == ahead.first_appended_at
    spool.commit(again)
    assert spool.empty
    spool.close()


def test_a_torn_last_record_is_cut_off_on_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(directory=tmp_path)
    spool.open()
    for n in range(5):
        spool.append(batch(n), 1)
    spool.close()
    segment = next(tmp_path.glob("seg-*.lp"))
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # a crash in the middle of the last write
    with caplog.at_level(logging.WARNING):
        again = Spool(directory=tmp_path)
        again.open()
    assert "torn record" in caplog.text
    assert again.pending_points == 4
    again.append(batch(99), 1)
    assert drain(again) == [batch(n) for n in range(4)] + [batch(99)]


def test_a_full_spool_warns_then_drops_its_oldest_segment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(directory=tmp_path, max_bytes=64 * 1024, segment_bytes=8 * 1024, fsync=False)
    spool.open()
    with caplog.at_level(logging.WARNING):
        for n in range(100):
            spool.append(f"{n:04d}".encode() * 250, 1)
    text = "\n".join(caplog.messages)
    fill_warnings = [m for m in caplog.messages if "% full (" in m]
    assert len(fill_warnings) == 3  # at 50, 80 and 95 %, each once
    assert "is full" in text and "dropped its oldest" in text
    assert spool.disk_bytes <= 64 * 1024
    assert spool.dropped_points > 0
    assert spool.pending_points + spool.dropped_points == 100
    kept = drain(spool)
    assert kept == [f"{n:04d}".encode() * 250 for n in range(spool.dropped_points, 100)]


def test_read_cached_serves_what_is_in_memory_and_says_when_it_cannot(tmp_path: Path) -> None:
    spool = Spool(directory=tmp_path, fsync=False)
    spool.open()
    assert spool.read_cached(max_points=10) == (True, None)  # empty: known, nothing
    for n in range(5):
        spool.append(batch(n), 1)
    known, chunk = spool.read_cached(max_points=3)
    assert known and chunk is not None
    on_disk = spool.read(max_points=3)
    assert on_disk is not None
    assert (chunk.payload, chunk.points, chunk.end) == (
        on_disk.payload,
        on_disk.points,
        on_disk.end,
    )
    known, rest = spool.read_cached(max_points=10, after=chunk.end)
    assert known and rest is not None and rest.payload == b"\n".join(batch(n) for n in (3, 4))
    with spool._lock:  # an append under way (its fsync): the sender must not wait for it
        assert spool.read_cached(max_points=10) == (False, None)
    spool.close()
    again = Spool(directory=tmp_path, fsync=False)
    again.open()  # read back from disk: only read() has them
    assert again.read_cached(max_points=10) == (False, None)
    assert drain(again) == [batch(n) for n in range(5)]
    assert again.read_cached(max_points=10) == (True, None)
    again.close()


def test_commit_in_memory_only_when_no_disk_work_is_due_and_the_position_survives(
    tmp_path: Path,
) -> None:
    spool = Spool(directory=tmp_path, segment_bytes=4096, fsync=False)
    spool.open()
    for n in range(300):  # several segments
        spool.append(batch(n), 1)
    first = spool.read(max_points=1)
    assert first is not None
    spool.commit(first)  # the position was never saved: a thread's commit saves it
    second = spool.read(max_points=1)
    assert second is not None
    assert spool.commit_in_memory(second)  # saved just now, nothing to delete: in memory
    whole = spool.read(max_points=150)  # past the first segment's end: it must be deleted
    assert whole is not None and whole.end[0] > 0
    assert not spool.commit_in_memory(whole)
    spool.commit(whole)
    spool.close()
    again = Spool(directory=tmp_path, segment_bytes=4096, fsync=False)
    again.open()
    assert drain(again) == [batch(n) for n in range(152, 300)]
    again.close()
