"""The GATT database as the bumble backend (:mod:`adapters.ble.bumble_backend`) keeps it:
UUIDs converted between bleak's and bumble's forms, the per-peer cache (what BlueZ keeps on
disk: :data:`GattCache`, held by the link's owner), :func:`discover` filling it from a peer
(only the requested services explored, as CoreBluetooth and WinRT do), and
:func:`service_collection` rebuilding from it both bumble's proxies on a connection and
bleak's :class:`~bleak.backends.service.BleakGATTServiceCollection`, so a reconnect with the
cache skips discovery."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass

from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bumble.core import UUID as BumbleUUID
from bumble.device import Peer
from bumble.gatt import Characteristic
from bumble.gatt_client import CharacteristicProxy, Client, DescriptorProxy, ServiceProxy

ATT_HEADER_BYTES = 3

PROPERTY_NAMES: tuple[tuple[int, CharacteristicPropertyName], ...] = (
    (Characteristic.Properties.BROADCAST, "broadcast"),
    (Characteristic.Properties.READ, "read"),
    (Characteristic.Properties.WRITE_WITHOUT_RESPONSE, "write-without-response"),
    (Characteristic.Properties.WRITE, "write"),
    (Characteristic.Properties.NOTIFY, "notify"),
    (Characteristic.Properties.INDICATE, "indicate"),
    (Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES, "authenticated-signed-writes"),
    (Characteristic.Properties.EXTENDED_PROPERTIES, "extended-properties"),
)


@dataclass(frozen=True, slots=True)
class CachedDescriptor:
    handle: int
    uuid: BumbleUUID


@dataclass(frozen=True, slots=True)
class CachedCharacteristic:
    handle: int
    end_handle: int
    uuid: BumbleUUID
    properties: int
    descriptors: tuple[CachedDescriptor, ...]


@dataclass(frozen=True, slots=True)
class CachedService:
    handle: int
    end_handle: int
    uuid: BumbleUUID
    characteristics: tuple[CachedCharacteristic, ...] | None
    """``None``: the service was not explored (not among the requested ``services``)."""


GattCache = dict[tuple[str, frozenset[str] | None], tuple[CachedService, ...]]
"""Per (peer address, requested services): the GATT database found at the last discovery."""


_SIG_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def bumble_uuid(uuid: str) -> BumbleUUID:
    """A bleak-style UUID string as bumble's UUID (16-bit when it is a SIG UUID)."""
    if uuid.startswith("0000") and uuid.endswith(_SIG_BASE_SUFFIX):
        return BumbleUUID.from_16_bits(int(uuid[4:8], 16))
    return BumbleUUID(uuid)


def bleak_uuid(uuid: BumbleUUID) -> str:
    """bumble's UUID as bleak writes it: lowercase, 128-bit, dashed."""
    return str(uuidlib.UUID(bytes=bytes(reversed(uuid.to_bytes(force_128=True)))))


async def discover(peer: Peer, requested: frozenset[str] | None) -> tuple[CachedService, ...]:
    """The GATT database of ``peer``: every service, and the characteristics and descriptors
    of those in ``requested`` (all when None)."""
    found: list[CachedService] = []
    for service in await peer.discover_services():
        chars: list[CachedCharacteristic] | None = None
        if requested is None or bleak_uuid(service.uuid) in requested:
            chars = []
            for char in await peer.discover_characteristics(service=service):
                descriptors = await peer.discover_descriptors(char)
                chars.append(
                    CachedCharacteristic(
                        handle=char.handle,
                        end_handle=char.end_group_handle,
                        uuid=char.uuid,
                        properties=int(char.properties),
                        descriptors=tuple(
                            CachedDescriptor(handle=d.handle, uuid=d.type) for d in descriptors
                        ),
                    )
                )
        found.append(
            CachedService(
                handle=service.handle,
                end_handle=service.end_group_handle,
                uuid=service.uuid,
                characteristics=None if chars is None else tuple(chars),
            )
        )
    return tuple(found)


def service_collection(
    client: Client, cached: tuple[CachedService, ...], mtu_size: Callable[[], int]
) -> BleakGATTServiceCollection:
    """bumble proxies on this connection's GATT client (so reads, writes and
    subscriptions work without rediscovery) and bleak's view of them."""
    client.services = []
    collection = BleakGATTServiceCollection()
    for s in cached:
        service = ServiceProxy(client, s.handle, s.end_handle, s.uuid)  # type: ignore[no-untyped-call]
        client.services.append(service)
        if s.characteristics is None:
            continue
        bleak_service = BleakGATTService(service, s.handle, bleak_uuid(s.uuid))
        collection.add_service(bleak_service)
        for c in s.characteristics:
            char = CharacteristicProxy[bytes](client, c.handle, c.end_handle, c.uuid, c.properties)
            char.descriptors = [DescriptorProxy(client, d.handle, d.uuid) for d in c.descriptors]
            char.descriptors_discovered = True  # subscribe() then finds the CCCD at once
            service.characteristics.append(char)
            props = [name for bit, name in PROPERTY_NAMES if c.properties & bit]
            bleak_char = BleakGATTCharacteristic(
                char,
                c.handle,
                bleak_uuid(c.uuid),
                props,
                lambda: mtu_size() - ATT_HEADER_BYTES,
                bleak_service,
            )
            collection.add_characteristic(bleak_char)
            for desc in char.descriptors:
                collection.add_descriptor(
                    BleakGATTDescriptor(desc, desc.handle, bleak_uuid(desc.type), bleak_char)
                )
    return collection
