"""Virtual wearables: real GATT servers on bumble's in-process link.

A :class:`VirtualWorld` owns a bumble ``LocalLink``, the virtual wearables on it and the
centrals that the bleak backend (:mod:`adapters.ble.bumble_backend`) creates. Each wearable
is a bumble ``Device`` with its own controller that advertises its services, accepts
connections, answers reads and sends notifications or indications at its own pace, with
values taken from a provider (a zero-argument callable; the simulator's patient or a
constant in a test).

- :class:`VirtualChestStrap` — Heart Rate service 0x180D (measurement with sensor contact,
  RR intervals and energy expended; body sensor location "chest"; control point) and
  Battery 0x180F.
- :class:`VirtualSkinSensor` — Health Thermometer 0x1809 (Temperature Measurement 0x2A1C
  by indication, with time stamp; measurements taken while nobody listens are stored and
  sent after the next subscription, and the last one sent before a drop is sent again, as
  a thermometer does when it never saw the confirmation; optionally Intermediate
  Temperature 0x2A1E by notification), Temperature Type, Battery.
- :class:`VirtualEssSensor` — Environmental Sensing 0x181A (Temperature 0x2A6E, read and
  notify), Battery.
- :class:`VirtualCoreSensor` — the CORE custom service (0x2101 notify: core and skin
  temperature, quality, heat-strain index; 0x2102 control point), HTS 0x2A1C (notify, as the
  real sensor), Battery, and the current core temperature in its advert's manufacturer
  data.

Adverts carry the flags, service UUIDs, name and manufacturer data (see
:meth:`VirtualWearable._advertising_data` for why not split into a scan response).

``drop_connection()`` ends the link from the wearable's side (the adapter sees an
unsolicited disconnect), ``stop_advertising()`` makes it vanish (out of range) and
``start_advertising()`` brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, Protocol, Self

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner
from bumble.controller import Controller
from bumble.core import AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from adapters import gatt
from adapters.ble.bumble_backend import GattCache, backends_for, bumble_uuid

log = logging.getLogger(__name__)

ValueProvider = Callable[[], float]
"""Returns the wearable's current reading (bpm or °C); NaN means "no value now"."""

ADVERTISING_INTERVAL_MS = 20.0
"""Fast advertising, as wearables do right after power-up; keeps connects quick."""
INDICATION_TIMEOUT_S = 2.0
"""How long a thermometer waits for the confirmation of an indication."""
STORED_MEASUREMENTS = 120
"""How many measurements a thermometer keeps while nobody listens."""
CENTRAL_ADDRESS_PREFIX = "D0:00:00:00"

_SIG_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"
_UUIDS_16 = AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS
_UUIDS_128 = AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS


class VirtualWearable:
    """The common part of the virtual wearables: device, advertising, tick loop."""

    services_advertised: tuple[str, ...] = ()

    def __init__(
        self, *, address: str, name: str, interval_s: float, battery_percent: int = 87
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.address = address.upper()
        self.name = name
        self.interval_s = interval_s
        self._battery = gatt.encode_battery_level(battery_percent)
        self._device: Device | None = None
        self._battery_char = Characteristic[bytes](
            bumble_uuid(gatt.BATTERY_LEVEL),
            Characteristic.Properties.READ | Characteristic.Properties.NOTIFY,
            Characteristic.READABLE,
            CharacteristicValue(read=lambda _conn: self._battery),
        )
        self._advertise = False
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.notifications_sent = 0
        self.connections = 0

    # -- to be filled in by each wearable --

    def services(self) -> list[Service]:
        raise NotImplementedError

    async def tick(self) -> None:
        """Take one measurement and send it to whoever subscribed."""
        raise NotImplementedError

    def on_subscription(
        self, connection: Connection, characteristic: Characteristic[bytes]
    ) -> None:
        """A central enabled notifications or indications on ``characteristic``."""

    # -- lifetime, driven by VirtualWorld --

    @property
    def device(self) -> Device:
        if self._device is None:
            raise RuntimeError(f"{self.name} is not on a link")
        return self._device

    @property
    def connected(self) -> bool:
        return bool(self._device is not None and self._device.connections)

    async def attach(self, link: LocalLink) -> None:
        controller = Controller(self.name, link=link, public_address=self.address)
        device = Device(
            name=self.name,
            address=Address(self.address),
            host=Host(controller, AsyncPipeSink(controller)),
        )
        device.add_services(
            [
                *self.services(),
                Service(bumble_uuid(gatt.BATTERY_SERVICE), [self._battery_char]),
            ]
        )
        device.on(Device.EVENT_CONNECTION, self._on_connection)
        device.on("characteristic_subscription", self._on_subscription)
        self._device = device
        await device.power_on()
        await self.start_advertising()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def detach(self) -> None:
        tasks = [t for t in (self._task, *self._background) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._advertise = False
        if self._device is not None:
            with contextlib.suppress(Exception):
                await self._device.power_off()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            next_tick += self.interval_s
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            try:
                await self.tick()
            except Exception as err:  # a failed send must not stop the wearable
                log.debug("%s: tick failed: %r", self.name, err)

    def manufacturer_data(self) -> tuple[int, bytes] | None:
        """(company id, payload) to advertise, if the wearable advertises any."""
        return None

    def _advertising_data(self) -> tuple[bytes, bytes]:
        """The advert (flags, service UUIDs) and the scan response (name, manufacturer
        data), as a wearable splits them to fit a legacy PDU's 31 bytes. bumble's
        ``LocalLink`` controller answers a scan request with the advert's data, not the scan
        response's (bumble 0.0.236), so :meth:`start_advertising` advertises both parts
        together; the link does not enforce the 31 bytes."""
        short = [
            int(u[4:8], 16).to_bytes(2, "little")
            for u in self.services_advertised
            if u.endswith(_SIG_BASE_SUFFIX)
        ]
        long = [
            bumble_uuid(u).to_bytes(force_128=True)
            for u in self.services_advertised
            if not u.endswith(_SIG_BASE_SUFFIX)
        ]
        advert: list[tuple[int, bytes]] = [(AdvertisingData.FLAGS, b"\x06")]
        if short:
            advert.append((_UUIDS_16, b"".join(short)))
        if long:
            advert.append((_UUIDS_128, b"".join(long)))
        response: list[tuple[int, bytes]] = [
            (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode())
        ]
        maker = self.manufacturer_data()
        if maker is not None:
            company, payload = maker
            response.append(
                (
                    AdvertisingData.MANUFACTURER_SPECIFIC_DATA,
                    company.to_bytes(2, "little") + payload,
                )
            )
        return bytes(AdvertisingData(advert)), bytes(AdvertisingData(response))

    async def start_advertising(self) -> None:
        """Advertise (again): the wearable is in range and can be connected."""
        self._advertise = True
        device = self.device
        if not device.connections and not device.is_advertising:
            advert, response = self._advertising_data()
            await device.start_advertising(
                advertising_data=advert + response,
                scan_response_data=response,
                advertising_interval_min=ADVERTISING_INTERVAL_MS,
                advertising_interval_max=ADVERTISING_INTERVAL_MS,
            )

    async def stop_advertising(self) -> None:
        """Stop advertising (and stay silent after a drop) until :meth:`start_advertising`."""
        self._advertise = False
        if self.device.is_advertising:
            await self.device.stop_advertising()

    async def drop_connection(self) -> None:
        """End every connection from the wearable's side, as when it goes out of range."""
        for connection in list(self.device.connections.values()):
            with contextlib.suppress(Exception):
                await connection.disconnect()

    async def go_out_of_range(self) -> None:
        await self.stop_advertising()
        await self.drop_connection()

    def _on_connection(self, connection: Connection) -> None:
        self.connections += 1
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)

    def _on_disconnection(self, _reason: int) -> None:
        if self._advertise and self._device is not None:
            self.spawn(self.start_advertising())

    def _on_subscription(
        self, connection: Any, characteristic: Characteristic[bytes], notify: bool, indicate: bool
    ) -> None:
        if notify or indicate:
            self.on_subscription(connection, characteristic)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background, keeping a reference until it is done."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def set_battery(self, percent: int) -> None:
        self._battery = gatt.encode_battery_level(percent)
        await self.device.notify_subscribers(self._battery_char, self._battery)

    async def notify(self, characteristic: Characteristic[bytes], value: bytes) -> None:
        if self.connected:
            await self.device.notify_subscribers(characteristic, value)
            self.notifications_sent += 1


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


class VirtualWorld:
    """The in-process Bluetooth world: a bumble link, the wearables on it, and the bleak
    backend classes that reach them. An async context manager::

        async with VirtualWorld(wearables=[strap, skin]) as world:
            client = BleakClient(strap.address, backend=world.client_backend)
    """

    def __init__(self, *, wearables: Sequence[VirtualWearable] = ()) -> None:
        self._wearables = list(wearables)
        self._link: LocalLink | None = None  # created in __aenter__, inside the loop
        self._centrals = 0
        self._gatt_cache: GattCache = {}
        scanner, client = backends_for(self)
        self.scanner_backend: type[BaseBleakScanner] = scanner
        self.client_backend: type[BaseBleakClient] = client

    @property
    def wearables(self) -> tuple[VirtualWearable, ...]:
        return tuple(self._wearables)

    def wearable(self, address: str) -> VirtualWearable:
        for w in self._wearables:
            if w.address == address.upper():
                return w
        raise KeyError(address)

    @property
    def gatt_cache(self) -> GattCache:
        """What the client backend remembers of each wearable's GATT database."""
        return self._gatt_cache

    @property
    def link(self) -> LocalLink:
        if self._link is None:
            raise RuntimeError("VirtualWorld is not entered")
        return self._link

    async def __aenter__(self) -> Self:
        self._link = LocalLink()  # type: ignore[no-untyped-call]
        for w in self._wearables:
            await w.attach(self._link)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for w in self._wearables:
            await w.detach()
        self._link = None

    async def add(self, wearable: VirtualWearable) -> None:
        self._wearables.append(wearable)
        if self._link is not None:
            await wearable.attach(self._link)

    async def new_central(self) -> Device:
        self._centrals += 1
        n = self._centrals
        address = f"{CENTRAL_ADDRESS_PREFIX}:{(n >> 8) & 0xFF:02X}:{n & 0xFF:02X}"
        controller = Controller(f"central-{n}", link=self.link, public_address=address)
        device = Device(
            name=f"central-{n}",
            address=Address(address),
            host=Host(controller, AsyncPipeSink(controller)),
        )
        await device.power_on()
        return device

    def release_central(self, device: Device) -> None:
        """Take the central's controller off the link (its connections are already gone)."""
        link = self._link
        controller = device.host.controller if device.host is not None else None
        if link is not None and controller in link.controllers:
            link.remove_controller(controller)


class VitalsLike(Protocol):
    """What a simulated patient's ``step`` returns (``adapters.simulator.Vitals``)."""

    @property
    def heart_rate_bpm(self) -> float: ...

    @property
    def skin_temp_c(self) -> float: ...

    @property
    def core_temp_c(self) -> float: ...


class VitalsFeed:
    """Steps a simulated patient (``step(dt_s) -> vitals``) on the event loop's clock and
    serves its latest vitals as the wearables' value providers."""

    def __init__(self, *, step: Callable[[float], VitalsLike], speed: float = 1.0) -> None:
        self._step = step
        self._speed = speed
        self._vitals = step(0.0)
        self._last: float | None = None

    def _advance(self) -> VitalsLike:
        now = time.monotonic()
        if self._last is not None and now > self._last:
            self._vitals = self._step((now - self._last) * self._speed)
        self._last = now
        return self._vitals

    def heart_rate(self) -> float:
        return self._advance().heart_rate_bpm

    def skin_temp(self) -> float:
        return self._advance().skin_temp_c

    def core_temp(self) -> float:
        return self._advance().core_temp_c
