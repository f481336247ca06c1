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

This module holds the plugin and the connection's lifetime; what becomes of a notification
(times, duplicates, gaps, parse errors) is :mod:`adapters.ble.intake`'s, the options
:mod:`adapters.ble.options`', the characteristics and their decoding
:mod:`adapters.ble.readings`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
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
from adapters.ble.intake import SOURCE_NAME, DeviceState, GapCallback, SampleIntake
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
    UtcMonotonicClock,
    short_uuid,
)
from monitor.backoff import Backoff
from monitor.config import DeviceConfig, HeatmonConfig
from monitor.errors import ConfigError, HeatmonError, ParseError, SourceError
from monitor.model import Sample
from monitor.plugins import Emit, PluginContext, Source, validate_options

log = logging.getLogger(__name__)


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
        self._states = {
            d.address.upper(): DeviceState(
                config=d,
                stats=DeviceStats(address=d.address.upper(), patient=d.patient, role=d.role),
            )
            for d in devices
        }
        roles: dict[str, set[str]] = {}
        for d in devices:
            roles.setdefault(d.patient, set()).add(d.role)
        self._intake = SampleIntake(
            roles_of_patient=roles, clock=clock or UtcMonotonicClock(), on_gap=on_gap
        )

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
        self._intake.queue = queue
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._deliver(queue, emit), name="ble-deliver")
                for address, state in self._states.items():
                    group.create_task(self._keep_connected(state), name=f"ble-{address}")
        finally:
            self._intake.queue = None

    async def _deliver(self, queue: asyncio.Queue[Sample], emit: Emit) -> None:
        while True:
            sample = await queue.get()
            try:
                await emit(sample)
            except HeatmonError as err:
                log.warning("ble: a sample from %s was not taken: %s", sample.device, err)

    # --- connection lifetime -------------------------------------------------------------

    async def _keep_connected(self, state: DeviceState) -> None:
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

    async def _session(self, state: DeviceState) -> bool:
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

    async def _subscribe(self, client: BleakClient, state: DeviceState) -> None:
        stats = state.stats
        services = client.services
        battery = services.get_characteristic(gatt.BATTERY_LEVEL)
        if battery is not None and "read" in battery.properties:
            try:
                raw = bytes(await client.read_gatt_char(battery))
                self._intake.take(state, gatt.BATTERY_LEVEL, raw)
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
                self._intake.take(state, uuid, bytes(data))

            await client.start_notify(char, on_value)
            subscribed.append(short_uuid(uuid))
        stats.subscribed = tuple(subscribed)

    def _characteristics_for(
        self, state: DeviceState, services: BleakGATTServiceCollection
    ) -> list[BleakGATTCharacteristic]:
        for uuid in ROLE_CHARACTERISTICS[state.config.role]:
            char = services.get_characteristic(uuid)
            if char is not None and _can_notify(char):
                return [char]
        return []


def gap_reporter(context: PluginContext) -> GapCallback:
    """An ``on_gap`` that hands the gap to the service (``context.monitor``, once it is set)
    as :meth:`monitor.service.Monitor.report_gap`: a data-quality event for the patient."""

    def on_gap(patient: str, device: str, start: float, end: float) -> None:
        if context.monitor is not None:
            context.monitor.report_gap(patient, device, start=start, end=end)

    return on_gap


def _can_notify(char: BleakGATTCharacteristic) -> bool:
    return "notify" in char.properties or "indicate" in char.properties
