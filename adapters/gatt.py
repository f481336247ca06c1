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
- the greenteg CORE sensor's Core Body Temperature characteristic (service 0x2100...).
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime
from enum import IntEnum
from typing import NamedTuple

from monitor.errors import ParseError

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


def _fail(where: str, message: str) -> ParseError:
    return ParseError(message, where=where)


def _need(data: bytes, at: int, size: int, field: str, where: str) -> None:
    if len(data) < at + size:
        raise _fail(
            where,
            f"payload too short: {field} needs bytes {at}..{at + size - 1}, "
            f"got {len(data)} bytes ({data.hex(' ')})",
        )


def _no_trailing(data: bytes, end: int, where: str) -> None:
    if len(data) != end:
        raise _fail(
            where,
            f"payload too long: {len(data) - end} unexpected byte(s) after byte {end - 1} "
            f"({data.hex(' ')})",
        )


def _bytes(data: bytes | bytearray | memoryview) -> bytes:
    return bytes(data)


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


# --- IEEE-11073 32-bit FLOAT -----------------------------------------------------------


class FloatSpecial(IntEnum):
    """The reserved mantissas of an IEEE-11073 FLOAT (exponent 0)."""

    POSITIVE_INFINITY = 0x7FFFFE
    NAN = 0x7FFFFF
    NRES = 0x800000  # "not at this resolution"
    RESERVED = 0x800001
    NEGATIVE_INFINITY = 0x800002


_MANTISSA_MIN = -(2**23) + 3  # below this are the special values' two's complements
_MANTISSA_MAX = 2**23 - 3


class Float11073(NamedTuple):
    """An IEEE-11073 FLOAT: ``mantissa × 10^exponent``, or one of the special values
    (then ``special`` is set and ``mantissa``/``exponent`` are 0)."""

    mantissa: int
    exponent: int
    special: FloatSpecial | None = None

    @property
    def value(self) -> float:
        if self.special is not None:
            if self.special is FloatSpecial.POSITIVE_INFINITY:
                return math.inf
            if self.special is FloatSpecial.NEGATIVE_INFINITY:
                return -math.inf
            return math.nan
        if self.exponent >= 0:
            return float(self.mantissa * 10**self.exponent)
        scale: int = 10 ** (-self.exponent)
        return self.mantissa / scale  # int / int is correctly rounded

    @classmethod
    def from_value(cls, value: float, *, exponent: int = -2) -> Float11073:
        """``value`` rounded to ``10^exponent`` (NaN and infinities map to the specials)."""
        if math.isnan(value):
            return cls(0, 0, FloatSpecial.NAN)
        if math.isinf(value):
            special = (
                FloatSpecial.POSITIVE_INFINITY if value > 0 else FloatSpecial.NEGATIVE_INFINITY
            )
            return cls(0, 0, special)
        mantissa = round(value * 10 ** (-exponent)) if exponent < 0 else round(value / 10**exponent)
        if not _MANTISSA_MIN <= mantissa <= _MANTISSA_MAX:
            raise ValueError(f"{value} does not fit a FLOAT with exponent {exponent}")
        return cls(mantissa, exponent)


def decode_float(raw: int) -> Float11073:
    """Decode a FLOAT from its little-endian uint32 (exponent in the top byte)."""
    exponent = raw >> 24
    if exponent >= 0x80:
        exponent -= 0x100
    mantissa = raw & 0xFFFFFF
    if exponent == 0 and mantissa in FloatSpecial._value2member_map_:
        return Float11073(0, 0, FloatSpecial(mantissa))
    if mantissa >= 0x800000:
        mantissa -= 0x1000000
    return Float11073(mantissa, exponent)


def encode_float(f: Float11073) -> int:
    if f.special is not None:
        return int(f.special)
    if not -(2**23) <= f.mantissa < 2**23 or not -128 <= f.exponent <= 127:
        raise ValueError(f"FLOAT out of range: {f}")
    if f.exponent == 0 and (f.mantissa & 0xFFFFFF) in FloatSpecial._value2member_map_:
        raise ValueError(f"mantissa {f.mantissa} with exponent 0 is a special value")
    return ((f.exponent & 0xFF) << 24) | (f.mantissa & 0xFFFFFF)


# --- Date Time (7 bytes) ---------------------------------------------------------------


class DateTime(NamedTuple):
    """A GATT Date Time. A year, month or day of 0 means "unknown"."""

    year: int
    month: int
    day: int
    hours: int
    minutes: int
    seconds: int

    @property
    def known(self) -> bool:
        return self.year != 0 and self.month != 0 and self.day != 0

    def epoch_utc(self) -> float | None:
        """Epoch seconds, reading the device clock as UTC; ``None`` when the date is unknown."""
        if not self.known:
            return None
        return datetime(
            self.year, self.month, self.day, self.hours, self.minutes, self.seconds, tzinfo=UTC
        ).timestamp()

    @classmethod
    def from_epoch(cls, epoch_s: float) -> DateTime:
        dt = datetime.fromtimestamp(int(epoch_s), tz=UTC)
        return cls(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)


def _parse_date_time(raw: bytes, at: int, where: str) -> DateTime:
    _need(raw, at, 7, "time stamp", where)
    year, month, day, hours, minutes, seconds = struct.unpack_from("<HBBBBB", raw, at)
    stamp = DateTime(year, month, day, hours, minutes, seconds)
    problems = []
    if year != 0 and not 1582 <= year <= 9999:
        problems.append(f"year {year}")
    if month > 12:
        problems.append(f"month {month}")
    if day > 31:
        problems.append(f"day {day}")
    if hours > 23 or minutes > 59 or seconds > 59:
        problems.append(f"time {hours:02d}:{minutes:02d}:{seconds:02d}")
    if not problems and stamp.known:
        try:
            datetime(year, month, day)
        except ValueError:
            problems.append(f"date {year:04d}-{month:02d}-{day:02d}")
    if problems:
        raise _fail(where, f"time stamp at byte {at} out of range: {', '.join(problems)}")
    return stamp


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


# --- CORE Core Body Temperature (0x2101 in service 0x2100) -----------------------------

CORE_SKIN = 0x01
CORE_RESERVED = 0x02
CORE_QUALITY = 0x04
CORE_FAHRENHEIT = 0x08
CORE_HEART_RATE = 0x10
CORE_HSI = 0x20
CORE_NOT_AVAILABLE = 0x7FFF
"""A temperature of 0x7FFF means the sensor has no value (yet)."""
CORE_HSI_NOT_AVAILABLE = 0xFF
CORE_QUALITY_MASK = 0x07  # one source says 0x0F; every defined value fits in 3 bits


class CoreQuality(IntEnum):
    INVALID = 0
    POOR = 1
    FAIR = 2
    GOOD = 3
    EXCELLENT = 4
    NOT_AVAILABLE = 7


class CoreMeasurement(NamedTuple):
    """The CORE sensor's measurement, as raw as it came: temperatures in 0.01 of the unit
    (°F when ``fahrenheit``), ``state`` the quality/HR-state byte, ``hsi_raw`` the heat
    strain index ×10. The properties decode them."""

    core_raw: int
    skin_raw: int | None = None
    fahrenheit: bool = False
    reserved: int | None = None
    state: int | None = None
    heart_rate_bpm: int | None = None
    hsi_raw: int | None = None

    def _celsius(self, raw: int | None) -> float | None:
        if raw is None or raw == CORE_NOT_AVAILABLE:
            return None
        value = raw / 100
        return (value - 32.0) * 5.0 / 9.0 if self.fahrenheit else value

    @property
    def core_temp_c(self) -> float | None:
        return self._celsius(self.core_raw)

    @property
    def skin_temp_c(self) -> float | None:
        return self._celsius(self.skin_raw)

    @property
    def quality(self) -> int | None:
        """0 invalid, 1 poor, 2 fair, 3 good, 4 excellent, 7 not available."""
        return None if self.state is None else self.state & CORE_QUALITY_MASK

    @property
    def heart_rate_state(self) -> int | None:
        """0 not supported, 1 no signal, 2 receiving, 3 not available."""
        return None if self.state is None else (self.state >> 4) & 0x03

    @property
    def heat_strain_index(self) -> float | None:
        if self.hsi_raw is None or self.hsi_raw == CORE_HSI_NOT_AVAILABLE:
            return None
        return self.hsi_raw / 10


def parse_core_measurement(
    data: bytes | bytearray | memoryview, *, where: str = "CORE 0x2101"
) -> CoreMeasurement:
    raw = _bytes(data)
    _need(raw, 0, 1, "flags", where)
    flags = raw[0]
    _need(raw, 1, 2, "core temperature", where)
    (core,) = struct.unpack_from("<h", raw, 1)
    at = 3
    fields: dict[str, int | None] = {}
    for bit, name, fmt in (
        (CORE_SKIN, "skin_raw", "<h"),
        (CORE_RESERVED, "reserved", "<h"),
        (CORE_QUALITY, "state", "<B"),
        (CORE_HEART_RATE, "heart_rate_bpm", "<B"),
        (CORE_HSI, "hsi_raw", "<B"),
    ):
        if flags & bit:
            size = struct.calcsize(fmt)
            _need(raw, at, size, name.removesuffix("_raw"), where)
            (fields[name],) = struct.unpack_from(fmt, raw, at)
            at += size
    _no_trailing(raw, at, where)
    return CoreMeasurement(
        core_raw=core,
        skin_raw=fields.get("skin_raw"),
        fahrenheit=bool(flags & CORE_FAHRENHEIT),
        reserved=fields.get("reserved"),
        state=fields.get("state"),
        heart_rate_bpm=fields.get("heart_rate_bpm"),
        hsi_raw=fields.get("hsi_raw"),
    )


def encode_core_measurement(m: CoreMeasurement) -> bytes:
    flags = CORE_FAHRENHEIT if m.fahrenheit else 0
    body = struct.pack("<h", m.core_raw)
    for bit, value, fmt in (
        (CORE_SKIN, m.skin_raw, "<h"),
        (CORE_RESERVED, m.reserved, "<h"),
        (CORE_QUALITY, m.state, "<B"),
        (CORE_HEART_RATE, m.heart_rate_bpm, "<B"),
        (CORE_HSI, m.hsi_raw, "<B"),
    ):
        if value is not None:
            flags |= bit
            body += struct.pack(fmt, value)
    return bytes([flags]) + body


def core_raw(celsius: float | None) -> int:
    """A °C value as the CORE sensor sends it (0.01 °C, 0x7FFF when there is none)."""
    if celsius is None or not math.isfinite(celsius):
        return CORE_NOT_AVAILABLE
    return max(-32768, min(CORE_NOT_AVAILABLE - 1, round(celsius * 100)))


# --- CORE advertisement (manufacturer-specific data) ----------------------------------

CORE_COMPANY_IDS: tuple[int, ...] = (0x0BF6, 0xF60B)
"""The company id the CORE puts before its manufacturer data. Sources disagree on the byte
order (``facts/ble.md``), so a scan accepts both; the virtual CORE sends the first."""
CORE_ADVERT_TEMP_PER_C = 1000
"""The advertised core temperature is a uint16 in 0.001 °C."""


class CoreAdvertisement(NamedTuple):
    """What a CORE advertises (after the company id): format version, status byte and the
    current core temperature in 0.001 °C."""

    version: int
    status: int
    core_raw: int

    @property
    def core_temp_c(self) -> float:
        return self.core_raw / CORE_ADVERT_TEMP_PER_C


def parse_core_advertisement(
    data: bytes | bytearray | memoryview, *, where: str = "CORE advert"
) -> CoreAdvertisement:
    """The manufacturer data of a CORE advert, without its 2-byte company id."""
    raw = _bytes(data)
    _need(raw, 0, 1, "version", where)
    _need(raw, 1, 1, "status", where)
    _need(raw, 2, 2, "core temperature", where)
    _no_trailing(raw, 4, where)
    version, status, core = struct.unpack("<BBH", raw)
    return CoreAdvertisement(version=version, status=status, core_raw=core)


def encode_core_advertisement(advert: CoreAdvertisement) -> bytes:
    return struct.pack("<BBH", advert.version, advert.status, advert.core_raw)


def core_advert_raw(celsius: float) -> int:
    """A °C value as the CORE advertises it (0.001 °C, clamped to uint16)."""
    return max(0, min(0xFFFF, round(celsius * CORE_ADVERT_TEMP_PER_C)))
