"""The demo's wearables: simulated patients wearing virtual wearables, read through bleak.

:class:`DemoWearables` is an async context manager that puts, for each simulated patient, a
virtual chest strap and a virtual skin thermometer on a bumble link, and a virtual CORE
sensor on every other patient (so one patient wears two sensors, another three). Their
values come from the patients' physiology; :attr:`DemoWearables.source` is the ordinary
``ble`` source reaching them through bleak with ``backend=`` set to the bumble backend.
``heatmon demo`` and ``heatmon devices scan --virtual`` use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

from adapters.ble.intake import GapCallback
from adapters.ble.source import BleSource
from adapters.ble.virtual import (
    VirtualChestStrap,
    VirtualCoreSensor,
    VirtualSkinSensor,
    VirtualWearable,
    VirtualWorld,
    VitalsFeed,
    VitalsLike,
)
from monitor.config import DeviceConfig

MIN_REAL_INTERVAL_S = 0.25
"""The wearables notify at most this often in wall-clock time, whatever the demo's speed."""


def demo_address(kind: int, n: int) -> str:
    return f"C0:00:00:00:{kind:02X}:{n:02X}"


def eight_wearables(*, interval_s: float) -> tuple[list[VirtualWearable], list[DeviceConfig]]:
    """Eight wearables on four patients, with constant values (the test and the benchmark):
    patient ``p-00{n+1}`` (n = 0..3) wears a chest strap at 70+n bpm and, for odd n, an HTS
    skin thermometer at 33+n °C, for even n a CORE at 37+n/10 °C core and 33+n °C skin."""
    wearables: list[VirtualWearable] = []
    devices: list[DeviceConfig] = []
    for n in range(4):
        patient = f"p-{n + 1:03d}"
        strap = VirtualChestStrap(
            address=demo_address(0x01, n), heart_rate=_const(70.0 + n), interval_s=interval_s
        )
        wearables.append(strap)
        devices.append(DeviceConfig(address=strap.address, patient=patient, role="heart_rate"))
        temp: VirtualWearable
        if n % 2:
            temp = VirtualSkinSensor(
                address=demo_address(0x02, n), skin_temp=_const(33.0 + n), interval_s=interval_s
            )
            role = "skin_temp"
        else:
            temp = VirtualCoreSensor(
                address=demo_address(0x02, n),
                core_temp=_const(37.0 + n / 10),
                skin_temp=_const(33.0 + n),
                interval_s=interval_s,
            )
            role = "core"
        wearables.append(temp)
        devices.append(DeviceConfig(address=temp.address, patient=patient, role=role))
    return wearables, devices


def _const(value: float) -> Callable[[], float]:
    return lambda: value


class DemoWearables:
    """Virtual wearables for simulated patients, and the ``ble`` source that reads them."""

    def __init__(
        self,
        *,
        patients: Mapping[str, Callable[[float], VitalsLike]],
        speed: float = 1.0,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
        with_core: bool = True,
        on_gap: GapCallback | None = None,
    ) -> None:
        """``patients``: patient id → its ``step`` function; ``speed``: simulated seconds per
        wall-clock second; ``interval_s``: simulated seconds between notifications;
        ``clock``: the demo's (possibly sped-up) UTC clock, used for time stamps;
        ``on_gap``: where the source reports a reconnect's gap (``Monitor.report_gap``)."""
        real_interval = max(interval_s / speed, MIN_REAL_INTERVAL_S)
        wearables: list[VirtualWearable] = []
        devices: list[DeviceConfig] = []
        for n, (patient, step) in enumerate(patients.items()):
            feed = VitalsFeed(step=step, speed=speed)
            strap = VirtualChestStrap(
                address=demo_address(0x10, n),
                heart_rate=feed.heart_rate,
                name=f"HRM {n:02d}",
                interval_s=real_interval,
            )
            skin = VirtualSkinSensor(
                address=demo_address(0x20, n),
                skin_temp=feed.skin_temp,
                name=f"SkinTemp {n:02d}",
                interval_s=real_interval,
                clock=clock,
            )
            wearables += [strap, skin]
            devices += [
                DeviceConfig(address=strap.address, patient=patient, role="heart_rate"),
                DeviceConfig(address=skin.address, patient=patient, role="skin_temp"),
            ]
            if with_core and n % 2 == 0:
                core = VirtualCoreSensor(
                    address=demo_address(0x30, n),
                    core_temp=feed.core_temp,
                    skin_temp=feed.skin_temp,
                    name=f"CORE {n:02d}:0B",
                    interval_s=real_interval,
                )
                wearables.append(core)
                devices.append(DeviceConfig(address=core.address, patient=patient, role="core"))
        self.devices = tuple(devices)
        self.world = VirtualWorld(wearables=wearables)
        self.source = BleSource(
            devices=self.devices,
            scan_timeout_s=5.0,
            reconnect_base_s=0.2,
            reconnect_max_s=5.0,
            scanner_backend=self.world.scanner_backend,
            client_backend=self.world.client_backend,
            clock=clock,
            on_gap=on_gap,
        )

    async def __aenter__(self) -> Self:
        await self.world.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.world.__aexit__(exc_type, exc, tb)
