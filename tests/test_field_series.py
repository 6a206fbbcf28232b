"""Induced maps at several fields along one axis, combined for one χ (their slope)."""

from __future__ import annotations

import numpy as np
import pytest
from test_susceptibility import grains, induced_map

from smm_daq.analysis.field_series import combine_field_series
from smm_daq.errors import InputError

GEOMETRY = {"height": 20e-6, "thickness": 10e-6, "size": (5e-6, 5e-6)}
AXIS = np.array([0.0, 0.6, 0.8])


def series(fields_uT, *, leak=0.0, noise=0.0, **geometry):
    rng = np.random.default_rng(7)
    chi, _ = grains(rng, 24, count=2)
    maps = []
    for i, b in enumerate(fields_uT):
        m = induced_map(chi, b * 1e-6 * AXIS, noise=noise, rng=rng, leak=leak * b,
                        **(GEOMETRY | geometry))
        maps.append(m.with_bz(m.bz, name=f"ind_{i}"))
    return chi, maps


def test_the_combination_is_the_induced_map_of_the_whole_series_strength():
    """Linear in the field: +20, −20 and +40 µT combine into the map of √2400 µT, offsets
    (the applied field's own Bz, here proportional to it) included."""
    _, maps = series([20.0, -20.0, 40.0], leak=0.01e-6)
    got = combine_field_series(maps, "series")
    strength = np.sqrt(20.0**2 + 20.0**2 + 40.0**2)
    _, (whole,) = series([strength], leak=0.01e-6)
    np.testing.assert_allclose(got.applied_field, strength * 1e-6 * AXIS, rtol=1e-12)
    np.testing.assert_allclose(got.bz, whole.bz, rtol=1e-9, atol=1e-9 * np.abs(whole.bz).max())
    assert got.sources == ("ind_0", "ind_1", "ind_2") and got.name == "series"
    assert "+20, -20, +40 µT along (0, 0.6, 0.8)" in got.title


def test_a_pixel_missing_in_one_map_is_missing_in_the_combination():
    _, maps = series([20.0, 40.0])
    bz = maps[1].bz.copy()
    bz[3, 4] = np.nan
    got = combine_field_series([maps[0], maps[1].with_bz(bz)], "series")
    assert np.isnan(got.bz[3, 4]) and np.isfinite(got.bz).sum() == bz.size - 1


def test_maps_off_one_axis_at_another_height_or_too_few_are_refused():
    _, maps = series([20.0, 40.0])
    tilted = maps[1].with_bz(maps[1].bz, applied_field=np.array([0.0, 40e-6, 0.0]))
    with pytest.raises(InputError, match=r"'ind_1' was taken in \(0, 40, 0\) µT, off the axis "
                                         r"of 'ind_0' \(\(0, 12, 16\) µT\) by 53.1°"):
        combine_field_series([maps[0], tilted], "s")
    zero = maps[1].with_bz(maps[1].bz, applied_field=np.zeros(3))
    with pytest.raises(InputError, match="'ind_1' has no applied field"):
        combine_field_series([maps[0], zero], "s")
    higher = maps[1].with_bz(maps[1].bz, height=30e-6)
    with pytest.raises(InputError, match=r"'ind_1' was scanned at 30 µm .* expected one height"):
        combine_field_series([maps[0], higher], "s")
    with pytest.raises(InputError, match="1 induced map given; expected two or more"):
        combine_field_series(maps[:1], "s")
