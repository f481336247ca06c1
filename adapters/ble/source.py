"""The ``ble`` source: Bluetooth wearables through bleak.

For every wearable in ``HeatmonConfig.devices`` the source keeps one task that, until
cancelled: scans for the device (filtered by the wearable services), connects (through
bleak-retry-connector's ``establish_connection``), discovers, reads the battery and the
body sensor location, subscribes to the measurement its role needs (notify or indicate)
and turns every notification into a :class:`~monitor.model.Sample`. When the link drops
it waits (:class:`~monitor.backoff.Backoff`, with jitter), scans, reconnects and
re-subscribes by itself.

- Roles: ``heart_rate`` reads 0x2A37; ``skin_temp`` reads HTS 0x2A1C (else ESS 0x2A6E,
  else HTS 0x2A1E); ``core`` reads the CORE service 0x2101 (else HTS 0x2A1C). A CORE also
  gives skin temperature (and heart rate from a paired strap) for a patient who wears no
  other device of that role. Every device gives battery samples.
- Times: the device's time stamp (HTS) when it has one and it is plausible, else the
  arrival time on a monotonic clock anchored to UTC (so a wall-clock step never reorders
  samples).
- No duplicates: per device and kind the source keeps the last emitted time and drops
  anything not newer (a thermometer re-sending stored measurements after a reconnect).
- Gaps: after a reconnect, the first new sample closes a gap that started at the last
  sample before the drop; the source logs it, counts it and calls ``on_gap(patient,
  device, start, end)``. The engine flags that next sample ``SampleFlag.GAP`` on its own.
- A malformed payload raises :class:`~monitor.errors.ParseError` in the parser; the source
  counts and logs it and goes on.

The backend classes (``scanner_backend`` / ``client_backend``) are passed to bleak as
``backend=`` and nothing else differs between real hardware and the virtual wearables.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import BaseBleakScanner
from bleak.backends.service import BleakGATTServiceCollection
from bleak.exc import BleakError
from bleak_retry_connector import BleakClientWithServiceCache, establish_connection

from adapters import gatt
from adapters.ble.options import (
    CONNECT_ATTEMPTS,
    CONNECT_TIMEOUT_S,
    RECONNECT_BASE_S,
    RECONNECT_MAX_S,
    SCAN_TIMEOUT_S,
    BleOptions,
)
from adapters.ble.readings import (
    CONNECT_SERVICES,
    ROLE_CHARACTERISTICS,
    DeviceStats,
    Reading,
    UtcMonotonicClock,
    decode,
    short_uuid,
)
from monitor.backoff import Backoff
from monitor.config import DeviceConfig, HeatmonConfig
from monitor.errors import ConfigError, HeatmonError, ParseError, SourceError
from monitor.model import Sample, SampleKind
from monitor.plugins import Emit, PluginContext, Source, validate_options

log = logging.getLogger(__name__)

SOURCE_NAME = "ble"
MAX_CLOCK_AHEAD_S = 60.0
"""A device time stamp further ahead of our clock than this is not believed."""
MAX_STORED_AGE_S = 6 * 3600.0
"""A device time stamp older than this (stored measurements) is not believed."""
LOUD_PARSE_ERRORS = 10
"""The first parse errors of a device are logged as warnings, then every 100th."""

GapCallback = Callable[[str, str, float, float], None]
"""``on_gap(patient, device, start, end)``: data from ``device`` missing from start to end."""


@dataclass(slots=True)
class _DeviceState:
    config: DeviceConfig
    stats: DeviceStats
    last_time: dict[SampleKind, float] = field(default_factory=dict)
    gap_open_since: float | None = None
    parse_error_log_budget: int = LOUD_PARSE_ERRORS


class BleSource(Source):
    """Samples from Bluetooth wearables (see the module docstring)."""

    name = SOURCE_NAME

    def __init__(
        self,
        *,
        devices: Sequence[DeviceConfig],
        scan_timeout_s: float = SCAN_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        connect_attempts: int = CONNECT_ATTEMPTS,
        reconnect_base_s: float = RECONNECT_BASE_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
        scanner_backend: type[BaseBleakScanner] | None = None,
        client_backend: type[BaseBleakClient] | None = None,
        on_gap: GapCallback | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not devices:
            raise ConfigError("sources.ble: no devices configured ([[devices]] is empty)")
        addresses = [d.address.upper() for d in devices]
        dupes = sorted({a for a in addresses if addresses.count(a) > 1})
        if dupes:
            raise ConfigError(f"devices: address listed twice: {', '.join(dupes)}")
        self._scan_timeout_s = scan_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._connect_attempts = connect_attempts
        self._reconnect_base_s = reconnect_base_s
        self._reconnect_max_s = reconnect_max_s
        self._scanner_backend = scanner_backend
        self._client_backend = client_backend
        self._on_gap = on_gap
        self._clock: Callable[[], float] = clock or UtcMonotonicClock()
        self._states = {
            d.address.upper(): _DeviceState(
                config=d,
                stats=DeviceStats(address=d.address.upper(), patient=d.patient, role=d.role),
            )
            for d in devices
        }
        roles: dict[str, set[str]] = {}
        for d in devices:
            roles.setdefault(d.patient, set()).add(d.role)
        self._roles_of_patient = roles
        self._queue: asyncio.Queue[Sample] | None = None

    @classmethod
    def from_options(
        cls,
        options: Mapping[str, Any],
        *,
        context: PluginContext,
        scanner_backend: type[BaseBleakScanner] | None = None,
        client_backend: type[BaseBleakClient] | None = None,
    ) -> Self:
        """The source as ``[sources.ble]`` and ``[[devices]]`` describe it. Gaps go to
        ``context.monitor.report_gap`` (a data-quality event). The backends are bleak's
        ``backend=`` (the virtual wearables' in tests); ``None`` is the platform's."""
        config = context.config
        if not isinstance(config, HeatmonConfig):
            raise ConfigError("sources.ble: needs the heatmon configuration (devices)")
        opts = validate_options(BleOptions, options, section="sources.ble")
        return cls(
            devices=config.devices,
            on_gap=gap_reporter(context),
            scanner_backend=scanner_backend,
            client_backend=client_backend,
            **opts.model_dump(),
        )

    @property
    def stats(self) -> Mapping[str, DeviceStats]:
        """Per device address, what happened so far (counters, battery, gaps)."""
        return {address: state.stats for address, state in self._states.items()}

    async def run(self, emit: Emit) -> None:
        queue: asyncio.Queue[Sample] = asyncio.Queue()
        self._queue = queue
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._deliver(queue, emit), name="ble-deliver")
                for address, state in self._states.items():
                    group.create_task(self._keep_connected(state), name=f"ble-{address}")
        finally:
            self._queue = None

    async def _deliver(self, queue: asyncio.Queue[Sample], emit: Emit) -> None:
        while True:
            sample = await queue.get()
            try:
                await emit(sample)
            except HeatmonError as err:
                log.warning("ble: a sample from %s was not taken: %s", sample.device, err)

    # --- connection lifetime -------------------------------------------------------------

    async def _keep_connected(self, state: _DeviceState) -> None:
        stats = state.stats
        backoff = Backoff(base_s=self._reconnect_base_s, max_s=self._reconnect_max_s)
        while True:
            try:
                got_data = await self._session(state)
            except (BleakError, TimeoutError, SourceError, OSError) as err:
                stats.failed_attempts += 1
                stats.last_error = str(err) or type(err).__name__
                log.warning(
                    "ble %s (%s of %s): %s",
                    stats.address,
                    stats.role,
                    stats.patient,
                    stats.last_error,
                )
                got_data = False
            if got_data:
                backoff.reset()
            delay = backoff.next_delay()
            log.info("ble %s: reconnecting in %.1f s", stats.address, delay)
            await asyncio.sleep(delay)

    async def _find(self, address: str) -> BLEDevice:
        kwargs: dict[str, Any] = {"service_uuids": list(gatt.WEARABLE_SERVICES)}
        if self._scanner_backend is not None:
            kwargs["backend"] = self._scanner_backend
        device = await BleakScanner.find_device_by_address(
            address, timeout=self._scan_timeout_s, **kwargs
        )
        if device is None:
            raise SourceError(
                f"{address}: not found within {self._scan_timeout_s:.0f} s of scanning"
            )
        return device

    async def _session(self, state: _DeviceState) -> bool:
        """One connection, from scan to drop. Returns whether any sample came through."""
        stats = state.stats
        address = stats.address
        ble_device = await self._find(address)
        dropped = asyncio.Event()
        kwargs: dict[str, Any] = {}
        if self._client_backend is not None:
            kwargs["backend"] = self._client_backend
        samples_before = stats.samples
        async with asyncio.timeout(self._connect_timeout_s):
            client = await establish_connection(
                BleakClientWithServiceCache,
                ble_device,
                address,  # what bleak-retry-connector logs: never a configured name
                disconnected_callback=lambda _client: dropped.set(),
                max_attempts=self._connect_attempts,
                services=list(CONNECT_SERVICES),
                **kwargs,
            )
        try:
            stats.connected = True
            stats.connects += 1
            stats.connected_at = time.monotonic()
            stats.first_sample_after_connect_s = None
            async with asyncio.timeout(self._connect_timeout_s):
                await self._subscribe(client, state)
            log.info(
                "ble %s: connected (%s of %s), subscribed to %s",
                address,
                stats.role,
                stats.patient,
                ", ".join(stats.subscribed),
            )
            await dropped.wait()
            stats.drops += 1
            log.warning("ble %s: link dropped", address)
        finally:
            stats.connected = False
            with contextlib.suppress(BleakError, TimeoutError, OSError):
                async with asyncio.timeout(5.0):
                    await client.disconnect()
            # the gap opens once the link is closed: a notification that still arrives while
            # it closes (a stop, a failed subscription) is data, not the end of a gap
            if state.gap_open_since is None:
                state.gap_open_since = stats.last_sample_time
        return stats.samples > samples_before

    async def _subscribe(self, client: BleakClient, state: _DeviceState) -> None:
        stats = state.stats
        services = client.services
        battery = services.get_characteristic(gatt.BATTERY_LEVEL)
        if battery is not None and "read" in battery.properties:
            try:
                raw = bytes(await client.read_gatt_char(battery))
                self._take(state, gatt.BATTERY_LEVEL, raw)
            except BleakError as err:
                log.debug("ble %s: battery read failed: %s", stats.address, err)
        location = services.get_characteristic(gatt.BODY_SENSOR_LOCATION)
        if location is not None:
            try:
                raw = bytes(await client.read_gatt_char(location))
                stats.body_location = gatt.parse_body_sensor_location(raw).name.lower()
            except (BleakError, ParseError) as err:
                log.debug("ble %s: body sensor location: %s", stats.address, err)
        wanted = self._characteristics_for(state, services)
        if not wanted:
            raise SourceError(
                f"{stats.address}: offers no characteristic for role {stats.role!r} "
                f"(services: {', '.join(gatt.SERVICE_NAMES.get(s.uuid, s.uuid) for s in services)})"
            )
        subscribed = []
        for char in [*wanted, *([battery] if battery and _can_notify(battery) else [])]:
            uuid = char.uuid

            def on_value(_char: BleakGATTCharacteristic, data: bytearray, uuid: str = uuid) -> None:
                self._take(state, uuid, bytes(data))

            await client.start_notify(char, on_value)
            subscribed.append(short_uuid(uuid))
        stats.subscribed = tuple(subscribed)

    def _characteristics_for(
        self, state: _DeviceState, services: BleakGATTServiceCollection
    ) -> list[BleakGATTCharacteristic]:
        for uuid in ROLE_CHARACTERISTICS[state.config.role]:
            char = services.get_characteristic(uuid)
            if char is not None and _can_notify(char):
                return [char]
        return []

    # --- from payload to sample ------------------------------------------------------------

    def _decode(self, state: _DeviceState, uuid: str, data: bytes, where: str) -> list[Reading]:
        return decode(
            uuid,
            data,
            where=where,
            role=state.config.role,
            patient_roles=self._roles_of_patient[state.config.patient],
        )

    def _take(self, state: _DeviceState, uuid: str, data: bytes) -> None:
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

    def _emit_reading(self, state: _DeviceState, reading: Reading, arrival: float) -> None:
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
        if self._queue is not None:
            self._queue.put_nowait(sample)

    def _report_gap(self, state: _DeviceState, start: float, end: float) -> None:
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


def gap_reporter(context: PluginContext) -> GapCallback:
    """An ``on_gap`` that hands the gap to the service (``context.monitor``, once it is set)
    as :meth:`monitor.service.Monitor.report_gap`: a data-quality event for the patient."""

    def on_gap(patient: str, device: str, start: float, end: float) -> None:
        if context.monitor is not None:
            context.monitor.report_gap(patient, device, start=start, end=end)

    return on_gap


def _can_notify(char: BleakGATTCharacteristic) -> bool:
    return "notify" in char.properties or "indicate" in char.properties
