"""The real QDM tutorial scan (tests/data/mmt-tutorial-qdm) against the public library's result."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from smm_daq.analysis.grains import GeometryWarning, read_grains
from smm_daq.analysis.mmt.formats.community import read_mmt_scan
from smm_daq.analysis.mmt.solver.inversion import invert_map


@pytest.mark.slow
def test_tutorial_qdm_scan_agrees_with_the_published_magnetizations(test_data):
    d = test_data / "mmt-tutorial-qdm"
    scan = read_mmt_scan(d / "class_QDM_result2.txt", d / "tutorial_scan_params.json")
    assert scan.bz.shape == (126, 126)
    assert scan.height == pytest.approx(6e-6) and scan.sensor_size == pytest.approx((1.2e-6,) * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeometryWarning)  # micro-CT grains overlap a little
        grains = read_grains(d / "class_cuboid_result2.txt", "mmt")
    result = invert_map(scan, grains, height=scan.height, sensor_size=scan.sensor_size)
    ref = np.loadtxt(d / "grain_mag.txt")
    assert ref[:, 0].astype(int).tolist() == grains.labels.tolist()
    expected = ref[:, 1:] * [1, 1, -1]  # the library's frame is z down
    diff = result.magnetization - expected
    assert np.all(np.abs(diff) <= result.sd)
    ur = result.table()["uncertainty_ratio_pct"]
    good = ur < 10
    assert good.sum() >= 1
    rel = np.linalg.norm(diff[good], axis=1) / np.linalg.norm(expected[good], axis=1)
    assert np.all(rel < 0.01)


def test_a_negative_scan_height_is_the_cuboid_librarys_z_down_frame(test_data, tmp_path):
    """The library inverts its raw cuboid file (z as depth) with "Scan height" negative (its
    left-handed frame, as its own test_single_dipole does): the same sensor, 6 µm above."""
    d = test_data / "mmt-tutorial-qdm"
    params = json.loads((d / "tutorial_scan_params.json").read_text())
    params["Scan height"] = -params["Scan height"]
    (tmp_path / "z_down.json").write_text(json.dumps(params))
    up = read_mmt_scan(d / "class_QDM_result2.txt", d / "tutorial_scan_params.json")
    down = read_mmt_scan(d / "class_QDM_result2.txt", tmp_path / "z_down.json")
    assert down.height == up.height == pytest.approx(6e-6)
    assert np.array_equal(down.bz, up.bz) and down.sensor_size == up.sensor_size
