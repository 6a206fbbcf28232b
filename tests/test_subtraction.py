"""In-field minus remanent after registration: the induced field comes back within the noise."""

from __future__ import annotations

import numpy as np
import pytest
from test_registration import STEP, dipoles_bz, on_scan_grid, random_sources

from smm_daq.analysis.registration import shift_is_significant
from smm_daq.analysis.subtraction import subtract_maps
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData


def scans(rng, offset, noise):
    x = np.arange(64) * STEP
    y = np.arange(60) * STEP
    px, py = np.meshgrid(x, y)
    remanent = random_sources(rng, 20, np.array([x[-1], y[-1]]))
    # induced moments along +y (an applied field along +y), 1 % of the remanent ones
    induced = [(*s[:3], 0.0, 1e-14, 0.0) for s in remanent]
    moved = [(s[0] + offset[0], s[1] + offset[1], *s[2:]) for s in remanent + induced]
    leak = 3e-6  # the applied field's own Bz seen by the sensor
    field = np.array([0.0, 40e-6, 3e-6])
    in_field = dipoles_bz(px, py, moved) + leak + rng.normal(size=px.shape) * noise
    rem = dipoles_bz(px, py, remanent) + rng.normal(size=px.shape) * noise
    true_induced = dipoles_bz(px, py, moved[len(remanent) :]) + leak
    kw = dict(height=10e-6, sensor_size=(0.0, 0.0))
    return (
        MapData(in_field, x, y, applied_field=field, name="scan_2", **kw),
        MapData(rem, x, y, applied_field=np.zeros(3), name="scan_1", **kw),
        true_induced,
    )


def test_registered_difference_matches_the_induced_field_within_noise():
    rng = np.random.default_rng(21)
    noise = 5e-8  # remanent signal / noise ~ 400, induced / noise ~ 3
    in_field, rem, truth = scans(rng, (1.4e-6, -0.6e-6), noise)
    res = subtract_maps(in_field, rem, name="induced_1")
    assert res.registered
    ok = np.isfinite(res.map.bz)
    rms = np.sqrt(np.mean((res.map.bz[ok] - truth[ok]) ** 2))
    assert rms < 1.5 * np.sqrt(2) * noise
    assert np.all(np.abs(np.array(res.shift) - (1.4e-6, -0.6e-6)) < 0.02 * STEP)
    plain = subtract_maps(in_field, rem, register=False)
    assert not plain.registered and plain.shift == (0.0, 0.0)
    assert np.sqrt(np.mean((plain.map.bz - truth) ** 2)) > 10 * np.sqrt(2) * noise
    m = res.map
    assert m.name == "induced_1" and m.sources == ("scan_2", "scan_1")
    assert (m.title, plain.map.title) == ("scan_2 − scan_1 (registered)", "scan_2 − scan_1")
    np.testing.assert_array_equal(m.applied_field, in_field.applied_field)
    assert m.height == 10e-6 and m.sensor_size == (0.0, 0.0)


def test_scans_that_did_not_move_give_an_induced_map_with_every_pixel():
    """Two scans of one grid 2 mm from the stage's origin, the sample not moved: the shift
    found is not significant and the induced map keeps its last row and column (the recipe's
    111 × 111 map lost its last row)."""
    rng = np.random.default_rng(22)
    noise = 5e-8
    in_field, rem, truth = scans(rng, (0.0, 0.0), noise)
    res = subtract_maps(on_scan_grid(in_field), on_scan_grid(rem), name="induced_1")
    assert res.registration is not None and not shift_is_significant(res.registration)
    # titled "(registered)" as if moved, in the entry, `info` and every picture of it
    assert res.map.title == "scan_2 − scan_1 (registered: no shift applied)"
    assert np.isfinite(res.map.bz).all()
    assert np.sqrt(np.mean((res.map.bz - truth) ** 2)) < 1.5 * np.sqrt(2) * noise


def test_incompatible_scans_are_refused():
    rng = np.random.default_rng(2)
    in_field, rem, _ = scans(rng, (0.0, 0.0), 1e-8)
    with pytest.raises(InputError, match=r"'scan_2'.*'scan_1'.*same grid"):
        subtract_maps(in_field, MapData(rem.bz[1:], rem.x, rem.y[1:], name="scan_1"))
    with pytest.raises(InputError, match="height"):
        subtract_maps(in_field, rem.with_bz(rem.bz, height=50e-6))
