"""A bleak backend over bumble's in-process link: bleak's public API, bumble's GATT.

:class:`BumbleScannerBackend` and :class:`BumbleClientBackend` subclass bleak's
``BaseBleakScanner`` / ``BaseBleakClient``. Code passes them with ``backend=`` to
``BleakScanner`` / ``BleakClient`` (or to bleak-retry-connector's ``establish_connection``)
and is otherwise exactly the code that runs against BlueZ, CoreBluetooth or WinRT.

Each scanner and each client is a bumble central (its own ``Device`` and ``Controller``)
on the link, as if every connection had its own radio; the peripherals on the same link are
the virtual wearables of :mod:`adapters.ble.virtual`. Every byte between them is real ATT
over bumble's host stack: discovery, reads, writes, CCCD writes, notifications and
indications with their confirmations.

bleak builds the backend object itself, so the classes carry the link they use: get a
pair bound to a link with :func:`backends_for`.

Like BlueZ, the client backend keeps a GATT cache per peer on the link's owner (not in the
module): with ``dangerous_use_bleak_cache=True`` (what bleak-retry-connector's
``establish_connection`` passes) a reconnect rebuilds the service tree from the cache and
skips discovery; :meth:`BumbleClientBackend.clear_cache` forgets it. ``services=`` (from
``BleakClient``) limits characteristic and descriptor discovery to those services, as
CoreBluetooth and WinRT do.

This module holds the two backends and the advertisement data; the GATT database (UUID
conversions, the cache, discovery and the service tree built from it) is in
:mod:`adapters.ble.bumble_gatt`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import (
    AdvertisementData,
    AdvertisementDataCallback,
    BaseBleakScanner,
)
from bleak.exc import BleakError
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.hci import Address

from adapters.ble.bumble_gatt import GattCache, bleak_uuid, discover, service_collection

log = logging.getLogger(__name__)

_UUID_LIST_TYPES = (
    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
)


class CentralFactory(Protocol):
    """What the backends need from the link's owner (:class:`adapters.ble.virtual.VirtualWorld`)."""

    @property
    def gatt_cache(self) -> GattCache:
        """The link's GATT cache (what BlueZ keeps on disk)."""
        ...

    async def new_central(self) -> Device:
        """A powered-on bumble device on the link, for one scanner or one client."""
        ...

    def release_central(self, device: Device) -> None:
        """Take the device off the link."""
        ...


def bleak_address(address: Address) -> str:
    """``F0:F1:F2:F3:F4:F5`` (bumble appends ``/P`` to public addresses)."""
    return str(address).split("/", 1)[0].upper()


def advertisement_data(adv: Advertisement) -> AdvertisementData:
    data: AdvertisingData = adv.data
    name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(
        AdvertisingData.SHORTENED_LOCAL_NAME
    )
    uuids: list[str] = []
    for ad_type in _UUID_LIST_TYPES:
        for item in data.get_all(ad_type):
            if not isinstance(item, list):
                continue
            for u in item:
                text = bleak_uuid(u)
                if text not in uuids:  # adverts and scan responses both list them
                    uuids.append(text)
    manufacturer: dict[int, bytes] = {}
    for raw in data.get_all(AdvertisingData.MANUFACTURER_SPECIFIC_DATA, raw=True):
        if len(raw) >= 2:
            manufacturer[int.from_bytes(raw[:2], "little")] = bytes(raw[2:])
    tx_power = data.get(AdvertisingData.TX_POWER_LEVEL)
    return AdvertisementData(
        local_name=name if isinstance(name, str) else None,
        manufacturer_data=manufacturer,
        service_data={},
        service_uuids=uuids,
        tx_power=tx_power if isinstance(tx_power, int) else None,
        rssi=int(adv.rssi),
        platform_data=(adv,),
    )


class BumbleScannerBackend(BaseBleakScanner):
    """Scans the bumble link; bleak calls it with ``(callback, service_uuids, mode, ...)``."""

    link: ClassVar[CentralFactory]

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode != "passive"
        self._central: Device | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        central = await self.link.new_central()
        central.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        self._central = central
        await central.start_scanning(active=self._active, filter_duplicates=False)

    async def stop(self) -> None:
        central, self._central = self._central, None
        if central is None:
            return
        central.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        try:
            await central.stop_scanning()
        finally:
            self.link.release_central(central)

    def _on_advertisement(self, adv: Advertisement) -> None:
        data = advertisement_data(adv)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = bleak_address(adv.address)
        device = self.create_or_update_device(address, address, data.local_name, adv.address, data)
        self.call_detection_callbacks(device, data)


class BumbleClientBackend(BaseBleakClient):
    """A GATT client over the bumble link, one bumble central per client."""

    link: ClassVar[CentralFactory]

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(
            address_or_ble_device,
            disconnected_callback=kwargs.get("disconnected_callback"),
            timeout=float(kwargs.get("timeout", 10.0)),
        )
        details = (
            address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        )
        self._peer_address = (
            details
            if isinstance(details, Address)
            else Address(self.address, Address.RANDOM_DEVICE_ADDRESS)
        )
        self._central: Device | None = None
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}
        requested = kwargs.get("services")
        self._requested: frozenset[str] | None = (
            frozenset(str(u).lower() for u in requested) if requested else None
        )
        self.discoveries = 0
        """How many times this client discovered the database (0 when the cache served)."""

    @property
    def _cache_key(self) -> tuple[str, frozenset[str] | None]:
        return (self.address, self._requested)

    async def clear_cache(self) -> bool:
        """Forget the cached GATT database of this peer (as BlueZ's ``clear_cache``)."""
        cache = self.link.gatt_cache
        stale = [key for key in cache if key[0] == self.address]
        for key in stale:
            del cache[key]
        return bool(stale)

    @property
    def name(self) -> str:
        return self.address

    @property
    def mtu_size(self) -> int:
        if self._connection is None:
            return 23
        return int(self._connection.att_mtu)

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        timeout = float(kwargs.get("timeout", self._timeout))
        use_cache = bool(kwargs.get("dangerous_use_bleak_cache", False))
        central = await self.link.new_central()
        self._central = central
        try:
            async with asyncio.timeout(timeout):
                connection = await central.connect(self._peer_address, timeout=timeout)
                connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
                self._connection = connection
                self._peer = Peer(connection)
                cached = self.link.gatt_cache.get(self._cache_key) if use_cache else None
                if cached is None:
                    cached = await discover(self._peer, self._requested)
                    self.discoveries += 1
                    self.link.gatt_cache[self._cache_key] = cached
                self.services = service_collection(
                    self._peer.gatt_client, cached, lambda: self.mtu_size
                )
        except Exception as err:
            await self._teardown()
            raise BleakError(f"{self.address}: cannot connect: {err!r}") from err

    def _on_disconnection(self, reason: int) -> None:
        log.debug("%s: link dropped (reason 0x%02X)", self.address, reason)
        self._connection = None
        self._peer = None
        self._subscribers.clear()
        central, self._central = self._central, None
        if central is not None:
            self.link.release_central(central)
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def _teardown(self) -> None:
        self._connection = None
        self._peer = None
        central, self._central = self._central, None
        if central is not None:
            self.link.release_central(central)

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is not None:
            try:
                await connection.disconnect()
            except Exception as err:  # the link may already be gone
                log.debug("%s: disconnect: %r", self.address, err)
        await self._teardown()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise BleakError("pairing is not supported by the bumble test backend")

    async def unpair(self) -> None:
        raise BleakError("pairing is not supported by the bumble test backend")

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError(f"{self.address}: not connected")
        return self._peer

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return bytearray(await self._require_peer().read_value(characteristic.obj))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return bytearray(await self._require_peer().read_value(descriptor.obj))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        await self._require_peer().write_value(
            characteristic.obj, bytes(data), with_response=response
        )

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        await self._require_peer().write_value(descriptor.obj, bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = subscriber
        await self._require_peer().subscribe(characteristic.obj, subscriber, prefer_notify=True)

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        subscriber = self._subscribers.pop(characteristic.handle, None)
        await self._require_peer().unsubscribe(characteristic.obj, subscriber)


def backends_for(
    link: CentralFactory,
) -> tuple[type[BumbleScannerBackend], type[BumbleClientBackend]]:
    """A scanner and a client backend class bound to ``link``, for ``backend=``."""
    scanner = type("BoundBumbleScanner", (BumbleScannerBackend,), {"link": link})
    client = type("BoundBumbleClient", (BumbleClientBackend,), {"link": link})
    return scanner, client
