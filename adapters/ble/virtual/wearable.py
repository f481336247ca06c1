"""A virtual wearable: a bumble ``Device`` with its own controller on the shared
``LocalLink`` that advertises, accepts connections and serves GATT; the base class of the
sensors in :mod:`adapters.ble.virtual.sensors`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from bumble.controller import Controller
from bumble.core import AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from adapters import gatt
from adapters.ble.bumble_gatt import bumble_uuid

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
