"""``heatmon devices scan``: list nearby wearables and what they offer.

Scans (filtered by the wearable services: heart rate, health thermometer, environmental
sensing, CORE) and prints one row per device: address, name, signal, the services it
advertises, the role it can serve and what the advert itself carries (a CORE's current core
temperature). ``--virtual`` scans the demo's virtual wearables
(bumble GATT servers on an in-process link) instead of the Bluetooth adapter, so the command
runs without hardware; ``--connect`` also connects to each device, lists the measurement
characteristics it offers (and whether they notify or indicate) and reads its battery and
body sensor location.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from adapters import gatt
from monitor.commands._text import plain
from monitor.errors import ParseError, SourceError

log = logging.getLogger(__name__)

ROLE_BY_SERVICE = {
    gatt.HEART_RATE_SERVICE: "heart_rate",
    gatt.HEALTH_THERMOMETER_SERVICE: "skin_temp",
    gatt.ENVIRONMENTAL_SENSING_SERVICE: "skin_temp",
    gatt.CORE_SERVICE: "core",
}


class Found(NamedTuple):
    address: str
    name: str
    rssi: int
    services: tuple[str, ...]
    roles: tuple[str, ...]
    advertised: str = ""
    battery: int | None = None
    location: str | None = None
    characteristics: tuple[str, ...] = ()


Backends = tuple[type[BaseBleakScanner], type[BaseBleakClient]]


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "devices", help="Bluetooth wearables: scan for them and show what they offer"
    )
    dsub = p.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    scan = dsub.add_parser("scan", help="list nearby wearables and the services they offer")
    scan.add_argument(
        "--timeout",
        type=_scan_seconds,
        default=5.0,
        help="seconds to scan (default 5; at most 600)",
    )
    scan.add_argument(
        "--virtual",
        action="store_true",
        help="scan the demo's virtual wearables (no Bluetooth hardware needed)",
    )
    scan.add_argument(
        "--connect", action="store_true", help="connect to each and read battery and location"
    )
    scan.set_defaults(func=run_scan)


def advertised_reading(device: BLEDevice, adv: AdvertisementData) -> str:
    """What the advert itself says (a CORE's current core temperature), or ``""``."""
    for company in gatt.CORE_COMPANY_IDS:
        payload = adv.manufacturer_data.get(company)
        if payload is None or gatt.CORE_SERVICE not in adv.service_uuids:
            continue
        try:
            advert = gatt.parse_core_advertisement(payload, where=f"{device.address} advert")
        except ParseError as err:
            log.warning("devices: %s", err)
            return "unreadable"
        return f"core {advert.core_temp_c:.2f} °C"
    return ""


def describe(device: BLEDevice, adv: AdvertisementData) -> Found:
    services = tuple(gatt.SERVICE_NAMES.get(u, u) for u in adv.service_uuids)
    roles = tuple(sorted({ROLE_BY_SERVICE[u] for u in adv.service_uuids if u in ROLE_BY_SERVICE}))
    return Found(
        address=device.address,
        name=adv.local_name or device.name or "",
        rssi=adv.rssi,
        services=services,
        roles=roles,
        advertised=advertised_reading(device, adv),
    )


def offered(client: BleakClient) -> tuple[str, ...]:
    """The characteristics heatmon knows that the device has, with how they are sent."""
    out = []
    for char in client.services.characteristics.values():
        name = gatt.CHARACTERISTIC_NAMES.get(char.uuid)
        if name is not None:
            out.append(f"{name} ({'/'.join(char.properties)})")
    return tuple(out)


async def read_details(
    found: Found, device: BLEDevice, client_backend: type[BaseBleakClient] | None
) -> Found:
    kwargs: dict[str, Any] = {"timeout": 10.0}
    if client_backend is not None:
        kwargs["backend"] = client_backend
    try:
        async with BleakClient(device, **kwargs) as client:
            found = found._replace(characteristics=offered(client))
            battery = client.services.get_characteristic(gatt.BATTERY_LEVEL)
            location = client.services.get_characteristic(gatt.BODY_SENSOR_LOCATION)
            if battery is not None:
                found = found._replace(
                    battery=gatt.parse_battery_level(await client.read_gatt_char(battery))
                )
            if location is not None:
                raw = await client.read_gatt_char(location)
                found = found._replace(location=gatt.parse_body_sensor_location(raw).name.lower())
    except (BleakError, TimeoutError, ParseError) as err:
        log.warning("devices: %s: could not read details: %s", found.address, err)
    return found


async def scan(
    *,
    timeout_s: float,
    connect: bool,
    scanner_backend: type[BaseBleakScanner] | None = None,
    client_backend: type[BaseBleakClient] | None = None,
    progress: bool = False,
) -> list[Found]:
    """Scan for wearables; the backends are only for ``backend=`` (virtual wearables)."""
    kwargs: dict[str, Any] = {}
    if scanner_backend is not None:
        kwargs["backend"] = scanner_backend
    with _progress(progress, f"scanning for {timeout_s:g} s") as _:
        try:
            seen = await BleakScanner.discover(
                timeout=timeout_s,
                service_uuids=list(gatt.WEARABLE_SERVICES),
                return_adv=True,
                **kwargs,
            )
        except (BleakError, OSError) as err:
            raise SourceError(f"cannot scan for Bluetooth devices: {err}") from err
    found = []
    for device, adv in sorted(seen.values(), key=lambda pair: pair[0].address):
        item = describe(device, adv)
        if connect:
            item = await read_details(item, device, client_backend)
        found.append(item)
    return found


@contextlib.contextmanager
def _progress(enabled: bool, text: str) -> Any:
    if not enabled:
        yield None
        return
    with Progress(
        SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), transient=True
    ) as progress:
        progress.add_task(text, total=None)
        yield progress


@contextlib.asynccontextmanager
async def _virtual_backends() -> AsyncIterator[
    tuple[type[BaseBleakScanner], type[BaseBleakClient]]
]:
    from adapters.ble.demo import DemoWearables
    from adapters.simulator import SCENARIOS, SimulatedPatient
    from monitor.demo import DEMO_PATIENTS

    patients = {
        p.id: SimulatedPatient(scenario=SCENARIOS[p.scenario], seed=n).step
        for n, p in enumerate(DEMO_PATIENTS)
    }
    async with DemoWearables(patients=patients) as kit:
        yield kit.world.scanner_backend, kit.world.client_backend


def _scan_seconds(text: str) -> float:
    """``--timeout``: a number of seconds above 0 and at most 600 (not NaN, not negative)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.0 < value <= 600.0:
        raise argparse.ArgumentTypeError(f"{text!r}: scan above 0 and at most 600 seconds")
    return value


async def _scan_main(args: argparse.Namespace, console: Console) -> list[Found]:
    if args.virtual:
        async with _virtual_backends() as (scanner, client):
            return await scan(
                timeout_s=args.timeout,
                connect=args.connect,
                scanner_backend=scanner,
                client_backend=client,
                progress=console.is_terminal,
            )
    return await scan(timeout_s=args.timeout, connect=args.connect, progress=console.is_terminal)


def run_scan(args: argparse.Namespace) -> int:
    console = Console()
    found = asyncio.run(_scan_main(args, console))
    if not found:
        console.print("no wearables found (is Bluetooth on and the wearable awake?)")
        return 1
    table = Table(title=f"{len(found)} wearable(s)" + (" (virtual)" if args.virtual else ""))
    table.add_column("address", no_wrap=True)
    for col in ("name", "rssi", "services", "can serve as", "advertises"):
        table.add_column(col)
    if args.connect:
        table.add_column("characteristics")
        table.add_column("battery")
        table.add_column("location")
    for f in found:
        row = [
            f.address,
            f.name,
            f"{f.rssi} dBm",
            ", ".join(f.services),
            ", ".join(f.roles),
            f.advertised or "–",
        ]
        if args.connect:
            row += [
                "\n".join(f.characteristics) or "–",
                "–" if f.battery is None else f"{f.battery} %",
                f.location or "–",
            ]
        table.add_row(*(plain(text) for text in row))
    console.print(table)
    console.print(
        "Add a wearable to the configuration as "
        '[[devices]] address = "…", patient = "…", role = "heart_rate|skin_temp|core"',
        markup=False,
    )
    return 0
