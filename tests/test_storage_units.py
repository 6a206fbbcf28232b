"""People's unit-suffixed keys become a unit-free name and a UDUNITS unit."""

from __future__ import annotations

import pytest
from cf_units import Unit

from smm_daq.storage.units import _SUFFIXES, join_units, split_units


@pytest.mark.parametrize(("key", "name", "units"), [
    ("mx_A_per_m", "mx", "A/m"),
    ("sd_mx_A_per_m", "sd_mx", "A/m"),
    ("cov_xy_A2_per_m2", "cov_xy", "A2/m2"),
    ("uncertainty_ratio_pct", "uncertainty_ratio", "percent"),
    ("time_constant_s", "time_constant", "s"),
    ("calibration_T_per_A", "calibration", "T/A"),
    ("velocity_m_per_s", "velocity", "m/s"),
    ("moment_Am2", "moment", "A m2"),
    ("ssr", "ssr", None),
    ("ssr_per_um", "ssr", "um-1"),
    ("grain", "grain", None),
    ("axis_sign", "axis_sign", None),
    ("_m", "_m", None),  # a suffix alone is a name
])
def test_split_units(key, name, units):
    assert split_units(key) == (name, units)


def test_every_unit_is_udunits():
    for units in _SUFFIXES.values():
        assert Unit(units).is_unknown() is False


@pytest.mark.parametrize("key", ["mx_A_per_m", "cov_xy_A2_per_m2", "uncertainty_ratio_pct",
                                 "moment_Am2", "q20_Am3", "o33s_Am4", "volume_um3", "ssr",
                                 "ssr_per_um",
                                 "higher_order_chi2", *(f"v_{s}" for s in _SUFFIXES)])
def test_join_units_undoes_split_units(key):
    """A table read back from a file gets its people's column names again."""
    assert join_units(*split_units(key)) == key


def test_join_units_knows_no_foreign_unit():
    assert join_units("ssr", "furlong") is None
