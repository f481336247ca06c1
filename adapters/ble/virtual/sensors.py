"""The virtual sensors: chest strap, skin thermometer, ESS skin patch and CORE sensor
(what each serves: :mod:`adapters.ble.virtual`)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from bumble.device import Connection
from bumble.gatt import Characteristic, CharacteristicValue, Service

from adapters import gatt
from adapters.ble.bumble_gatt import bumble_uuid
from adapters.ble.virtual.wearable import (
    INDICATION_TIMEOUT_S,
    STORED_MEASUREMENTS,
    ValueProvider,
    VirtualWearable,
)

log = logging.getLogger(__name__)


class VirtualChestStrap(VirtualWearable):
    """A heart-rate chest strap: 0x2A37 with contact, RR intervals, energy expended."""

    services_advertised = (gatt.HEART_RATE_SERVICE, gatt.BATTERY_SERVICE)

    def __init__(
        self,
        *,
        address: str,
        heart_rate: ValueProvider,
        name: str = "HRM-Strap",
        interval_s: float = 1.0,
        battery_percent: int = 87,
    ) -> None:
        super().__init__(
            address=address, name=name, interval_s=interval_s, battery_percent=battery_percent
        )
        self._heart_rate = heart_rate
        self.energy_kj = 0.0
        self._last = gatt.encode_heart_rate_measurement(gatt.HeartRateMeasurement(0, False))
        self._hrm = Characteristic[bytes](
            bumble_uuid(gatt.HEART_RATE_MEASUREMENT),
            Characteristic.Properties.NOTIFY,
            Characteristic.Permissions(0),
            b"",
        )

    def services(self) -> list[Service]:
        location = Characteristic[bytes](
            bumble_uuid(gatt.BODY_SENSOR_LOCATION),
            Characteristic.Properties.READ,
            Characteristic.READABLE,
            bytes([gatt.BodySensorLocation.CHEST]),
        )
        control = Characteristic[bytes](
            bumble_uuid(gatt.HEART_RATE_CONTROL_POINT),
            Characteristic.Properties.WRITE,
            Characteristic.WRITEABLE,
            CharacteristicValue(write=self._on_control),
        )
        return [Service(bumble_uuid(gatt.HEART_RATE_SERVICE), [self._hrm, location, control])]

    def _on_control(self, _connection: Any, value: bytes) -> None:
        if value == b"\x01":
            self.energy_kj = 0.0

    def measurement(self) -> bytes:
        bpm = self._heart_rate()
        if not math.isfinite(bpm) or bpm <= 0:
            m = gatt.HeartRateMeasurement(0, sensor_contact=False)
        else:
            # a rough 0.1 kJ/beat-minute; only the encoding matters here
            self.energy_kj = min(0xFFFF, self.energy_kj + bpm * self.interval_s / 600)
            m = gatt.HeartRateMeasurement(
                heart_rate_bpm=round(bpm),
                sensor_contact=True,
                energy_expended_kj=int(self.energy_kj),
                rr_intervals_1024=(gatt.rr_to_1024(60.0 / bpm),),
            )
        return gatt.encode_heart_rate_measurement(m)

    async def tick(self) -> None:
        self._last = self.measurement()
        await self.notify(self._hrm, self._last)


class VirtualSkinSensor(VirtualWearable):
    """A skin thermometer on the Health Thermometer service.

    Final measurements go by indication on 0x2A1C with a time stamp of whole-second
    resolution (of ``clock``): it sends at most one per second of its clock, as a
    thermometer would. With ``intermediate`` it also notifies Intermediate Temperature
    0x2A1E (no time stamp) with those values each tick, before the final one; with
    ``final_measurements=False`` it has no 0x2A1C at all (a patch that only streams
    0x2A1E, not what HTS asks for, but sold).
    """

    services_advertised = (gatt.HEALTH_THERMOMETER_SERVICE, gatt.BATTERY_SERVICE)

    def __init__(
        self,
        *,
        address: str,
        skin_temp: ValueProvider,
        name: str = "SkinTemp",
        interval_s: float = 1.0,
        fahrenheit: bool = False,
        clock: Callable[[], float] = time.time,
        battery_percent: int = 87,
        intermediate: ValueProvider | None = None,
        final_measurements: bool = True,
    ) -> None:
        super().__init__(
            address=address, name=name, interval_s=interval_s, battery_percent=battery_percent
        )
        self._skin_temp = skin_temp
        self._fahrenheit = fahrenheit
        self._clock = clock
        self._intermediate = intermediate
        self._final = final_measurements
        self._stored: deque[bytes] = deque(maxlen=STORED_MEASUREMENTS)
        self._last_sent: bytes | None = None
        self._last_stamp: gatt.DateTime | None = None
        self._sending = asyncio.Lock()
        self._tm = Characteristic[bytes](
            bumble_uuid(gatt.TEMPERATURE_MEASUREMENT),
            Characteristic.Properties.INDICATE,
            Characteristic.Permissions(0),
            b"",
        )
        self._it = Characteristic[bytes](
            bumble_uuid(gatt.INTERMEDIATE_TEMPERATURE),
            Characteristic.Properties.NOTIFY,
            Characteristic.Permissions(0),
            b"",
        )
        self.resent = 0

    def services(self) -> list[Service]:
        kind = Characteristic[bytes](
            bumble_uuid(gatt.TEMPERATURE_TYPE),
            Characteristic.Properties.READ,
            Characteristic.READABLE,
            bytes([gatt.TemperatureType.BODY]),
        )
        chars = [self._tm] if self._final else []
        if self._intermediate is not None:
            chars.append(self._it)
        return [Service(bumble_uuid(gatt.HEALTH_THERMOMETER_SERVICE), [*chars, kind])]

    def _encode(self, celsius: float, stamp: gatt.DateTime | None) -> bytes:
        value = celsius * 9 / 5 + 32 if self._fahrenheit else celsius
        return gatt.encode_temperature_measurement(
            gatt.TemperatureMeasurement(
                temperature=gatt.Float11073.from_value(value, exponent=-2),
                fahrenheit=self._fahrenheit,
                timestamp=stamp,
            )
        )

    def measurement(self) -> bytes | None:
        """The next measurement, or ``None`` within the same second as the last one."""
        stamp = gatt.DateTime.from_epoch(self._clock())
        if stamp == self._last_stamp:
            return None
        self._last_stamp = stamp
        return self._encode(self._skin_temp(), stamp)

    async def _indicate(self, value: bytes) -> bool:
        if not self.connected:
            return False
        try:
            async with asyncio.timeout(INDICATION_TIMEOUT_S):
                await self.device.indicate_subscribers(self._tm, value)
        except Exception as err:
            log.debug("%s: indication not confirmed: %r", self.name, err)
            return False
        self._last_sent = value
        self.notifications_sent += 1
        return True

    async def tick(self) -> None:
        if self._intermediate is not None:
            await self.notify(self._it, self._encode(self._intermediate(), None))
        if not self._final:
            return
        value = self.measurement()
        if value is None:
            return
        async with self._sending:
            if self._stored or not await self._indicate(value):
                self._stored.append(value)

    def on_subscription(
        self, connection: Connection, characteristic: Characteristic[bytes]
    ) -> None:
        if characteristic is self._tm:
            self.spawn(self._send_stored())

    async def _send_stored(self) -> None:
        async with self._sending:
            if self._last_sent is not None and await self._indicate(self._last_sent):
                self.resent += 1
            while self._stored and await self._indicate(self._stored[0]):
                self._stored.popleft()


class VirtualEssSensor(VirtualWearable):
    """A skin-temperature patch on Environmental Sensing 0x181A: Temperature 0x2A6E
    (sint16, 0.01 °C; read and notify; "unknown" when the provider gives NaN)."""

    services_advertised = (gatt.ENVIRONMENTAL_SENSING_SERVICE, gatt.BATTERY_SERVICE)

    def __init__(
        self,
        *,
        address: str,
        skin_temp: ValueProvider,
        name: str = "SkinPatch",
        interval_s: float = 1.0,
        battery_percent: int = 87,
    ) -> None:
        super().__init__(
            address=address, name=name, interval_s=interval_s, battery_percent=battery_percent
        )
        self._skin_temp = skin_temp
        self._last = gatt.encode_ess_temperature(None)
        self._temperature = Characteristic[bytes](
            bumble_uuid(gatt.ESS_TEMPERATURE),
            Characteristic.Properties.READ | Characteristic.Properties.NOTIFY,
            Characteristic.READABLE,
            CharacteristicValue(read=lambda _conn: self._last),
        )

    def services(self) -> list[Service]:
        return [Service(bumble_uuid(gatt.ENVIRONMENTAL_SENSING_SERVICE), [self._temperature])]

    async def tick(self) -> None:
        self._last = gatt.encode_ess_temperature(self._skin_temp())
        await self.notify(self._temperature, self._last)


CORE_STATUS_MEASURING = 0x04
"""The status byte of the captured CORE advert (``00 04 75 8E``), sent while measuring."""
CONTROL_POINT_RESPONSE = 0x80
CONTROL_POINT_NOT_SUPPORTED = 0x02


class VirtualCoreSensor(VirtualWearable):
    """A greenteg CORE: custom 0x2101 (core, skin, quality, HSI), HTS 0x2A1C by notify, and
    its current core temperature in the advert's manufacturer data.

    ``custom_service=False`` leaves out the CORE service (firmware that only shows HTS):
    the adapter then falls back to 0x2A1C. The control point 0x2102 (write + indicate)
    answers every request with the usual SIG control-point response (0x80, the request's
    op code, 0x02 "op code not supported"): the real op codes (heart-rate strap pairing)
    are in a specification that could not be read, and heatmon does not use them.
    """

    def __init__(
        self,
        *,
        address: str,
        core_temp: ValueProvider,
        skin_temp: ValueProvider | None = None,
        heat_strain_index: ValueProvider | None = None,
        name: str = "CORE 0A:0B",
        interval_s: float = 1.0,
        battery_percent: int = 87,
        custom_service: bool = True,
    ) -> None:
        super().__init__(
            address=address, name=name, interval_s=interval_s, battery_percent=battery_percent
        )
        self.services_advertised = (
            *((gatt.CORE_SERVICE,) if custom_service else ()),
            gatt.HEALTH_THERMOMETER_SERVICE,
            gatt.BATTERY_SERVICE,
        )
        self._custom = custom_service
        self._core_temp = core_temp
        self._skin_temp = skin_temp
        self._hsi = heat_strain_index
        self._core = Characteristic[bytes](
            bumble_uuid(gatt.CORE_TEMPERATURE),
            Characteristic.Properties.READ | Characteristic.Properties.NOTIFY,
            Characteristic.READABLE,
            CharacteristicValue(read=lambda _conn: self._last_core),
        )
        self._control = Characteristic[bytes](
            bumble_uuid(gatt.CORE_CONTROL_POINT),
            Characteristic.Properties.WRITE | Characteristic.Properties.INDICATE,
            Characteristic.WRITEABLE,
            CharacteristicValue(write=self._on_control),
        )
        self._hts = Characteristic[bytes](
            bumble_uuid(gatt.TEMPERATURE_MEASUREMENT),
            Characteristic.Properties.NOTIFY,
            Characteristic.Permissions(0),
            b"",
        )
        self._last_core: bytes = gatt.encode_core_measurement(
            gatt.CoreMeasurement(core_raw=gatt.CORE_NOT_AVAILABLE)
        )
        self.control_requests: list[bytes] = []

    def services(self) -> list[Service]:
        hts = Service(bumble_uuid(gatt.HEALTH_THERMOMETER_SERVICE), [self._hts])
        if not self._custom:
            return [hts]
        return [Service(bumble_uuid(gatt.CORE_SERVICE), [self._core, self._control]), hts]

    def manufacturer_data(self) -> tuple[int, bytes] | None:
        core = self._core_temp()
        if not math.isfinite(core):
            return None
        advert = gatt.CoreAdvertisement(
            version=0, status=CORE_STATUS_MEASURING, core_raw=gatt.core_advert_raw(core)
        )
        return gatt.CORE_COMPANY_IDS[0], gatt.encode_core_advertisement(advert)

    def _on_control(self, _connection: Any, value: bytes) -> None:
        self.control_requests.append(bytes(value))
        opcode = value[0] if value else 0
        response = bytes([CONTROL_POINT_RESPONSE, opcode, CONTROL_POINT_NOT_SUPPORTED])
        self.spawn(self._respond(response))

    async def _respond(self, response: bytes) -> None:
        async with asyncio.timeout(INDICATION_TIMEOUT_S):
            await self.device.indicate_subscribers(self._control, response)

    def measurement(self) -> bytes:
        core = self._core_temp()
        hsi = self._hsi() if self._hsi is not None else math.nan
        hsi_raw = (
            max(0, min(100, round(hsi * 10))) if math.isfinite(hsi) else gatt.CORE_HSI_NOT_AVAILABLE
        )
        return gatt.encode_core_measurement(
            gatt.CoreMeasurement(
                core_raw=gatt.core_raw(core),
                skin_raw=gatt.core_raw(self._skin_temp()) if self._skin_temp else None,
                state=0x04 if math.isfinite(core) else 0x07,  # excellent; HR not supported
                hsi_raw=hsi_raw,
            )
        )

    async def tick(self) -> None:
        self._last_core = self.measurement()
        if self._custom:
            await self.notify(self._core, self._last_core)
        core = gatt.parse_core_measurement(self._last_core).core_temp_c
        hts = gatt.TemperatureMeasurement(
            temperature=gatt.Float11073.from_value(math.nan if core is None else core),
            temperature_type=gatt.TemperatureType.BODY,
        )
        await self.notify(self._hts, gatt.encode_temperature_measurement(hts))
