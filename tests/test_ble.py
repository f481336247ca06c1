"""The BLE adapter end to end: bleak's public API against bumble peripherals speaking real
GATT over bumble's in-process link. Only ``backend=`` differs from real hardware."""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from bleak import BleakClient, BleakScanner
from bumble.gatt import Service

from adapters import gatt
from adapters.ble.demo import eight_wearables
from adapters.ble.source import BleSource
from adapters.ble.virtual import (
    VirtualChestStrap,
    VirtualCoreSensor,
    VirtualEssSensor,
    VirtualSkinSensor,
    VirtualWearable,
    VirtualWorld,
)
from monitor.config import DeviceConfig, parse_config
from monitor.errors import ConfigError
from monitor.model import Event, EventKind, Sample, SampleKind, ThermalState
from monitor.plugins import PluginContext, source_class
from monitor.service import build_monitor

WAIT_S = 10.0
STRAP = "C0:00:00:00:00:01"
SKIN = "C0:00:00:00:00:02"
CORE = "C0:00:00:00:00:03"


def const(value: float) -> Callable[[], float]:
    return lambda: value


class Collector:
    """Collects emitted samples; lets a test await a condition on them."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self._changed = asyncio.Condition()

    async def emit(self, sample: Sample) -> None:
        async with self._changed:
            self.samples.append(sample)
            self._changed.notify_all()

    async def wait_for(
        self, predicate: Callable[[list[Sample]], bool], timeout_s: float = WAIT_S
    ) -> None:
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: predicate(self.samples))

    def of(self, device: str, kind: SampleKind) -> list[Sample]:
        return [s for s in self.samples if s.device == device and s.kind is kind]


@asynccontextmanager
async def running(source: BleSource) -> AsyncIterator[Collector]:
    collector = Collector()
    task = asyncio.create_task(source.run(collector.emit))
    try:
        yield collector
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def ble_source(world: VirtualWorld, devices: list[DeviceConfig], **kwargs: object) -> BleSource:
    return BleSource(
        devices=devices,
        scan_timeout_s=2.0,
        reconnect_base_s=0.1,
        reconnect_max_s=0.5,
        scanner_backend=world.scanner_backend,
        client_backend=world.client_backend,
        **kwargs,  # type: ignore[arg-type]
    )


class VirtualBeacon(VirtualWearable):
    """Something nearby that is not a wearable heatmon reads (battery service only)."""

    services_advertised = (gatt.BATTERY_SERVICE,)

    def services(self) -> list[Service]:
        return []

    async def tick(self) -> None:
        pass


async def test_scan_finds_wearables_by_service() -> None:
    world = VirtualWorld(
        wearables=[
            VirtualChestStrap(address=STRAP, heart_rate=lambda: 72.0),
            VirtualSkinSensor(address=SKIN, skin_temp=lambda: 34.5),
            VirtualCoreSensor(address=CORE, core_temp=lambda: 37.2),
            VirtualBeacon(address="C0:00:00:00:00:09", name="Beacon", interval_s=1.0),
        ]
    )
    async with world:
        found = await BleakScanner.discover(
            timeout=0.5,
            service_uuids=list(gatt.WEARABLE_SERVICES),
            return_adv=True,
            backend=world.scanner_backend,
        )
        by_address = {d.address: adv for d, adv in found.values()}
        assert set(by_address) == {STRAP, SKIN, CORE}
        assert gatt.HEART_RATE_SERVICE in by_address[STRAP].service_uuids
        assert gatt.CORE_SERVICE in by_address[CORE].service_uuids
        assert by_address[CORE].local_name == "CORE 0A:0B"
        # the CORE's advert carries its current core temperature (0.001 °C)
        advert = gatt.parse_core_advertisement(
            by_address[CORE].manufacturer_data[gatt.CORE_COMPANY_IDS[0]]
        )
        assert advert.core_temp_c == pytest.approx(37.2)

        only_hr = await BleakScanner.discover(
            timeout=0.5, service_uuids=[gatt.HEART_RATE_SERVICE], backend=world.scanner_backend
        )
        assert [d.address for d in only_hr] == [STRAP]


async def test_bleak_client_reads_and_subscribes() -> None:
    """The backend under bleak's public API: discovery, read, notify, indicate."""
    strap = VirtualChestStrap(address=STRAP, heart_rate=lambda: 80.0, interval_s=0.1)
    skin = VirtualSkinSensor(address=SKIN, skin_temp=lambda: 33.25, fahrenheit=True)
    async with VirtualWorld(wearables=[strap, skin]) as world:
        device = await BleakScanner.find_device_by_address(
            STRAP, timeout=2.0, backend=world.scanner_backend
        )
        assert device is not None
        async with BleakClient(device, backend=world.client_backend) as client:
            assert client.is_connected
            assert await client.read_gatt_char(gatt.BATTERY_LEVEL) == bytearray([87])
            location = await client.read_gatt_char(gatt.BODY_SENSOR_LOCATION)
            assert gatt.parse_body_sensor_location(location) is gatt.BodySensorLocation.CHEST
            got: asyncio.Queue[bytes] = asyncio.Queue()
            await client.start_notify(
                gatt.HEART_RATE_MEASUREMENT, lambda _c, data: got.put_nowait(bytes(data))
            )
            async with asyncio.timeout(3):
                hrm = gatt.parse_heart_rate_measurement(await got.get())
            assert hrm.heart_rate_bpm == 80
            assert hrm.sensor_contact is True
            assert hrm.rr_intervals_s == pytest.approx((0.75,), abs=1 / 1024)
        assert not client.is_connected

        async with BleakClient(SKIN, backend=world.client_backend) as client:
            temps: asyncio.Queue[bytes] = asyncio.Queue()
            char = client.services.get_characteristic(gatt.TEMPERATURE_MEASUREMENT)
            assert char is not None and char.properties == ["indicate"]
            await client.start_notify(char, lambda _c, data: temps.put_nowait(bytes(data)))
            async with asyncio.timeout(3):
                tm = gatt.parse_temperature_measurement(await temps.get())
            assert tm.fahrenheit
            assert tm.celsius == pytest.approx(33.25, abs=0.01)
            assert tm.timestamp is not None and tm.timestamp.known


async def test_first_samples_within_3_s_of_connecting() -> None:
    world = VirtualWorld(
        wearables=[
            VirtualChestStrap(address=STRAP, heart_rate=lambda: 72.0, interval_s=0.2),
            VirtualSkinSensor(address=SKIN, skin_temp=lambda: 34.5, interval_s=1.0),
            VirtualCoreSensor(
                address=CORE,
                core_temp=lambda: 37.2,
                skin_temp=lambda: 34.0,
                heat_strain_index=lambda: 2.5,
                interval_s=0.2,
            ),
        ]
    )
    devices = [
        DeviceConfig(address=STRAP, patient="p-001", role="heart_rate"),
        DeviceConfig(address=SKIN, patient="p-001", role="skin_temp"),
        DeviceConfig(address=CORE, patient="p-001", role="core"),
    ]
    async with world:
        source = ble_source(world, devices)
        async with running(source) as got:
            await got.wait_for(
                lambda _: all(
                    got.of(d, k)
                    for d, k in (
                        (STRAP, SampleKind.HEART_RATE),
                        (SKIN, SampleKind.SKIN_TEMP),
                        (CORE, SampleKind.CORE_TEMP),
                    )
                )
            )
        stats = source.stats
        for address in (STRAP, SKIN, CORE):
            latency = stats[address].first_sample_after_connect_s
            assert latency is not None and latency < 3.0, (address, latency)
        hr = got.of(STRAP, SampleKind.HEART_RATE)[0]
        assert (hr.patient, hr.value, hr.sensor_contact, hr.source) == ("p-001", 72.0, True, "ble")
        assert hr.rr_intervals == pytest.approx((60 / 72,), abs=1 / 1024)
        assert got.of(SKIN, SampleKind.SKIN_TEMP)[0].value == pytest.approx(34.5)
        assert got.of(CORE, SampleKind.CORE_TEMP)[0].value == pytest.approx(37.2)
        # the patient wears a skin sensor, so the CORE's skin value is not used
        assert not got.of(CORE, SampleKind.SKIN_TEMP)
        assert {s.value for s in got.samples if s.kind is SampleKind.BATTERY} == {87.0}
        assert stats[STRAP].body_location == "chest"
        assert stats[SKIN].subscribed == ("0x2A1C", "0x2A19")
        assert stats[CORE].subscribed == ("CORE 0x2101", "0x2A19")


@pytest.mark.slow
async def test_recovers_after_drop_reports_gap_and_emits_no_duplicates() -> None:
    beats = itertools.count(60)
    strap = VirtualChestStrap(address=STRAP, heart_rate=lambda: float(next(beats)), interval_s=0.1)
    skin = VirtualSkinSensor(address=SKIN, skin_temp=lambda: 34.0 + time.time() % 1, interval_s=1.0)
    devices = [
        DeviceConfig(address=STRAP, patient="p-001", role="heart_rate"),
        DeviceConfig(address=SKIN, patient="p-001", role="skin_temp"),
    ]
    gaps: list[tuple[str, str, float, float]] = []
    async with VirtualWorld(wearables=[strap, skin]) as world:
        source = ble_source(world, devices, on_gap=lambda *gap: gaps.append(gap))
        async with running(source) as got:
            await got.wait_for(lambda _: len(world.gatt_cache) == 2)
            cached = dict(world.gatt_cache)
            await got.wait_for(
                lambda _: (
                    len(got.of(STRAP, SampleKind.HEART_RATE)) >= 3
                    and len(got.of(SKIN, SampleKind.SKIN_TEMP)) >= 2
                )
            )
            # the strap drops the link and advertises again at once; the thermometer goes
            # out of range for a while and stores what it measures meanwhile
            hr_before = len(got.of(STRAP, SampleKind.HEART_RATE))
            skin_before = len(got.of(SKIN, SampleKind.SKIN_TEMP))
            outage_start = time.time()
            await skin.go_out_of_range()
            await strap.drop_connection()
            await asyncio.sleep(2.5)
            await skin.start_advertising()
            await got.wait_for(
                lambda _: (
                    len(got.of(STRAP, SampleKind.HEART_RATE)) >= hr_before + 3
                    and len(got.of(SKIN, SampleKind.SKIN_TEMP)) >= skin_before + 4
                )
            )
            await asyncio.sleep(0.3)  # let the re-sent measurement arrive and be dropped
        stats = source.stats
        # each wearable's GATT database was discovered once and served from the cache on
        # the reconnect (a rediscovery stores a new entry); the subscriptions made with the
        # cached handles delivered the samples counted above
        assert {key[0] for key in world.gatt_cache} == {STRAP, SKIN}
        assert all(world.gatt_cache[key] is entry for key, entry in cached.items())

    for address in (STRAP, SKIN):
        assert stats[address].connects == 2, stats[address]
        assert stats[address].drops == 1
    # the gap is reported once per device, spanning the drop
    assert sorted(g[1] for g in gaps) == [STRAP, SKIN]
    for patient, _device, start, end in gaps:
        assert patient == "p-001"
        assert start < end
    # no duplicates: per device and kind, strictly increasing times and no repeated reading
    for address, kind in ((STRAP, SampleKind.HEART_RATE), (SKIN, SampleKind.SKIN_TEMP)):
        times = [s.time for s in got.of(address, kind)]
        assert times == sorted(set(times)), address
    hr_values = [s.value for s in got.of(STRAP, SampleKind.HEART_RATE)]
    assert len(hr_values) == len(set(hr_values))
    # the thermometer re-sent its last measurement after reconnecting: dropped, counted
    assert skin.resent >= 1
    assert stats[SKIN].duplicates >= 1
    # what it stored while out of range came through with its own time stamps
    skin_times = [s.time for s in got.of(SKIN, SampleKind.SKIN_TEMP)]
    assert any(outage_start + 0.5 < t < outage_start + 2.0 for t in skin_times), skin_times


async def test_eight_wearables_on_four_patients() -> None:
    wearables, devices = eight_wearables(interval_s=0.2)
    async with VirtualWorld(wearables=wearables) as world:
        source = ble_source(world, devices)
        async with running(source) as got:
            await got.wait_for(
                lambda samples: all(
                    sum(
                        s.device == d.address.upper() and s.kind is not SampleKind.BATTERY
                        for s in samples
                    )
                    >= 2
                    for d in devices
                ),
                timeout_s=20.0,
            )
            # all eight connected at the same time, each on its first connection
            assert [st.connected for st in source.stats.values()] == [True] * 8
            assert [st.connects for st in source.stats.values()] == [1] * 8
        assert all(st.connected is False for st in source.stats.values())
    for n in range(4):
        patient = f"p-{n + 1:03d}"
        mine = [s for s in got.samples if s.patient == patient]
        assert {s.value for s in mine if s.kind is SampleKind.HEART_RATE} == {70.0 + n}
        assert {round(s.value, 2) for s in mine if s.kind is SampleKind.SKIN_TEMP} == {33.0 + n}
        cores = {round(s.value, 2) for s in mine if s.kind is SampleKind.CORE_TEMP}
        assert cores == (set() if n % 2 else {round(37.0 + n / 10, 2)})


class GarbledStrap(VirtualChestStrap):
    """A strap whose firmware sends a truncated measurement every other time."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.ticks = 0

    def measurement(self) -> bytes:
        self.ticks += 1
        good = super().measurement()
        return good[:1] if self.ticks % 2 else good


async def test_malformed_payloads_are_counted_and_the_source_keeps_going(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING", logger="adapters.ble.intake")
    strap = GarbledStrap(address=STRAP, heart_rate=lambda: 75.0, interval_s=0.1)
    devices = [DeviceConfig(address=STRAP, patient="p-001", role="heart_rate")]
    async with VirtualWorld(wearables=[strap]) as world:
        source = ble_source(world, devices)
        async with running(source) as got:
            await got.wait_for(lambda _: len(got.of(STRAP, SampleKind.HEART_RATE)) >= 3)
        stats = source.stats[STRAP]
    assert stats.parse_errors >= 2
    assert "too short: heart rate" in stats.last_error
    # the typed error names the device and the characteristic, and it is logged
    assert stats.last_error.startswith(f"{STRAP} 0x2A37: payload too short")
    rejected = [r.getMessage() for r in caplog.records if "rejected payload" in r.getMessage()]
    assert len(rejected) == min(stats.parse_errors, 10)
    assert all(f"{STRAP} 0x2A37" in line for line in rejected)
    assert stats.connects == 1  # the bad payloads did not cost the connection
    assert {s.value for s in got.of(STRAP, SampleKind.HEART_RATE)} == {75.0}


def test_plugin_registered_and_options_validated() -> None:
    assert source_class("ble") is BleSource
    config = parse_config(
        {
            "patients": [{"id": "p-001"}],
            "devices": [{"address": STRAP, "patient": "p-001", "role": "heart_rate"}],
        },
        environ={},
    )
    context = PluginContext(config=config, instance="test")
    source = BleSource.from_options({"scan_timeout_s": 3}, context=context)
    assert list(source.stats) == [STRAP]
    with pytest.raises(
        ConfigError, match=r"sources.ble.scan_timeout: Extra inputs .* scan_timeout_s"
    ):
        BleSource.from_options({"scan_timeout": 3}, context=context)
    with pytest.raises(ConfigError, match=r"sources.ble.scan_timeout_s: Input should be greater"):
        BleSource.from_options({"scan_timeout_s": 0}, context=context)


def test_devices_scan_lists_the_virtual_wearables(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.cli import main

    monkeypatch.setenv("COLUMNS", "200")  # one table row per device

    assert main(["devices", "scan", "--virtual", "--timeout", "0.5", "--connect"]) == 0
    out = capsys.readouterr().out
    assert out.count("HRM 0") == 4  # four demo patients, one strap each
    assert out.count("SkinTemp 0") == 4
    assert out.count("CORE 0") == 2
    assert "chest" in out  # body sensor location read over GATT
    # what each offers: its characteristics and how they are sent, and a CORE's advert
    assert out.count("heart rate 0x2A37 (notify)") == 4
    assert out.count("temperature 0x2A1C (indicate)") == 4
    assert out.count("CORE temperature 0x2101 (read/notify)") == 2
    assert len(re.findall(r"core 3\d\.\d\d °C", out)) == 2


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "1e9", "soon"])
def test_devices_scan_refuses_a_timeout_that_is_no_scan(
    timeout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["devices", "scan", "--virtual", "--timeout", timeout])
    assert exit_.value.code == 2
    assert f"argument --timeout: {timeout!r}" in capsys.readouterr().err


async def test_ess_skin_patch_end_to_end() -> None:
    """A skin patch on Environmental Sensing: the adapter subscribes to 0x2A6E; "unknown"
    readings (0x8000) are counted, not emitted."""
    ticks = itertools.count()
    patch = VirtualEssSensor(
        address=SKIN,
        skin_temp=lambda: math.nan if next(ticks) % 3 == 0 else 33.27,
        interval_s=0.1,
    )
    devices = [DeviceConfig(address=SKIN, patient="p-001", role="skin_temp")]
    async with VirtualWorld(wearables=[patch]) as world:
        source = ble_source(world, devices)
        async with running(source) as got:
            await got.wait_for(
                lambda _: (
                    len(got.of(SKIN, SampleKind.SKIN_TEMP)) >= 4
                    and source.stats[SKIN].no_value >= 1
                )
            )
        stats = source.stats[SKIN]
    assert stats.subscribed == ("0x2A6E", "0x2A19")
    skin = got.of(SKIN, SampleKind.SKIN_TEMP)
    assert {s.value for s in skin} == {33.27}
    assert all((s.patient, s.source) == ("p-001", "ble") for s in skin)
    assert [s.time for s in skin] == sorted({s.time for s in skin})
    assert stats.parse_errors == 0


@pytest.mark.parametrize(
    ("final", "subscribed", "value"),
    [(True, ("0x2A1C", "0x2A19"), 34.5), (False, ("0x2A1E", "0x2A19"), 33.7)],
    ids=["final-and-intermediate", "intermediate-only"],
)
async def test_thermometer_with_intermediate_temperature(
    final: bool, subscribed: tuple[str, ...], value: float
) -> None:
    """A thermometer that also notifies Intermediate Temperature 0x2A1E (33.7 °C while its
    final measurements say 34.5 °C) is read through its final measurements; one that only
    has 0x2A1E is read through that."""
    thermometer = VirtualSkinSensor(
        address=SKIN,
        skin_temp=const(34.5),
        intermediate=const(33.7),
        final_measurements=final,
        interval_s=0.2,
    )
    devices = [DeviceConfig(address=SKIN, patient="p-001", role="skin_temp")]
    async with VirtualWorld(wearables=[thermometer]) as world:
        source = ble_source(world, devices)
        async with running(source) as got:
            await got.wait_for(lambda _: len(got.of(SKIN, SampleKind.SKIN_TEMP)) >= 3)
        stats = source.stats[SKIN]
    assert stats.subscribed == subscribed
    skin = got.of(SKIN, SampleKind.SKIN_TEMP)
    assert {round(s.value, 2) for s in skin} == {value}
    assert [s.time for s in skin] == sorted({s.time for s in skin})


async def test_core_without_its_custom_service_falls_back_to_health_thermometer() -> None:
    core = VirtualCoreSensor(
        address=CORE,
        core_temp=const(37.45),
        skin_temp=const(34.0),
        custom_service=False,
        interval_s=0.2,
    )
    devices = [DeviceConfig(address=CORE, patient="p-001", role="core")]
    async with VirtualWorld(wearables=[core]) as world:
        source = ble_source(world, devices)
        async with running(source) as got:
            await got.wait_for(lambda _: len(got.of(CORE, SampleKind.CORE_TEMP)) >= 3)
        stats = source.stats[CORE]
    assert stats.subscribed == ("0x2A1C", "0x2A19")
    assert {round(s.value, 2) for s in got.of(CORE, SampleKind.CORE_TEMP)} == {37.45}
    assert not got.of(CORE, SampleKind.SKIN_TEMP)  # HTS carries no skin temperature


async def test_core_control_point_answers_through_bleak() -> None:
    core = VirtualCoreSensor(address=CORE, core_temp=const(37.0))
    async with (
        VirtualWorld(wearables=[core]) as world,
        BleakClient(CORE, backend=world.client_backend) as client,
    ):
        answers: asyncio.Queue[bytes] = asyncio.Queue()
        await client.start_notify(
            gatt.CORE_CONTROL_POINT, lambda _c, data: answers.put_nowait(bytes(data))
        )
        await client.write_gatt_char(gatt.CORE_CONTROL_POINT, b"\x05\x01", response=True)
        async with asyncio.timeout(3):
            assert await answers.get() == b"\x80\x05\x02"
    assert core.control_requests == [b"\x05\x01"]


async def test_forced_drop_becomes_a_quality_event_in_the_monitor() -> None:
    """Configured as ``heatmon run`` builds it: the ``ble`` source from ``[sources.ble]``
    and ``[[devices]]``, its gap handed to ``Monitor.report_gap``; the patient gets a
    data-quality event."""
    config = parse_config(
        {
            "patients": [{"id": "p-001"}],
            "devices": [{"address": STRAP, "patient": "p-001", "role": "heart_rate"}],
            "sources": {},
            "engine": {"step_s": 0.5},  # a state every 0.5 s of data: the data flows
        },
        environ={},
    )
    strap = VirtualChestStrap(address=STRAP, heart_rate=const(90.0), interval_s=0.1)
    events: list[Event] = []
    quality = asyncio.Event()
    flowing = asyncio.Event()

    def listen(item: ThermalState | Event) -> None:
        if isinstance(item, ThermalState) and item.heart_rate_bpm == 90.0:
            flowing.set()
        if isinstance(item, Event):
            events.append(item)
            if item.kind is EventKind.QUALITY and "out of touch" in item.message:
                quality.set()

    async with VirtualWorld(wearables=[strap]) as world:
        monitor = build_monitor(config)
        monitor.add_listener(listen)
        source = BleSource.from_options(
            {"scan_timeout_s": 2, "reconnect_base_s": 0.1, "reconnect_max_s": 0.5},
            context=PluginContext(config=config, instance="test", monitor=monitor),
            scanner_backend=world.scanner_backend,
            client_backend=world.client_backend,
        )
        monitor.add_source(source)
        async with monitor:
            async with asyncio.timeout(WAIT_S):
                await flowing.wait()
            assert not quality.is_set()
            await strap.drop_connection()
            async with asyncio.timeout(WAIT_S):
                await quality.wait()
        stats = source.stats[STRAP]
    assert (stats.drops, stats.connects, stats.gaps) == (1, 2, 1)
    gap_events = [e for e in events if e.kind is EventKind.QUALITY and "out of touch" in e.message]
    assert len(gap_events) == 1
    assert gap_events[0].patient == "p-001"
    assert STRAP in gap_events[0].message


def test_devices_scan_shows_a_hostile_name_as_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone in radio range chooses the name their device advertises. ``heatmon devices
    scan`` put it in a rich table as markup: "[/]" stopped the scan with a MarkupError
    traceback, "[link=…]" made a hyperlink and escape sequences (clear the screen, OSC 8
    links) reached the terminal. Now the name is plain text without control characters."""
    from monitor.cli import main
    from monitor.commands import devices

    hostile = "Polar [/] [link=https://evil.example]H10[/link]\x1b[2J\x1b]8;;http://x\x1b\\"

    @asynccontextmanager
    async def backends() -> AsyncIterator[tuple[object, object]]:
        world = VirtualWorld(
            wearables=[VirtualChestStrap(address=STRAP, name=hostile, heart_rate=lambda: 72.0)]
        )
        async with world:
            yield world.scanner_backend, world.client_backend

    monkeypatch.setattr(devices, "_virtual_backends", backends)
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["devices", "scan", "--virtual", "--timeout", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "Polar [/] [link=https://evil.example]H10[/link]" in out
    assert "\x1b" not in out
