"""GATT parsers: worked byte strings for every flag combination, typed errors for bad
payloads, and property-based fuzzing (only ParseError may escape; encoders round-trip)."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters import gatt
from adapters.gatt import (
    CoreMeasurement,
    DateTime,
    Float11073,
    FloatSpecial,
    HeartRateMeasurement,
    TemperatureMeasurement,
)
from monitor.errors import ParseError


def b(text: str) -> bytes:
    return bytes.fromhex(text)


# --- Heart Rate Measurement: all 32 combinations of the five defined flag bits ----------

HRM_CASES = [
    # (bytes, bpm, contact, energy kJ, RR (1/1024 s), wide)
    ("00 48", 72, None, None, (), False),
    ("01 2c 01", 300, None, None, (), False),
    ("02 48", 72, None, None, (), False),  # contact bit without "supported": not supported
    ("03 48 00", 72, None, None, (), False),
    ("04 3c", 60, False, None, (), False),
    ("05 3c 00", 60, False, None, (), False),
    ("06 48", 72, True, None, (), False),
    ("07 48 00", 72, True, None, (), False),
    ("08 48 64 00", 72, None, 100, (), False),
    ("09 48 00 64 00", 72, None, 100, (), False),
    ("0a 48 64 00", 72, None, 100, (), False),
    ("0b 48 00 64 00", 72, None, 100, (), False),
    ("0c 48 ff ff", 72, False, 65535, (), False),
    ("0d 48 00 ff ff", 72, False, 65535, (), False),
    ("0e 48 00 00", 72, True, 0, (), False),
    ("0f 48 00 00 00", 72, True, 0, (), False),
    ("10 48 00 04", 72, None, None, (1024,), False),
    ("11 48 00 00 04", 72, None, None, (1024,), False),
    ("12 48 00 04", 72, None, None, (1024,), False),
    ("13 48 00 00 04", 72, None, None, (1024,), False),
    ("14 48 33 03 00 04", 72, False, None, (819, 1024), False),
    ("15 48 00 33 03", 72, False, None, (819,), False),
    ("16 48 00 04", 72, True, None, (1024,), False),
    ("17 48 00 00 04 00 04 00 04", 72, True, None, (1024, 1024, 1024), False),
    ("18 48 64 00 00 04", 72, None, 100, (1024,), False),
    ("19 48 00 64 00 00 04", 72, None, 100, (1024,), False),
    ("1a 48 64 00 00 04", 72, None, 100, (1024,), False),
    ("1b 48 00 64 00 00 04", 72, None, 100, (1024,), False),
    ("1c 48 64 00 00 04", 72, False, 100, (1024,), False),
    ("1d 48 00 64 00 00 04", 72, False, 100, (1024,), False),
    ("1e 48 64 00 00 04", 72, True, 100, (1024,), False),
    ("1f 2c 01 64 00 33 03 00 04", 300, True, 100, (819, 1024), True),
]


@pytest.mark.parametrize(("hexdata", "bpm", "contact", "energy", "rr", "wide"), HRM_CASES)
def test_heart_rate_measurement_worked_examples(
    hexdata: str,
    bpm: int,
    contact: bool | None,
    energy: int | None,
    rr: tuple[int, ...],
    wide: bool,
) -> None:
    m = gatt.parse_heart_rate_measurement(b(hexdata))
    assert m.heart_rate_bpm == bpm
    assert m.sensor_contact is contact
    assert m.energy_expended_kj == energy
    assert m.rr_intervals_1024 == rr
    assert m.wide == bool(b(hexdata)[0] & 1)
    if wide:
        assert m.wide


def test_every_hrm_flag_combination_is_covered() -> None:
    assert {b(case[0])[0] for case in HRM_CASES} == set(range(32))


def test_rr_intervals_in_seconds() -> None:
    m = gatt.parse_heart_rate_measurement(b("1f 2c 01 64 00 33 03 00 04"))
    assert m.rr_intervals_s == pytest.approx((0.7998, 1.0), abs=1e-4)


def test_hrm_reserved_flag_bits_are_ignored() -> None:
    assert gatt.parse_heart_rate_measurement(b("e6 48")).heart_rate_bpm == 72


@pytest.mark.parametrize(
    ("hexdata", "expected"),
    [
        ("", "too short: flags"),
        ("00", "too short: heart rate (uint8)"),
        ("01 48", "too short: heart rate (uint16)"),
        ("08 48 64", "too short: energy expended"),
        ("10 48", "RR-interval flag set but no RR interval"),
        ("10 48 00 04 01", "RR intervals are uint16 but 3 byte(s)"),
        ("00 48 00", "too long: 1 unexpected byte(s) after byte 1"),
    ],
)
def test_hrm_bad_payloads_raise_parse_error(hexdata: str, expected: str) -> None:
    with pytest.raises(ParseError, match=re.escape(expected)) as info:
        gatt.parse_heart_rate_measurement(b(hexdata), where="strap AA:BB")
    assert info.value.where == "strap AA:BB"


# --- Health Thermometer -----------------------------------------------------------------

HTS_CASES: list[tuple[str, float, bool, DateTime | None, int | None]] = [
    ("00 38 0e 00 fe", 36.40, False, None, None),
    ("01 da 03 00 ff", 37.0, True, None, None),  # 98.6 °F
    ("02 6c 0e 00 fe e8 07 05 11 0c 1e 00", 36.92, False, DateTime(2024, 5, 17, 12, 30, 0), None),
    ("03 da 03 00 ff e8 07 05 11 0c 1e 00", 37.0, True, DateTime(2024, 5, 17, 12, 30, 0), None),
    ("04 6c 0e 00 fe 02", 36.92, False, None, 2),
    ("05 da 03 00 ff 02", 37.0, True, None, 2),
    ("06 6c 0e 00 fe e8 07 05 11 0c 1e 00 02", 36.92, False, DateTime(2024, 5, 17, 12, 30, 0), 2),
    ("07 da 03 00 ff 00 00 00 00 00 00 00 0c", 37.0, True, DateTime(0, 0, 0, 0, 0, 0), 12),
]


@pytest.mark.parametrize(("hexdata", "celsius", "fahrenheit", "stamp", "kind"), HTS_CASES)
def test_temperature_measurement_worked_examples(
    hexdata: str, celsius: float, fahrenheit: bool, stamp: DateTime | None, kind: int | None
) -> None:
    m = gatt.parse_temperature_measurement(b(hexdata))
    assert m.celsius == pytest.approx(celsius, abs=1e-9)
    assert m.fahrenheit is fahrenheit
    assert m.timestamp == stamp
    assert m.temperature_type == kind


def test_every_hts_flag_combination_is_covered() -> None:
    assert {b(case[0])[0] for case in HTS_CASES} == set(range(8))


def test_hts_time_stamp_as_epoch_and_unknown_date() -> None:
    m = gatt.parse_temperature_measurement(b("06 6c 0e 00 fe e8 07 05 11 0c 1e 00 02"))
    assert m.timestamp is not None
    assert m.timestamp.epoch_utc() == datetime(2024, 5, 17, 12, 30, tzinfo=UTC).timestamp()
    assert m.temperature_type == gatt.TemperatureType.BODY
    assert DateTime(0, 5, 17, 12, 30, 0).epoch_utc() is None


@pytest.mark.parametrize(
    ("hexdata", "special", "value"),
    [
        ("00 ff ff 7f 00", FloatSpecial.NAN, math.nan),
        ("00 00 00 80 00", FloatSpecial.NRES, math.nan),
        ("00 fe ff 7f 00", FloatSpecial.POSITIVE_INFINITY, math.inf),
        ("00 02 00 80 00", FloatSpecial.NEGATIVE_INFINITY, -math.inf),
    ],
)
def test_float_special_values(hexdata: str, special: FloatSpecial, value: float) -> None:
    m = gatt.parse_temperature_measurement(b(hexdata))
    assert m.temperature.special is special
    if math.isnan(value):
        assert math.isnan(m.celsius)
    else:
        assert m.celsius == value


def test_float_negative_mantissa_is_sign_extended() -> None:
    assert gatt.decode_float(int.from_bytes(b("f1 ff ff ff"), "little")).value == -1.5
    # exponent 0 with a non-special mantissa is a plain integer
    assert gatt.decode_float(0x00000025).value == 37.0


@pytest.mark.parametrize(
    ("hexdata", "expected"),
    [
        ("", "too short: flags"),
        ("00 38 0e 00", "too short: temperature"),
        ("00 01 00 80 00", "reserved FLOAT"),
        ("02 38 0e 00 fe e8 07 05 11 0c 1e", "too short: time stamp"),
        ("02 38 0e 00 fe e8 07 0d 11 0c 1e 00", "month 13"),
        ("02 38 0e 00 fe e8 07 02 1e 0c 1e 00", "date 2024-02-30"),
        ("02 38 0e 00 fe e8 07 05 11 18 1e 00", "time 24:30:00"),
        ("02 38 0e 00 fe 10 00 05 11 0c 1e 00", "year 16"),
        ("04 38 0e 00 fe", "too short: temperature type"),
        ("00 38 0e 00 fe 02", "too long"),
    ],
)
def test_hts_bad_payloads_raise_parse_error(hexdata: str, expected: str) -> None:
    with pytest.raises(ParseError, match=expected):
        gatt.parse_temperature_measurement(b(hexdata))


# --- ESS temperature, battery, body sensor location ---------------------------------------


def test_ess_temperature() -> None:
    assert gatt.parse_ess_temperature(b("0e 0e")) == pytest.approx(35.98)
    assert gatt.parse_ess_temperature(b("9c ff")) == pytest.approx(-1.0)
    assert gatt.parse_ess_temperature(b("00 80")) is None
    for bad in ("0e", "0e 0e 00"):
        with pytest.raises(ParseError):
            gatt.parse_ess_temperature(b(bad))


def test_battery_level() -> None:
    assert gatt.parse_battery_level(b("57")) == 87
    assert gatt.parse_battery_level(b("64")) == 100
    for bad, why in (("", "too short"), ("65", "over 100"), ("57 00", "too long")):
        with pytest.raises(ParseError, match=why):
            gatt.parse_battery_level(b(bad))


def test_body_sensor_location() -> None:
    assert gatt.parse_body_sensor_location(b("01")) is gatt.BodySensorLocation.CHEST
    with pytest.raises(ParseError, match="reserved"):
        gatt.parse_body_sensor_location(b("07"))


# --- CORE ----------------------------------------------------------------------------------


def test_core_real_capture() -> None:
    m = gatt.parse_core_measurement(b("17 40 0e c1 0d 60 08 14 00"))
    assert m.core_temp_c == pytest.approx(36.48)
    assert m.skin_temp_c == pytest.approx(35.21)
    assert m.reserved == 2144
    assert m.quality == gatt.CoreQuality.EXCELLENT
    assert m.heart_rate_state == 1
    assert m.heart_rate_bpm == 0
    assert m.heat_strain_index is None


def test_core_note_example_with_heat_strain_index() -> None:
    m = gatt.parse_core_measurement(b("37 19 0f c2 0d 2f 00 11 00 27"))
    assert m.core_temp_c == pytest.approx(38.65)
    assert m.skin_temp_c == pytest.approx(35.22)
    assert m.quality == gatt.CoreQuality.POOR
    assert m.heat_strain_index == pytest.approx(3.9)


@pytest.mark.parametrize("flags", range(64))
def test_core_every_flag_combination(flags: int) -> None:
    """Build the payload field by field for each of the 64 combinations of bits 0..5."""
    payload = bytes([flags]) + b("40 0e")  # core 36.48 (or °F)
    if flags & 0x01:
        payload += b("c1 0d")
    if flags & 0x02:
        payload += b("60 08")
    if flags & 0x04:
        payload += b("23")
    if flags & 0x10:
        payload += b("5a")
    if flags & 0x20:
        payload += b("ff")
    m = gatt.parse_core_measurement(payload)
    f = flags & 0x08
    assert m.core_temp_c == pytest.approx((36.48 - 32) * 5 / 9 if f else 36.48)
    assert (m.skin_temp_c is None) == (not flags & 0x01)
    assert (m.reserved == 2144) == bool(flags & 0x02)
    assert m.quality == (3 if flags & 0x04 else None)
    assert m.heart_rate_state == (2 if flags & 0x04 else None)
    assert m.heart_rate_bpm == (90 if flags & 0x10 else None)
    assert m.heat_strain_index is None  # absent or 0xFF (not available)
    assert gatt.encode_core_measurement(m) == payload


def test_core_not_available_and_bad_payloads() -> None:
    assert gatt.parse_core_measurement(b("00 ff 7f")).core_temp_c is None
    for bad, why in (
        ("01 40 0e c1", "too short: skin"),
        ("00 40", "too short"),
        ("00 40 0e 00", "too long"),
    ):
        with pytest.raises(ParseError, match=why):
            gatt.parse_core_measurement(b(bad))


# --- Fuzzing: only ParseError may escape; encode/parse round-trip ----------------------

PARSERS: list[Callable[..., Any]] = [
    gatt.parse_heart_rate_measurement,
    gatt.parse_temperature_measurement,
    gatt.parse_ess_temperature,
    gatt.parse_battery_level,
    gatt.parse_body_sensor_location,
    gatt.parse_temperature_type,
    gatt.parse_core_measurement,
    gatt.parse_core_advertisement,
]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@given(data=st.binary(max_size=40))
def test_fuzz_only_parse_error_escapes(parser: Callable[..., Any], data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parser(data)


@given(st.binary(min_size=1, max_size=24).map(lambda d: bytes([d[0] & 0x1F]) + d[1:]))
def test_fuzz_hrm_normalises_through_encoder(data: bytes) -> None:
    try:
        m = gatt.parse_heart_rate_measurement(data)
    except ParseError:
        return
    assert gatt.parse_heart_rate_measurement(gatt.encode_heart_rate_measurement(m)) == m


u16 = st.integers(0, 0xFFFF)


@given(
    st.builds(
        HeartRateMeasurement,
        heart_rate_bpm=u16,
        sensor_contact=st.none() | st.booleans(),
        energy_expended_kj=st.none() | u16,
        rr_intervals_1024=st.lists(u16, max_size=8).map(tuple),
        wide=st.booleans(),
    )
)
def test_hrm_round_trip(m: HeartRateMeasurement) -> None:
    parsed = gatt.parse_heart_rate_measurement(gatt.encode_heart_rate_measurement(m))
    assert parsed == m._replace(wide=m.wide or m.heart_rate_bpm > 0xFF)


floats = st.builds(
    Float11073,
    mantissa=st.integers(-(2**23) + 3, 2**23 - 3),
    exponent=st.integers(-128, 127),
    special=st.none(),
) | st.sampled_from([Float11073(0, 0, s) for s in FloatSpecial if s is not FloatSpecial.RESERVED])
stamps = st.none() | st.datetimes(
    min_value=datetime(1582, 1, 1), max_value=datetime(9999, 12, 31)
).map(lambda d: DateTime(d.year, d.month, d.day, d.hour, d.minute, d.second))


@given(
    st.builds(
        TemperatureMeasurement,
        temperature=floats,
        fahrenheit=st.booleans(),
        timestamp=stamps,
        temperature_type=st.none() | st.integers(0, 255),
    )
)
def test_temperature_measurement_round_trip(m: TemperatureMeasurement) -> None:
    assert gatt.parse_temperature_measurement(gatt.encode_temperature_measurement(m)) == m


@given(st.binary(min_size=5, max_size=5))
def test_fuzz_float_decode_encode(data: bytes) -> None:
    try:
        m = gatt.parse_temperature_measurement(bytes([0]) + data[1:])
    except ParseError:
        return
    assert gatt.encode_temperature_measurement(m) == bytes([0]) + data[1:]


s16 = st.integers(-32768, 32767)
u8 = st.integers(0, 255)


@given(
    st.builds(
        CoreMeasurement,
        core_raw=s16,
        skin_raw=st.none() | s16,
        fahrenheit=st.booleans(),
        reserved=st.none() | s16,
        state=st.none() | u8,
        heart_rate_bpm=st.none() | u8,
        hsi_raw=st.none() | u8,
    )
)
def test_core_round_trip(m: CoreMeasurement) -> None:
    assert gatt.parse_core_measurement(gatt.encode_core_measurement(m)) == m


@given(st.floats(min_value=-300, max_value=300, allow_nan=False))
def test_ess_round_trip(celsius: float) -> None:
    parsed = gatt.parse_ess_temperature(gatt.encode_ess_temperature(celsius))
    # half the last digit (0.375 -> 0.38 is 0.005 plus a float rounding error)
    assert parsed == pytest.approx(celsius, abs=0.005 + 1e-9)


@given(st.floats(min_value=-50, max_value=150, allow_nan=False))
def test_float_from_value(value: float) -> None:
    # half the last digit (0.375 -> 0.38 is 0.005 plus a float rounding error)
    assert Float11073.from_value(value).value == pytest.approx(value, abs=0.005 + 1e-9)


def test_core_advertisement_worked_example() -> None:
    """The capture in facts/ble.md: version 0, status 4, 0x8E75 × 0.001 = 36.469 °C."""
    advert = gatt.parse_core_advertisement(b("00 04 75 8e"))
    assert advert == gatt.CoreAdvertisement(version=0, status=4, core_raw=0x8E75)
    assert advert.core_temp_c == pytest.approx(36.469)
    for bad, why in (("00 04 75", "too short: core temperature"), ("00 04 75 8e 00", "too long")):
        with pytest.raises(ParseError, match=why):
            gatt.parse_core_advertisement(b(bad))


@given(st.builds(gatt.CoreAdvertisement, version=u8, status=u8, core_raw=st.integers(0, 0xFFFF)))
def test_core_advertisement_round_trip(advert: gatt.CoreAdvertisement) -> None:
    assert gatt.parse_core_advertisement(gatt.encode_core_advertisement(advert)) == advert
