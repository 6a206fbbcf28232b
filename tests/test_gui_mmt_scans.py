"""MMT tab: of a joint inversion, fresh or saved, the user chooses the scan whose map, residual
and grains' own fields are shown, each on the scan's own grid; a saved cuboid result draws its
grains from the entry, without the grain file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from test_gui_mmt_saved import as_written_before_version_3, open_saved

from gui.map_geometry import pixel_rect
from gui.mmt_view import MMTView, grain_field
from smm_daq.analysis.mmt.formats.points import write_points
from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.result_file import RESULT_VERSION
from smm_daq.analysis.mmt.result_read import read_result_entry
from smm_daq.analysis.mmt.solver.inversion import forward
from smm_daq.cli.main import main
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map, write_map_entry

UM = 1e-6
WAIT_MS = 120_000
GRAINS = point_grains(np.array([[10, 10, -3], [30, 12, -4], [20, 30, -5]]) * UM,
                      np.array([4.0, 6.0, 8.0]) * UM**3)
M = np.array([[3e4, 0, -2e4], [-1e4, 2e4, 1e4], [1e4, 1e4, 2e4]])


@pytest.fixture
def two_grids(tmp_path):
    """Two scans of three dipoles on different grids and heights: 'low' 41 × 41 at 1 µm,
    2 µm up; 'high' 25 × 23 at 2 µm, 5 µm up; and the grains' point list g.txt."""
    path = tmp_path / "j.h5"
    rng = np.random.default_rng(3)
    for name, h, x, y in (("low", 2 * UM, np.arange(0, 40.1, 1), np.arange(0, 40.1, 1)),
                          ("high", 5 * UM, np.arange(-4, 44.1, 2), np.arange(-2, 42.1, 2))):
        X, Y = np.meshgrid(x * UM, y * UM)
        bz = forward(MultipoleModel.build(GRAINS, Sensor(), "dipole"),
                     np.c_[X.ravel(), Y.ravel(), np.full(X.size, h)], M.ravel())
        write_map_entry(path, MapData(bz=(bz + rng.normal(0, 1e-9, X.size)).reshape(X.shape),
                                      x=x * UM, y=y * UM, height=h, sensor_size=(0.0, 0.0),
                                      name=name), kind="scan")
    write_points(tmp_path / "g.txt", GRAINS)
    return path, tmp_path / "g.txt"


def assert_scan_shown(qtbot, view, i, name, path):
    """Scan `i` (entry `name`) is shown: its measured map, its residual and a grain's own
    field, on its grid, at its height."""
    view.show_scan(i)
    assert view.scan_choice.currentText() == name
    scan = read_map(path, name)
    fit = view.fits[i]
    assert fit.name == name and fit.height == scan.height
    np.testing.assert_array_equal(view.data_view.map.bz, scan.bz)
    for m in (view.residual_view.map, view.grain_view.map):
        np.testing.assert_array_equal(m.x, scan.x)
        np.testing.assert_array_equal(m.y, scan.y)
    np.testing.assert_array_equal(view.residual_view.map.bz, fit.residual.bz)
    # the fit plus the residual is the scan: these are its maps, not another scan's
    np.testing.assert_allclose(fit.fitted.bz + fit.residual.bz, scan.bz, rtol=1e-12)
    with qtbot.waitSignal(view.grainShown, timeout=WAIT_MS):
        view.select_grain(1)
    np.testing.assert_allclose(view.grain_view.map.bz, grain_field(view.result, 1, fit).bz)
    # zoomed to the grain's surroundings seen from this scan's height: 4 × its distance
    # below the sensor either side, within the scan's map (the pane's aspect may widen one axis)
    cx, cy, cz = view.result.grains.centroids()[1]
    half = 4 * (fit.height - cz)
    left, bottom, width, height = pixel_rect(scan)
    (x0, x1), (y0, y1) = view.data_view.view_box.viewRange()
    assert x0 * UM <= max(cx - half, left) + 1e-9 and x1 * UM >= min(cx + half, left + width) - 1e-9
    assert y0 * UM <= max(cy - half, bottom) + 1e-9
    assert y1 * UM >= min(cy + half, bottom + height) - 1e-9
    total = sum(grain_field(view.result, g, fit).bz for g in range(3))
    np.testing.assert_allclose(total, fit.fitted.bz, rtol=1e-9,
                               atol=1e-12 * np.abs(fit.fitted.bz).max())


def test_each_scan_of_a_fresh_joint_inversion_is_shown_on_its_own_grid(qtbot, two_grids):
    path, grains = two_grids
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.set_file(path)
    view.entry.setCurrentText("low")
    view.more_entries.setText("high")
    view.set_grain_file(grains, "points")
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    assert not view.scan_choice.isHidden()
    assert [view.scan_choice.itemText(i) for i in range(view.scan_choice.count())] == \
        ["low", "high"]
    labels = view.proxy.sourceModel().columns["grain"].copy()
    assert_scan_shown(qtbot, view, 1, "high", path)
    assert_scan_shown(qtbot, view, 0, "low", path)
    assert view.data_view.outlines.xData.size > 0  # the outlines and the table stay
    np.testing.assert_array_equal(view.proxy.sourceModel().columns["grain"], labels)
    assert view.data.name == "low"  # what a save names as the inverted map
    with qtbot.waitSignal(view.saveEnded, timeout=WAIT_MS) as ended:
        assert view.save_to_file("from_window")
    assert ended.args[0], ended.args[1]
    saved = read_result_entry(path, "from_window")  # the window's save is as whole
    assert saved.version == RESULT_VERSION and saved.grain_format == "points"
    assert saved.grain_file_absolute == str(grains.resolve())
    for fresh, back in zip(view.fits, saved.scan_fits, strict=True):
        assert (back.name, back.height, back.sensor_size) == \
            (fresh.name, fresh.height, fresh.sensor_size)
        np.testing.assert_array_equal(back.residual.x, fresh.residual.x)
        np.testing.assert_array_equal(back.residual.bz, fresh.residual.bz)


def test_each_scan_of_a_saved_joint_inversion_is_shown_on_its_own_grid(qtbot, two_grids):
    path, grains = two_grids
    assert main(["mmt", "invert", str(path), "--entry", "low", "--entry", "high", "--grains",
                 str(grains), "--grain-format", "points", "--out",
                 str(path.with_name("r.csv")), "--result-entry", "joint"]) == 0
    view, (ok, text) = open_saved(qtbot, path, "joint")
    assert ok, text
    assert_scan_shown(qtbot, view, 1, "high", path)
    assert_scan_shown(qtbot, view, 0, "low", path)
    with h5py.File(path, "r") as f:  # each scan's grid is the entry's own
        for name in ("low", "high"):
            for axis in "xy":
                np.testing.assert_array_equal(f[f"joint/scans/{name}/{axis}"][()],
                                              getattr(read_map(path, name), axis))
    # written before the scans' grids were stored: each scan's entry gives its grid
    as_written_before_version_3(path, "joint")
    view, (ok, text) = open_saved(qtbot, path, "joint")
    assert ok, text
    assert_scan_shown(qtbot, view, 1, "high", path)


def test_a_saved_cuboid_result_draws_its_grains_without_the_grain_file(qtbot, tmp_path):
    from test_gui_mmt import write_cuboid_session

    path, grains = write_cuboid_session(tmp_path)
    assert main(["mmt", "invert", str(path), "--entry", "scan", "--grains", str(grains),
                 "--out", str(tmp_path / "r.csv")]) == 0
    grains.unlink()
    view, (ok, text) = open_saved(qtbot, path, "scan_mmt")
    assert ok and "Not shown" not in text, text
    assert view.result.shapes and view.data_view.outlines.xData.size > 0
    assert view.scan_choice.isHidden()  # one scan: nothing to choose
    with qtbot.waitSignal(view.grainShown, timeout=WAIT_MS):
        view.select_grain(0)
    total = sum(grain_field(view.result, g).bz for g in range(3))
    fitted = view.result.fitted.bz
    np.testing.assert_allclose(total, fitted, atol=1e-3 * np.abs(fitted).max())
