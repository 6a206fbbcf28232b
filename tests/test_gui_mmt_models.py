"""MMT tab with point grains: a multipole model, a joint inversion of two scans and a mask,
and the per-grain flag of resolved higher orders."""

from __future__ import annotations

import numpy as np
import pytest

from gui.grain_outlines import CIRCLE_SIDES
from gui.mmt_view import MMTView, grain_field
from smm_daq.analysis.mmt.formats.points import write_points
from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.solver.inversion import forward
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

UM = 1e-6
WAIT_MS = 120_000
GRAINS = point_grains(np.array([[10, 10, -3], [30, 12, -4], [20, 30, -5]]) * UM,
                      np.array([4.0, 6.0, 8.0]) * UM**3)
COEF = np.zeros((3, 8))
COEF[:, :3] = [[3e4, 0, -2e4], [-1e4, 2e4, 1e4], [1e4, 1e4, 2e4]]
COEF[0, 3:] = 2e4 * 4 * UM**3 * 1.0 * UM  # a strong quadrupole on grain 1 only


@pytest.fixture
def session(tmp_path):
    x = np.arange(0, 40.1, 1) * UM
    y = np.arange(0, 40.1, 1) * UM
    X, Y = np.meshgrid(x, y)
    path = tmp_path / "s.h5"
    rng = np.random.default_rng(2)
    for name, h in (("low", 2 * UM), ("high", 4 * UM)):
        sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, h)]
        model = MultipoleModel.build(GRAINS, Sensor(), "quadrupole")
        bz = forward(model, sensors, COEF) + rng.normal(0, 2e-9, X.size)
        write_map_entry(path, MapData(bz=bz.reshape(X.shape), x=x, y=y, height=h,
                                      sensor_size=(0.0, 0.0), name=name), kind="scan")
    grains = tmp_path / "g.txt"
    write_points(grains, GRAINS)
    mask = tmp_path / "mask.json"
    mask.write_text('{"rectangles_um": [[0, 3, 0, 40]]}')
    return path, grains, mask


def test_point_grains_quadrupole_joint_with_mask(qtbot, session):
    path, grains, mask = session
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.set_file(path)
    view.entry.setCurrentText("low")
    view.set_grain_file(grains, "points")
    view.model.setCurrentText("quadrupole")
    view.more_entries.setText("high")
    view.mask_edit.setText(str(mask))
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    r = view.result
    assert r.scans == ("low", "high") and r.model == "quadrupole"
    assert r.n_sensors == 2 * 41 * (41 - 4)
    model = view.proxy.sourceModel()
    flags = dict(zip(model.columns["grain"], model.columns["higher_order_resolved"],
                     strict=True))
    assert flags[1] == 1.0
    assert "with resolved higher orders" in view.status.text()
    total = sum(grain_field(r, g).bz for g in range(3))
    fitted = r.fitted.bz
    ok = np.isfinite(fitted)
    np.testing.assert_allclose(total[ok], fitted[ok], atol=1e-9 * np.abs(fitted[ok]).max())
    diameters = np.cbrt(6 * GRAINS.volume / np.pi) / UM
    np.testing.assert_allclose(circles(*view.data_view.outlines.getData()),
                               np.c_[GRAINS.positions[:, :2] / UM, diameters], rtol=1e-9)
    with qtbot.waitSignal(view.grainShown, timeout=WAIT_MS):
        view.select_grain(0)
    # 20 µm either side of it (4 × its distance from the sensor), cut at the map's edge at
    # −0.5 µm: −0.5 … 30 µm both ways, not −10 … 30 µm; the pane's aspect widens one of the
    # two, by as much as the pane's size makes it (not fixed: the view is never shown)
    (x0, x1), (y0, y1) = view.data_view.view_box.viewRange()
    np.testing.assert_allclose([(x0 + x1) / 2, (y0 + y1) / 2], [14.75, 14.75], rtol=1e-9)
    assert min(x1 - x0, y1 - y0) == pytest.approx(30.5, rel=1e-9)
    np.testing.assert_allclose(circles(*view.highlight.getData()),
                               [[10, 10, diameters[0]]], rtol=1e-9)


def circles(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(x, y, diameter) in µm of each ring of segments drawn, or a failure if a ring is not
    a circle about its middle."""
    ends = np.column_stack([xs, ys]).reshape(-1, 2 * CIRCLE_SIDES, 2)  # two ends a side
    centres = ends.mean(axis=1)
    radii = np.linalg.norm(ends - centres[:, None, :], axis=2)
    np.testing.assert_allclose(radii, radii[:, :1] * np.ones_like(radii), rtol=1e-9)
    return np.c_[centres, 2 * radii[:, 0]]
