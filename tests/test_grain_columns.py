"""The MMT grain table's number formats (gui/grain_columns.py): one per column, whatever it
holds (NaN, infinities, negative values, zeros)."""

from __future__ import annotations

import numpy as np

from gui.grain_columns import column_format


def written(values: list[float]) -> list[str]:
    column = np.array(values, dtype=float)
    fmt = column_format(column)
    return [fmt(v) for v in column]


def test_a_negative_zero_is_written_zero_in_every_format() -> None:
    """-1 × 0.0 is -0.0: a column of zeros wrote it -0, an exponent column -0.000e+00."""
    assert written([0.0, -0.0, np.nan]) == ["0", "0", "nan"]
    assert written([-0.0, 3.2e10, -7e5]) == ["0.000e+00", "3.200e+10", "-7.000e+05"]
    assert written([-0.0, -12.5]) == ["0.00", "-12.50"]


def test_undetermined_and_infinite_values_are_written_as_such() -> None:
    assert written([np.inf, -3.5, np.nan]) == ["inf", "-3.500", "nan"]
    assert written([np.nan, np.nan]) == ["nan", "nan"]
    assert written([]) == []


def test_every_value_of_a_column_shows_its_leading_digits() -> None:
    """Chosen from the largest value alone, fixed point wrote 3e-2 beside 1e5 as 0.000,
    -0.0001 beside 40.55 as 0.00, and 0.5 beside 250 with one digit."""
    assert written([1e5, 3e-2]) == ["1.000e+05", "3.000e-02"]
    assert written([250.0, -0.5]) == ["250.00", "-0.50"]
    assert written([0.6646, 40.55, -0.0001]) == ["6.646e-01", "4.055e+01", "-1.000e-04"]


def test_a_value_rounding_up_to_another_digit_follows_the_rule_it_then_meets() -> None:
    """999999.6 written to no decimals is 1000000: seven digits, at FIXED_BELOW, so an
    exponent (unfixed: "1000000"); 99.996 to four digits is 100.0 (unfixed: "100.00", five)."""
    assert written([999999.6, 12.0]) == ["1.000e+06", "1.200e+01"]
    assert written([-999999.6]) == ["-1.000e+06"]
    assert written([99.996, 1.5]) == ["100.0", "1.5"]
    assert written([99.996, 0.001]) == ["99.9960", "0.0010"]  # the digits it shows: no carry
    assert written([999999.4]) == ["999999"]


def test_the_largest_floats_are_written_in_an_exponent() -> None:
    """Near the largest float, its four digits (1.798e+308) are no float: read back as one,
    they overflowed to inf, and the column's format raised OverflowError (the table not
    shown)."""
    assert written([1.7976931348623157e308, -2.5]) == ["1.798e+308", "-2.500e+00"]
    assert written([-1.7976931348623157e308]) == ["-1.798e+308"]
