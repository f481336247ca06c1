"""Field types that GATT characteristics share, and the byte checks their parsers use.

- the IEEE-11073 32-bit FLOAT (Health Thermometer, the CORE sensor) with its special values;
- the 7-byte Date Time (a thermometer's time stamp);
- :func:`parse_error`, :func:`need_bytes` and :func:`no_trailing`, which every parser in
  :mod:`adapters.gatt` uses to raise :class:`monitor.errors.ParseError` saying what is wrong
  and at which byte.

Pure functions and immutable values; layouts in ``docs/ble.md``.
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, datetime
from enum import IntEnum
from typing import NamedTuple

from monitor.errors import ParseError


def parse_error(where: str, message: str) -> ParseError:
    return ParseError(message, where=where)


def need_bytes(data: bytes, at: int, size: int, field: str, where: str) -> None:
    if len(data) < at + size:
        raise parse_error(
            where,
            f"payload too short: {field} needs bytes {at}..{at + size - 1}, "
            f"got {len(data)} bytes ({data.hex(' ')})",
        )


def no_trailing(data: bytes, end: int, where: str) -> None:
    if len(data) != end:
        raise parse_error(
            where,
            f"payload too long: {len(data) - end} unexpected byte(s) after byte {end - 1} "
            f"({data.hex(' ')})",
        )


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


def parse_date_time(raw: bytes, at: int, where: str) -> DateTime:
    need_bytes(raw, at, 7, "time stamp", where)
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
        raise parse_error(where, f"time stamp at byte {at} out of range: {', '.join(problems)}")
    return stamp


def as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    return bytes(data)
