"""The greenteg CORE sensor: its Core Body Temperature characteristic (0x2101 in service
0x2100) and its advertisement (manufacturer-specific data). Parsers and encoders as in
:mod:`adapters.gatt`, which re-exports every name here; layouts in ``docs/ble.md``."""

from __future__ import annotations

import math
import struct
from enum import IntEnum
from typing import NamedTuple

from adapters.gatt.fields import as_bytes as _bytes
from adapters.gatt.fields import need_bytes as _need
from adapters.gatt.fields import no_trailing as _no_trailing

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
