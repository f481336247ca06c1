"""GATT characteristic values of the wearables heatmon reads: parsers and encoders.

Every parser is a pure function ``parse_*(data, *, where=...) -> typed result``. A payload
that is too short, too long or malformed raises :class:`monitor.errors.ParseError` (and
nothing else), with a message that says what is wrong and at which byte. The encoders are
the inverse (``encode_*(result) -> bytes``); the virtual wearables use them, and the tests
round-trip through them. Multi-byte fields are little-endian, as GATT wants.

Covered (layouts in ``docs/ble.md``):

- Heart Rate Measurement 0x2A37 (every flag), Body Sensor Location 0x2A38;
- Health Thermometer Temperature Measurement 0x2A1C / Intermediate Temperature 0x2A1E
  (IEEE-11073 32-bit FLOAT with its special values, °F, time stamp, temperature type);
- Environmental Sensing Temperature 0x2A6E; Battery Level 0x2A19;
- the greenteg CORE sensor's Core Body Temperature characteristic (service 0x2100...) and
  advertisement, in :mod:`adapters.gatt.core`;
- the field types they share (IEEE-11073 FLOAT, Date Time) and the byte checks every parser
  uses, in :mod:`adapters.gatt.fields`.

Every name of the two submodules is re-exported here: ``from adapters import gatt`` and
``gatt.parse_core_measurement`` work as for the standard characteristics.
"""

from __future__ import annotations

import math
import struct
from enum import IntEnum
from typing import NamedTuple

from adapters.gatt.core import CORE_ADVERT_TEMP_PER_C as CORE_ADVERT_TEMP_PER_C
from adapters.gatt.core import CORE_COMPANY_IDS as CORE_COMPANY_IDS
from adapters.gatt.core import CORE_FAHRENHEIT as CORE_FAHRENHEIT
from adapters.gatt.core import CORE_HEART_RATE as CORE_HEART_RATE
from adapters.gatt.core import CORE_HSI as CORE_HSI
from adapters.gatt.core import CORE_HSI_NOT_AVAILABLE as CORE_HSI_NOT_AVAILABLE
from adapters.gatt.core import CORE_NOT_AVAILABLE as CORE_NOT_AVAILABLE
from adapters.gatt.core import CORE_QUALITY as CORE_QUALITY
from adapters.gatt.core import CORE_QUALITY_MASK as CORE_QUALITY_MASK
from adapters.gatt.core import CORE_RESERVED as CORE_RESERVED
from adapters.gatt.core import CORE_SKIN as CORE_SKIN
from adapters.gatt.core import CoreAdvertisement as CoreAdvertisement
from adapters.gatt.core import CoreMeasurement as CoreMeasurement
from adapters.gatt.core import CoreQuality as CoreQuality
from adapters.gatt.core import core_advert_raw as core_advert_raw
from adapters.gatt.core import core_raw as core_raw
from adapters.gatt.core import encode_core_advertisement as encode_core_advertisement
from adapters.gatt.core import encode_core_measurement as encode_core_measurement
from adapters.gatt.core import parse_core_advertisement as parse_core_advertisement
from adapters.gatt.core import parse_core_measurement as parse_core_measurement
from adapters.gatt.fields import DateTime as DateTime
from adapters.gatt.fields import Float11073 as Float11073
from adapters.gatt.fields import FloatSpecial as FloatSpecial
from adapters.gatt.fields import as_bytes as _bytes
from adapters.gatt.fields import decode_float as decode_float
from adapters.gatt.fields import encode_float as encode_float
from adapters.gatt.fields import need_bytes as _need
from adapters.gatt.fields import no_trailing as _no_trailing
from adapters.gatt.fields import parse_date_time as _parse_date_time
from adapters.gatt.fields import parse_error as _fail

# --- UUIDs (lowercase 128-bit, as bleak normalises them) ------------------------------


def uuid16(short: int) -> str:
    """The full 128-bit form of a 16-bit SIG UUID (``0x180D`` → ``0000180d-0000-...``)."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


HEART_RATE_SERVICE = uuid16(0x180D)
HEALTH_THERMOMETER_SERVICE = uuid16(0x1809)
ENVIRONMENTAL_SENSING_SERVICE = uuid16(0x181A)
BATTERY_SERVICE = uuid16(0x180F)
DEVICE_INFORMATION_SERVICE = uuid16(0x180A)
CORE_SERVICE = "00002100-5b1e-4347-b07c-97b514dae121"

HEART_RATE_MEASUREMENT = uuid16(0x2A37)
BODY_SENSOR_LOCATION = uuid16(0x2A38)
HEART_RATE_CONTROL_POINT = uuid16(0x2A39)
TEMPERATURE_MEASUREMENT = uuid16(0x2A1C)
TEMPERATURE_TYPE = uuid16(0x2A1D)
INTERMEDIATE_TEMPERATURE = uuid16(0x2A1E)
ESS_TEMPERATURE = uuid16(0x2A6E)
BATTERY_LEVEL = uuid16(0x2A19)
CORE_TEMPERATURE = "00002101-5b1e-4347-b07c-97b514dae121"
CORE_CONTROL_POINT = "00002102-5b1e-4347-b07c-97b514dae121"

WEARABLE_SERVICES: tuple[str, ...] = (
    HEART_RATE_SERVICE,
    HEALTH_THERMOMETER_SERVICE,
    ENVIRONMENTAL_SENSING_SERVICE,
    CORE_SERVICE,
)
"""What a scan filters on: a device advertising one of these is a wearable heatmon reads."""

SERVICE_NAMES: dict[str, str] = {
    HEART_RATE_SERVICE: "heart rate",
    HEALTH_THERMOMETER_SERVICE: "health thermometer",
    ENVIRONMENTAL_SENSING_SERVICE: "environmental sensing",
    BATTERY_SERVICE: "battery",
    DEVICE_INFORMATION_SERVICE: "device information",
    CORE_SERVICE: "CORE body temperature",
}

CHARACTERISTIC_NAMES: dict[str, str] = {
    HEART_RATE_MEASUREMENT: "heart rate 0x2A37",
    BODY_SENSOR_LOCATION: "body sensor location 0x2A38",
    TEMPERATURE_MEASUREMENT: "temperature 0x2A1C",
    INTERMEDIATE_TEMPERATURE: "intermediate temperature 0x2A1E",
    TEMPERATURE_TYPE: "temperature type 0x2A1D",
    ESS_TEMPERATURE: "temperature 0x2A6E",
    BATTERY_LEVEL: "battery 0x2A19",
    CORE_TEMPERATURE: "CORE temperature 0x2101",
    CORE_CONTROL_POINT: "CORE control point 0x2102",
}
"""The characteristics heatmon knows, as ``heatmon devices scan --connect`` lists them."""


# --- Heart Rate Measurement 0x2A37 -----------------------------------------------------

HRM_VALUE_UINT16 = 0x01
HRM_CONTACT_DETECTED = 0x02
HRM_CONTACT_SUPPORTED = 0x04
HRM_ENERGY_EXPENDED = 0x08
HRM_RR_INTERVALS = 0x10
RR_UNITS_PER_S = 1024
"""RR intervals are sent in 1/1024 s."""


class HeartRateMeasurement(NamedTuple):
    """One Heart Rate Measurement.

    ``sensor_contact`` is ``None`` when the strap does not support contact detection.
    ``rr_intervals_1024`` are the raw RR intervals in 1/1024 s (see :attr:`rr_intervals_s`).
    ``wide`` says the value was (or is to be) sent as uint16.
    """

    heart_rate_bpm: int
    sensor_contact: bool | None = None
    energy_expended_kj: int | None = None
    rr_intervals_1024: tuple[int, ...] = ()
    wide: bool = False

    @property
    def rr_intervals_s(self) -> tuple[float, ...]:
        return tuple(rr / RR_UNITS_PER_S for rr in self.rr_intervals_1024)


def parse_heart_rate_measurement(
    data: bytes | bytearray | memoryview, *, where: str = "0x2A37"
) -> HeartRateMeasurement:
    raw = _bytes(data)
    _need(raw, 0, 1, "flags", where)
    flags = raw[0]
    at = 1
    wide = bool(flags & HRM_VALUE_UINT16)
    if wide:
        _need(raw, at, 2, "heart rate (uint16)", where)
        (bpm,) = struct.unpack_from("<H", raw, at)
        at += 2
    else:
        _need(raw, at, 1, "heart rate (uint8)", where)
        bpm = raw[at]
        at += 1
    contact: bool | None = None
    if flags & HRM_CONTACT_SUPPORTED:
        contact = bool(flags & HRM_CONTACT_DETECTED)
    energy: int | None = None
    if flags & HRM_ENERGY_EXPENDED:
        _need(raw, at, 2, "energy expended", where)
        (energy,) = struct.unpack_from("<H", raw, at)
        at += 2
    rr: tuple[int, ...] = ()
    if flags & HRM_RR_INTERVALS:
        rest = len(raw) - at
        if rest == 0:
            raise _fail(where, f"RR-interval flag set but no RR interval ({raw.hex(' ')})")
        if rest % 2:
            raise _fail(
                where,
                f"RR intervals are uint16 but {rest} byte(s) follow byte {at - 1} ({raw.hex(' ')})",
            )
        rr = struct.unpack_from(f"<{rest // 2}H", raw, at)
        at = len(raw)
    _no_trailing(raw, at, where)
    return HeartRateMeasurement(
        heart_rate_bpm=bpm,
        sensor_contact=contact,
        energy_expended_kj=energy,
        rr_intervals_1024=tuple(rr),
        wide=wide,
    )


def encode_heart_rate_measurement(m: HeartRateMeasurement) -> bytes:
    wide = m.wide or m.heart_rate_bpm > 0xFF
    flags = HRM_VALUE_UINT16 if wide else 0
    if m.sensor_contact is not None:
        flags |= HRM_CONTACT_SUPPORTED | (HRM_CONTACT_DETECTED if m.sensor_contact else 0)
    body = struct.pack("<H" if wide else "<B", m.heart_rate_bpm)
    if m.energy_expended_kj is not None:
        flags |= HRM_ENERGY_EXPENDED
        body += struct.pack("<H", m.energy_expended_kj)
    if m.rr_intervals_1024:
        flags |= HRM_RR_INTERVALS
        body += struct.pack(f"<{len(m.rr_intervals_1024)}H", *m.rr_intervals_1024)
    return bytes([flags]) + body


def rr_to_1024(seconds: float) -> int:
    """An RR interval in seconds as the strap sends it (rounded to 1/1024 s)."""
    return max(0, min(0xFFFF, round(seconds * RR_UNITS_PER_S)))


# --- Body Sensor Location 0x2A38 -------------------------------------------------------


class BodySensorLocation(IntEnum):
    OTHER = 0
    CHEST = 1
    WRIST = 2
    FINGER = 3
    HAND = 4
    EAR_LOBE = 5
    FOOT = 6


def parse_body_sensor_location(
    data: bytes | bytearray | memoryview, *, where: str = "0x2A38"
) -> BodySensorLocation:
    raw = _bytes(data)
    _need(raw, 0, 1, "body sensor location", where)
    _no_trailing(raw, 1, where)
    try:
        return BodySensorLocation(raw[0])
    except ValueError:
        raise _fail(where, f"body sensor location {raw[0]} is reserved (0..6 defined)") from None


# --- Temperature Measurement 0x2A1C / Intermediate Temperature 0x2A1E ------------------

HTS_FAHRENHEIT = 0x01
HTS_TIME_STAMP = 0x02
HTS_TEMPERATURE_TYPE = 0x04


class TemperatureType(IntEnum):
    """Where an HTS thermometer measures (0 and 10..255 are reserved; there is no "skin")."""

    ARMPIT = 1
    BODY = 2
    EAR = 3
    FINGER = 4
    GASTRO_INTESTINAL = 5
    MOUTH = 6
    RECTUM = 7
    TOE = 8
    TYMPANUM = 9


class TemperatureMeasurement(NamedTuple):
    """A Health Thermometer measurement. ``temperature`` is in the unit it was sent in
    (°F when ``fahrenheit``); :attr:`celsius` converts. ``temperature_type`` keeps reserved
    values as plain ints."""

    temperature: Float11073
    fahrenheit: bool = False
    timestamp: DateTime | None = None
    temperature_type: int | None = None

    @property
    def celsius(self) -> float:
        value = self.temperature.value
        return (value - 32.0) * 5.0 / 9.0 if self.fahrenheit else value


def parse_temperature_measurement(
    data: bytes | bytearray | memoryview, *, where: str = "0x2A1C"
) -> TemperatureMeasurement:
    """Parse 0x2A1C or 0x2A1E (same layout)."""
    raw = _bytes(data)
    _need(raw, 0, 1, "flags", where)
    flags = raw[0]
    _need(raw, 1, 4, "temperature (FLOAT)", where)
    (bits,) = struct.unpack_from("<I", raw, 1)
    temperature = decode_float(bits)
    if temperature.special is FloatSpecial.RESERVED:
        raise _fail(where, "temperature is the reserved FLOAT value 0x00800001")
    at = 5
    stamp: DateTime | None = None
    if flags & HTS_TIME_STAMP:
        stamp = _parse_date_time(raw, at, where)
        at += 7
    kind: int | None = None
    if flags & HTS_TEMPERATURE_TYPE:
        _need(raw, at, 1, "temperature type", where)
        kind = raw[at]
        at += 1
    _no_trailing(raw, at, where)
    return TemperatureMeasurement(
        temperature=temperature,
        fahrenheit=bool(flags & HTS_FAHRENHEIT),
        timestamp=stamp,
        temperature_type=kind,
    )


def encode_temperature_measurement(m: TemperatureMeasurement) -> bytes:
    flags = HTS_FAHRENHEIT if m.fahrenheit else 0
    body = struct.pack("<I", encode_float(m.temperature))
    if m.timestamp is not None:
        flags |= HTS_TIME_STAMP
        body += struct.pack("<HBBBBB", *m.timestamp)
    if m.temperature_type is not None:
        flags |= HTS_TEMPERATURE_TYPE
        body += bytes([m.temperature_type])
    return bytes([flags]) + body


def parse_temperature_type(data: bytes | bytearray | memoryview, *, where: str = "0x2A1D") -> int:
    raw = _bytes(data)
    _need(raw, 0, 1, "temperature type", where)
    _no_trailing(raw, 1, where)
    return raw[0]


# --- Environmental Sensing Temperature 0x2A6E -----------------------------------------

ESS_TEMPERATURE_UNKNOWN = -32768


def parse_ess_temperature(
    data: bytes | bytearray | memoryview, *, where: str = "0x2A6E"
) -> float | None:
    """°C (resolution 0.01), or ``None`` when the sensor says "unknown" (0x8000)."""
    raw = _bytes(data)
    _need(raw, 0, 2, "temperature (sint16)", where)
    _no_trailing(raw, 2, where)
    value: int = struct.unpack("<h", raw)[0]
    if value == ESS_TEMPERATURE_UNKNOWN:
        return None
    return value / 100


def encode_ess_temperature(celsius: float | None) -> bytes:
    if celsius is None or math.isnan(celsius):
        return struct.pack("<h", ESS_TEMPERATURE_UNKNOWN)
    return struct.pack("<h", max(-32767, min(32767, round(celsius * 100))))


# --- Battery Level 0x2A19 -------------------------------------------------------------


def parse_battery_level(data: bytes | bytearray | memoryview, *, where: str = "0x2A19") -> int:
    raw = _bytes(data)
    _need(raw, 0, 1, "battery level", where)
    _no_trailing(raw, 1, where)
    if raw[0] > 100:
        raise _fail(where, f"battery level {raw[0]} % is over 100 %")
    return raw[0]


def encode_battery_level(percent: int) -> bytes:
    if not 0 <= percent <= 100:
        raise ValueError(f"battery level {percent} is not 0..100")
    return bytes([percent])
