"""From a wearable's notification to samples: :class:`SampleIntake` decodes it
(:func:`adapters.ble.readings.decode`), stamps each reading (the device's time stamp when it
is plausible, else the arrival time on the source's clock), drops what is not newer than the
last sample of its kind from that device, closes the gap a reconnect left (``on_gap``),
counts it all in the device's :class:`~adapters.ble.readings.DeviceStats` and queues the
samples. It never raises for a bad payload: it counts and logs it. The connection (scan,
connect, subscribe, reconnect) is :mod:`adapters.ble.source`'s."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from adapters.ble.readings import DeviceStats, Reading, decode, short_uuid
from monitor.config import DeviceConfig
from monitor.errors import ParseError
from monitor.model import Sample, SampleKind

log = logging.getLogger(__name__)

SOURCE_NAME = "ble"
"""The source's name: ``[sources.ble]``, and the ``source`` of every sample it gives."""
MAX_CLOCK_AHEAD_S = 60.0
"""A device time stamp further ahead of our clock than this is not believed."""
MAX_STORED_AGE_S = 6 * 3600.0
"""A device time stamp older than this (stored measurements) is not believed."""
LOUD_PARSE_ERRORS = 10
"""The first parse errors of a device are logged as warnings, then every 100th."""

GapCallback = Callable[[str, str, float, float], None]
"""``on_gap(patient, device, start, end)``: data from ``device`` missing from start to end."""


@dataclass(slots=True)
class DeviceState:
    """What the source keeps of one wearable between notifications."""

    config: DeviceConfig
    stats: DeviceStats
    last_time: dict[SampleKind, float] = field(default_factory=dict)
    gap_open_since: float | None = None
    parse_error_log_budget: int = LOUD_PARSE_ERRORS


class SampleIntake:
    """Turns the notifications of a source's devices into samples on :attr:`queue` (while
    the source runs; dropped otherwise)."""

    def __init__(
        self,
        *,
        roles_of_patient: Mapping[str, set[str]],
        clock: Callable[[], float],
        on_gap: GapCallback | None,
    ) -> None:
        self._roles_of_patient = roles_of_patient
        self._clock = clock
        self._on_gap = on_gap
        self.queue: asyncio.Queue[Sample] | None = None

    def _decode(self, state: DeviceState, uuid: str, data: bytes, where: str) -> list[Reading]:
        return decode(
            uuid,
            data,
            where=where,
            role=state.config.role,
            patient_roles=self._roles_of_patient[state.config.patient],
        )

    def take(self, state: DeviceState, uuid: str, data: bytes) -> None:
        """Parse one notification and queue its samples; never raises."""
        stats = state.stats
        arrival = self._clock()
        where = f"{stats.address} {short_uuid(uuid)}"
        try:
            readings = self._decode(state, uuid, data, where)
        except ParseError as err:
            stats.parse_errors += 1
            stats.last_error = str(err)
            if state.parse_error_log_budget > 0 or stats.parse_errors % 100 == 0:
                state.parse_error_log_budget -= 1
                log.warning("ble: rejected payload (%d so far): %s", stats.parse_errors, err)
            return
        for reading in readings:
            self._emit_reading(state, reading, arrival)

    def _emit_reading(self, state: DeviceState, reading: Reading, arrival: float) -> None:
        stats = state.stats
        if not math.isfinite(reading.value):
            stats.no_value += 1
            return
        when = arrival
        if reading.device_time is not None:
            if arrival - MAX_STORED_AGE_S <= reading.device_time <= arrival + MAX_CLOCK_AHEAD_S:
                when = reading.device_time
            else:
                stats.untrusted_time += 1
        last = state.last_time.get(reading.kind)
        if last is not None and when <= last:
            stats.duplicates += 1
            log.debug(
                "ble %s: dropped %s at %.3f (not newer than %.3f)",
                stats.address,
                reading.kind,
                when,
                last,
            )
            return
        state.last_time[reading.kind] = when
        if reading.kind is SampleKind.BATTERY:
            stats.battery_percent = int(reading.value)
        else:  # gaps and timings are about the vital signs
            if state.gap_open_since is not None:
                start, state.gap_open_since = state.gap_open_since, None
                self._report_gap(state, start, when)
            if stats.connected_at is not None and stats.first_sample_after_connect_s is None:
                stats.first_sample_after_connect_s = time.monotonic() - stats.connected_at
            stats.last_sample_time = max(when, stats.last_sample_time or when)
        stats.samples += 1
        sample = Sample(
            patient=state.config.patient,
            kind=reading.kind,
            value=reading.value,
            time=when,
            device=stats.address,
            source=SOURCE_NAME,
            rr_intervals=reading.rr_intervals,
            sensor_contact=reading.sensor_contact,
        )
        if self.queue is not None:
            self.queue.put_nowait(sample)

    def _report_gap(self, state: DeviceState, start: float, end: float) -> None:
        stats = state.stats
        stats.gaps += 1
        stats.gap_seconds += max(0.0, end - start)
        log.warning(
            "ble %s: data gap of %.1f s for patient %s (%s) after a reconnect",
            stats.address,
            end - start,
            stats.patient,
            stats.role,
        )
        if self._on_gap is not None:
            try:
                self._on_gap(stats.patient, stats.address, start, end)
            except Exception:
                log.exception("ble: on_gap callback failed")
