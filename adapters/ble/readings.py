"""What the Bluetooth source knows of its wearables' data, apart from the connection: which
characteristics serve which role, the readings a notification carries (:func:`decode`), the
per-device counters, and the clock samples are stamped with."""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

from adapters import gatt
from monitor.model import SampleKind

ROLE_CHARACTERISTICS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "heart_rate": (gatt.HEART_RATE_MEASUREMENT,),
        "skin_temp": (
            gatt.TEMPERATURE_MEASUREMENT,
            gatt.ESS_TEMPERATURE,
            gatt.INTERMEDIATE_TEMPERATURE,
        ),
        "core": (gatt.CORE_TEMPERATURE, gatt.TEMPERATURE_MEASUREMENT),
    }
)
"""Per role, the characteristics that can serve it, best first; the first found is used.
Intermediate Temperature 0x2A1E comes last: HTS sends it "for display while a measurement is
in progress", so a thermometer that also has 0x2A1C is read through its final measurements
(with their time stamps and stored backlog) and 0x2A1E only serves one that has nothing else."""
CONNECT_SERVICES: tuple[str, ...] = (*gatt.WEARABLE_SERVICES, gatt.BATTERY_SERVICE)
"""The services the source asks bleak for (``services=``): backends that can, discover
only these (CoreBluetooth, WinRT, the bumble backend); BlueZ filters what it exposes."""


class UtcMonotonicClock:
    """UTC epoch seconds that never go backwards: wall time at start plus monotonic time."""

    __slots__ = ("_mono0", "_wall0")

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

    def __call__(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0)


@dataclass(slots=True)
class DeviceStats:
    """What the source knows about one wearable; read by ``devices`` and the benchmark."""

    address: str
    patient: str
    role: str
    connected: bool = False
    connects: int = 0
    drops: int = 0
    failed_attempts: int = 0
    samples: int = 0
    duplicates: int = 0
    parse_errors: int = 0
    no_value: int = 0
    untrusted_time: int = 0
    gaps: int = 0
    gap_seconds: float = 0.0
    battery_percent: int | None = None
    body_location: str | None = None
    last_error: str = ""
    connected_at: float | None = None
    first_sample_after_connect_s: float | None = None
    last_sample_time: float | None = None
    subscribed: tuple[str, ...] = ()


class Reading(NamedTuple):
    """One value a notification carried (a CORE sensor's can carry three)."""

    kind: SampleKind
    value: float
    device_time: float | None = None
    rr_intervals: tuple[float, ...] = ()
    sensor_contact: bool | None = None


def decode(
    uuid: str, data: bytes, *, where: str, role: str, patient_roles: Collection[str]
) -> list[Reading]:
    """The readings in one notification of characteristic ``uuid`` from a wearable serving
    ``role`` (``patient_roles``: every role the patient's wearables serve, so a CORE sensor's
    skin temperature or heart rate is used only when no other wearable gives it). Raises
    :class:`~monitor.errors.ParseError` for a malformed payload."""
    if uuid == gatt.BATTERY_LEVEL:
        return [Reading(SampleKind.BATTERY, float(gatt.parse_battery_level(data, where=where)))]
    if uuid == gatt.HEART_RATE_MEASUREMENT:
        hrm = gatt.parse_heart_rate_measurement(data, where=where)
        return [
            Reading(
                SampleKind.HEART_RATE,
                float(hrm.heart_rate_bpm),
                rr_intervals=hrm.rr_intervals_s,
                sensor_contact=hrm.sensor_contact,
            )
        ]
    if uuid in (gatt.TEMPERATURE_MEASUREMENT, gatt.INTERMEDIATE_TEMPERATURE):
        tm = gatt.parse_temperature_measurement(data, where=where)
        kind = SampleKind.CORE_TEMP if role == "core" else SampleKind.SKIN_TEMP
        stamp = tm.timestamp.epoch_utc() if tm.timestamp is not None else None
        return [Reading(kind, tm.celsius, device_time=stamp)]
    if uuid == gatt.ESS_TEMPERATURE:
        value = gatt.parse_ess_temperature(data, where=where)
        return [Reading(SampleKind.SKIN_TEMP, math.nan if value is None else value)]
    if uuid == gatt.CORE_TEMPERATURE:
        core = gatt.parse_core_measurement(data, where=where)
        out = [Reading(SampleKind.CORE_TEMP, or_nan(core.core_temp_c))]
        if core.skin_raw is not None and "skin_temp" not in patient_roles:
            out.append(Reading(SampleKind.SKIN_TEMP, or_nan(core.skin_temp_c)))
        if core.heart_rate_state == 2 and core.heart_rate_bpm and "heart_rate" not in patient_roles:
            out.append(Reading(SampleKind.HEART_RATE, float(core.heart_rate_bpm)))
        return out
    return []


def short_uuid(uuid: str) -> str:
    if uuid.endswith("-0000-1000-8000-00805f9b34fb") and uuid.startswith("0000"):
        return "0x" + uuid[4:8].upper()
    if uuid == gatt.CORE_TEMPERATURE:
        return "CORE 0x2101"
    return uuid


def or_nan(value: float | None) -> float:
    return math.nan if value is None else value
