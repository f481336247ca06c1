"""The :class:`VirtualWorld` (the link, its wearables and centrals) and :class:`VitalsFeed`
(values for the wearables from a simulated patient)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Protocol, Self

from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import BaseBleakScanner
from bumble.controller import Controller
from bumble.device import Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from adapters.ble.bumble_backend import backends_for
from adapters.ble.bumble_gatt import GattCache
from adapters.ble.virtual.wearable import CENTRAL_ADDRESS_PREFIX, VirtualWearable


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
