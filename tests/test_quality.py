"""Sample validation: every kind of bad input becomes a flag, never an exception."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.engine.quality import ARTEFACT_RESET_COUNT, KindValidator
from monitor.model import SampleFlag, SampleKind


def feed(kind: SampleKind, values: list[tuple[float, float]]) -> list[SampleFlag]:
    v = KindValidator(kind)
    return [v.check(value, t) for t, value in values]


@pytest.mark.parametrize(
    ("value", "flag"),
    [
        (29.0, SampleFlag.OUT_OF_RANGE),
        (231.0, SampleFlag.OUT_OF_RANGE),
        (0.0, SampleFlag.ZERO),
        (math.nan, SampleFlag.INVALID),
        (math.inf, SampleFlag.INVALID),
        (72.0, SampleFlag.OK),
    ],
)
def test_heart_rate_values(value: float, flag: SampleFlag) -> None:
    assert feed(SampleKind.HEART_RATE, [(0.0, value)]) == [flag]


@pytest.mark.parametrize(
    ("value", "flag"),
    [(19.9, SampleFlag.OUT_OF_RANGE), (43.1, SampleFlag.OUT_OF_RANGE), (33.0, SampleFlag.OK)],
)
def test_skin_temperature_range(value: float, flag: SampleFlag) -> None:
    assert feed(SampleKind.SKIN_TEMP, [(0.0, value)]) == [flag]


def test_duplicate_and_out_of_order_timestamps() -> None:
    flags = feed(SampleKind.HEART_RATE, [(10.0, 70.0), (10.0, 71.0), (9.0, 72.0), (11.0, 73.0)])
    assert flags == [
        SampleFlag.OK,
        SampleFlag.DUPLICATE,
        SampleFlag.OUT_OF_ORDER,
        SampleFlag.OK,
    ]


def test_gap_is_accepted_and_flagged() -> None:
    flags = feed(SampleKind.HEART_RATE, [(0.0, 70.0), (1.0, 70.0), (60.0, 71.0)])
    assert flags == [SampleFlag.OK, SampleFlag.OK, SampleFlag.GAP]
    assert SampleFlag.GAP.accepted


def test_doubled_heart_rate_artefact() -> None:
    values = [(float(t), 75.0) for t in range(10)] + [(10.0, 150.0), (11.0, 76.0)]
    flags = feed(SampleKind.HEART_RATE, values)
    assert flags[-2] is SampleFlag.DOUBLED
    assert flags[-1] is SampleFlag.OK


def test_a_lasting_new_level_is_believed() -> None:
    values = [(float(t), 75.0) for t in range(10)]
    values += [(10.0 + t, 150.0) for t in range(ARTEFACT_RESET_COUNT + 2)]
    flags = feed(SampleKind.HEART_RATE, values)
    assert flags[10] is SampleFlag.DOUBLED
    assert flags[-1] is SampleFlag.OK


def test_no_contact() -> None:
    v = KindValidator(SampleKind.HEART_RATE)
    assert v.check(70.0, 0.0, False) is SampleFlag.NO_CONTACT


@given(
    st.lists(
        st.tuples(
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
        ),
        max_size=50,
    )
)
def test_any_input_gives_a_flag(values: list[tuple[float, float]]) -> None:
    for kind in SampleKind:
        v = KindValidator(kind)
        for value, t in values:
            assert isinstance(v.check(value, t), SampleFlag)
