"""Point grains above the sample top (z > 0): inverted as given, and warned of, since
positions written with z as depth (the cuboid library's convention) read so."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from smm_daq.analysis.grains import GeometryWarning
from smm_daq.analysis.mmt.models.multipole import point_grains
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

UM = 1e-6


def _scan() -> MapData:
    x = np.arange(21) * UM
    bz = np.random.default_rng(1).normal(0.0, 1e-8, (21, 21))
    return MapData(bz=bz, x=x, y=x, height=5 * UM, name="scan")


def _invert(z_um: list[float]):
    grains = point_grains(np.array([[5 * UM, 5 * UM, z_um[0] * UM],
                                    [15 * UM, 12 * UM, z_um[1] * UM]]),
                          np.array([1e-18, 2e-18]), np.array([7, 8]), source="p.txt")
    data = _scan()
    return invert_scans([Scan(data, data.height, (0.0, 0.0), sigma=1e-8)], grains,
                        model="dipole")


def test_grains_above_the_sample_top_are_warned_of_naming_one_and_inverted_as_given():
    with pytest.warns(GeometryWarning, match=r"p\.txt: 2 of 2 grains lie above the sample top "
                      r"\(z > 0\), e.g\. grain 8 at z = 3 µm; expected z up with the sample "
                      r"top at 0 and grains below it \(depths written as positive z\?\): "
                      "inverted as given"):
        result = _invert([2.0, 3.0])
    assert result.coefficients.shape == (2, 3)


def test_the_warning_names_the_file_then_the_highest_grain_and_its_line():
    grains = point_grains(np.array([[5 * UM, 5 * UM, 2 * UM], [15 * UM, 12 * UM, 3 * UM]]),
                          np.array([1e-18, 2e-18]), np.array([7, 8]), source="p.txt",
                          lines=np.array([4, 5]))
    data = _scan()
    with pytest.warns(GeometryWarning, match=r"^p\.txt: 2 of 2 grains lie above the sample "
                      r"top \(z > 0\), e\.g\. grain 8, line 5 at z = 3 µm;"):
        invert_scans([Scan(data, data.height, (0.0, 0.0), sigma=1e-8)], grains, model="dipole")


def test_grains_below_the_top_are_not_warned_of():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _invert([-2.0, -3.0])


def test_grains_above_the_sensor_and_the_top_are_refused_naming_the_depth_convention():
    """Depths written as positive z put the deeper grains above the sensor, and so does a
    file whose top lies at another z (a CT's frame): refused, saying the frame the positions
    are read in and the remedy of each (the warning of grains above the top comes later)."""
    with pytest.raises(InputError, match=r"grain 8 is at z = 7 µm, at or above the sensor's "
                       r"lowest face \(5 µm\); expected every grain below the sensor, z up "
                       r"with the sample top at 0 \(depths written as positive z\? their sign "
                       r"turned; a top at another z\? the grains shifted by minus it, "
                       r"--grains-shift-um 0,0,-TOP\)$"):
        _invert([2.0, 7.0])
