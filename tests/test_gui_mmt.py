"""MMT tab: inversion in a worker, grain table sorted and filtered, per-grain maps, net."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from PyQt6 import QtCore, QtWidgets
from scan_gate import Held
from session_reads import opened, refreshed

from gui.grain_table import RATIO, SORT_ROLE, SSR, GrainFilter, GrainTableModel
from gui.mmt_view import MMTView, grain_field
from gui.stereonet import equal_area
from smm_daq.analysis.forward import cuboid_bz
from smm_daq.analysis.mmt.solver import streams as qr_streams
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import list_entries, read_map, write_map_entry

UM = 1e-6
UT = 1e-6
# A worker's first inversion compiles numba's kernels, on a fresh clone (no cache beside the
# sources) about 70 s of CPU (against 0.4 s for the same fixture compiled), and more than 300 s
# of a 2-core machine ten deep in work: a fresh clone's whole suite waited 302 s for `inverted`
# and its next test's the 142 s left. Its waits may take all but a minute of the module's time,
# where pytest-timeout calls a test hung: one of 300 s failed first, on no hang.
TIMEOUT_S = 900
WAIT_MS = (TIMEOUT_S - 60) * 1000
pytestmark = pytest.mark.timeout(TIMEOUT_S)
HEIGHT = 20 * UM
# three grains, one of two cuboids; centre x, y, z, full edges (µm)
CUBOIDS = np.array([
    [30, 30, -6, 8, 8, 6],
    [38, 30, -6, 8, 6, 6],
    [80, 60, -10, 10, 10, 8],
    [60, 100, -30, 6, 6, 6],  # deep and small: poorly determined
]) * UM
GRAIN = np.array([1, 1, 2, 3])
M_TRUE = np.array([[2e4, 0, -3e4], [-1e4, 2e4, 1e4], [1e4, 1e4, 1e4]])  # A/m per grain


def write_cuboid_session(tmp_path):
    """A scan of the three cuboid grains (entry 'scan' of s.h5, 0.05 µT noise) and their grain
    file (grains.csv)."""
    x = np.arange(0, 120.1, 4) * UM
    y = np.arange(0, 130.1, 4) * UM
    X, Y = np.meshgrid(x, y)
    sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, HEIGHT)]
    bz = cuboid_bz(sensors, CUBOIDS, M_TRUE[GRAIN - 1], sensor_size=(2 * UM, 2 * UM))
    bz = bz + np.random.default_rng(4).normal(0, 0.05 * UT, bz.size)
    path = tmp_path / "s.h5"
    write_map_entry(path, MapData(bz=bz.reshape(X.shape), x=x, y=y, height=HEIGHT,
                                  sensor_size=(2 * UM, 2 * UM), name="scan"), kind="scan")
    grains = tmp_path / "grains.csv"
    rows = ["grain,x_um,y_um,z_um,dx_um,dy_um,dz_um"]
    rows += [f"{g}," + ",".join(repr(float(v)) for v in c / UM) for g, c in zip(GRAIN, CUBOIDS,
                                                                           strict=True)]
    grains.write_text("\n".join(rows) + "\n")
    return path, grains


@pytest.fixture
def session(tmp_path):
    return write_cuboid_session(tmp_path)


@pytest.fixture
def inverted(qtbot, session):
    path, grains = session
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.resize(1300, 800)
    view.show()
    view.set_file(path)
    view.set_grain_file(grains)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    return view


def save(view, qtbot, name=None) -> list:
    """Save the shown result (into entry `name`, or the next free one) in the worker:
    (written?, what happened) once it ends."""
    with qtbot.waitSignal(view.saveEnded, timeout=WAIT_MS) as ended:
        assert view.save_to_file(name)
    return ended.args


def export_to(view, qtbot, how, path) -> list:
    """Export the shown result to `path` (`how`: "csv" or "library") in the worker:
    (written?, the status line) once it ends."""
    start = view.export_csv if how == "csv" else view.export_library
    with qtbot.waitSignal(view.exportEnded, timeout=WAIT_MS) as ended:
        assert start(path)
    assert ended.args[1] == view.status.text()
    return ended.args


def open_view(qtbot, path, grains):
    """The MMT tab on a session file and a grain file (cuboids)."""
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.set_file(path)
    view.set_grain_file(grains)
    return view


def column(view, name):
    model = view.proxy.sourceModel()
    return [view.proxy.index(r, model.names.index(name)).data(SORT_ROLE)
            for r in range(view.proxy.rowCount())]


def test_inversion_fills_the_table_and_recovers_the_grains(inverted):
    view = inverted
    assert view.proxy.rowCount() == 3
    assert sorted(column(view, "grain")) == [1, 2, 3]
    by_grain = dict(zip(column(view, "grain"), zip(column(view, "mx_A_per_m"),
                                                   column(view, "my_A_per_m"),
                                                   column(view, "mz_A_per_m"), strict=True),
                        strict=True))
    for label in (1, 2):  # the shallow grains: close to the magnetizations the map was made of
        np.testing.assert_allclose(by_grain[label], M_TRUE[label - 1], rtol=0.05, atol=500)
    assert "3 grains" in view.status.text()
    assert view.busy.maximum() == 1 and view.run_button.isEnabled()


def test_table_sorts_numerically(inverted):
    view = inverted
    view.sort_by(RATIO)
    ratios = column(view, RATIO)
    assert ratios == sorted(ratios)
    view.sort_by(RATIO, QtCore.Qt.SortOrder.DescendingOrder)
    assert column(view, RATIO) == sorted(ratios, reverse=True)


def test_filters_hide_unreliable_grains(inverted):
    view = inverted
    ratios = dict(zip(column(view, "grain"), column(view, RATIO), strict=True))
    ssrs = dict(zip(column(view, "grain"), column(view, SSR), strict=True))
    best = sorted(ratios.values())
    limit = round(float(np.sqrt(best[1] * best[2])), 3)  # keeps the two best-determined grains
    assert best[1] < limit < best[2]
    view.max_ratio.setValue(limit)
    assert sorted(column(view, "grain")) == sorted(g for g, r in ratios.items() if r <= limit)
    assert view.shown.text() == "2 of 3 grains shown"
    assert len(view.net.lower.data) + len(view.net.upper.data) == 2
    view.max_ratio.setValue(0.0)  # "any"
    strongest = sorted(ssrs.values())
    view.min_ssr.setDecimals(6)
    view.min_ssr.setValue(round(float(np.sqrt(strongest[-2] * strongest[-1])), 6))
    assert column(view, "grain") == [max(ssrs, key=ssrs.get)]


def test_the_net_shows_each_grains_direction(inverted):
    view = inverted
    result = view.result
    x, y, _down = equal_area(result.magnetization)
    points = {tuple(np.round(p, 9)) for p in zip(x, y, strict=True)}
    shown = {tuple(np.round((s.pos().x(), s.pos().y()), 9))
             for item in (view.net.lower, view.net.upper) for s in item.points()}
    assert shown == points


def test_selecting_a_grain_shows_its_own_field_and_zooms_to_it(inverted, qtbot):
    view = inverted
    rows = column(view, "grain")
    with qtbot.waitSignal(view.grainShown, timeout=WAIT_MS) as shown:
        view.table.selectRow(rows.index(2))
    assert shown.args == [1]
    m = view.grain_view.map
    iy, ix = np.unravel_index(np.nanargmax(np.abs(m.bz)), m.bz.shape)
    assert abs(m.x[ix] - 80 * UM) < 15 * UM and abs(m.y[iy] - 60 * UM) < 15 * UM
    # the grains' own fields add up to the inversion's fitted map (superposition)
    result = view.result
    total = sum(grain_field(result, g).bz for g in range(result.grains.n_grains))
    scale = np.max(np.abs(result.fitted.bz))
    np.testing.assert_allclose(total, result.fitted.bz, atol=1e-3 * scale)
    np.testing.assert_allclose(m.bz, grain_field(result, 1).bz)  # grain 2 is index 1
    xs, _ys = view.highlight.getData()
    assert xs.min() == pytest.approx(75.0) and xs.max() == pytest.approx(85.0)
    # zoomed to the grain's surroundings (4 × its distance from the sensor, 120 µm either
    # side) cut at the map's edges (−2 … 122 × −2 … 132 µm; the pane's aspect may widen one
    # axis): not the 240 µm square around it, mostly outside the map
    (x0, x1), (y0, y1) = view.data_view.view_box.viewRange()
    assert x0 <= 75 and x1 >= 85 and y0 <= 55 and y1 >= 65
    assert max(x1 - x0, y1 - y0) < 160


def test_a_missing_grain_file_is_reported(qtbot, session, tmp_path):
    path, _ = session
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.set_file(path)
    view.set_grain_file(tmp_path / "nope.csv")
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        view.run()
    assert done.args[0] is False
    assert "nope.csv" in view.status.text()


def test_an_inversion_out_of_memory_says_so(qtbot, session, monkeypatch):
    """A large inversion on a lab PC can run out of memory: a MemoryError has no text, and
    the tab said only "Inversion failed: "."""
    from smm_daq.analysis.mmt.solver import inversion

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(inversion, "invert_map", out_of_memory)
    view = open_view(qtbot, *session)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args == [False, "MemoryError()"]
    assert view.status.text() == "Inversion failed: MemoryError()"


def test_filter_leaves_undetermined_grains_out_only_when_a_limit_is_set(qtbot):
    model = GrainTableModel({"grain": np.array([1, 2]), SSR: np.array([0.5, np.nan]),
                             RATIO: np.array([10.0, np.inf])})
    proxy = GrainFilter()
    proxy.setSourceModel(model)
    assert proxy.shown_rows() == [0, 1]
    proxy.set_limits(0.1, float("inf"))
    assert proxy.shown_rows() == [0]
    proxy.set_limits(0.0, 50.0)
    assert proxy.shown_rows() == [0]


def test_magnetizations_of_tens_of_ka_per_m_are_shown_whole(qtbot):
    """A grain's 19996 A/m (±2.6) is not shown as 2e+04, nor 20123 as 2.012e+04 beside 9969;
    small and very large numbers keep four significant digits."""
    model = GrainTableModel({"grain": np.array([1, 2, 3, 4]),
                             "mx_A_per_m": np.array([19996.3, 9969.2, -20123.4, 46500.0]),
                             "moment_Am2": np.array([3.736e-12, 1.96e-11, 2e-12, np.nan]),
                             "cov_xy_A2_per_m2": np.array([-82.64, 1.2e7, 0.0714, 0.0])})
    shown = [[model.index(r, c).data() for c in range(1, 4)] for r in range(4)]
    assert shown == [["19996", "3.736e-12", "-8.264e+01"], ["9969", "1.960e-11", "1.200e+07"],
                     ["-20123", "2.000e-12", "7.140e-02"], ["46500", "nan", "0.000e+00"]]
    # four digits round these up to 1e+04 and 1e+05: shown whole as well; 999999.6 rounds
    # to 1000000, seven digits, more than fixed point takes: its column has exponents
    model = GrainTableModel({"grain": np.array([1, 2, 3]),
                             "mx_A_per_m": np.array([9999.7, -9999.6, 99999.6]),
                             "my_A_per_m": np.array([999999.6, 250000.0, 0.0])})
    assert [model.index(r, 1).data() for r in range(3)] == ["10000", "-10000", "100000"]
    assert [model.index(r, 2).data() for r in range(3)] == ["1.000e+06", "2.500e+05",
                                                           "0.000e+00"]


def test_the_grain_table_heads_its_columns_for_people_and_writes_each_column_alike(qtbot):
    """The table was headed with the CSV's column names (mx_A_per_m, sd_mx_A_per_m) and wrote
    each number on its own, 3.219e+10 beside -707855 in one column; now a heading says the
    quantity and its unit (the CSV's name in its tooltip, the CSV unchanged), and a column
    has one format: its decimals from its largest value (and enough for its smallest to
    show two digits), or an exponent for every number (0.0001 was written 0.00 beside
    40.55)."""
    from PyQt6.QtCore import Qt

    model = GrainTableModel({
        "grain": np.array([36, 38, 12]),
        "mx_A_per_m": np.array([3.219e10, -707855.0, 12.5]),
        "sd_mx_A_per_m": np.array([0.6646, 40.55, -0.0001]),
        "ssr_per_um": np.array([1.2e-4, 3.4e-3, np.nan]),
        "declination_deg": np.array([12.0, 359.5, 180.3]),
    })
    horizontal = Qt.Orientation.Horizontal
    assert [model.headerData(c, horizontal) for c in range(5)] == [
        "grain", "Mx (A/m)", "SD Mx (A/m)", "SSR (1/µm)", "declination cw from N (°)"]
    assert model.headerData(1, horizontal, Qt.ItemDataRole.ToolTipRole) == (
        "CSV column mx_A_per_m")
    assert model.headerData(4, horizontal, Qt.ItemDataRole.ToolTipRole).startswith(
        "CSV column declination_cw_from_north_deg: declination, clockwise from north")
    shown = [[model.index(r, c).data() for r in range(3)] for c in range(5)]
    assert shown == [["36", "38", "12"],
                     ["3.219e+10", "-7.079e+05", "1.250e+01"],
                     ["6.646e-01", "4.055e+01", "-1.000e-04"],
                     ["0.000120", "0.003400", "nan"],
                     ["12.0", "359.5", "180.3"]]


def test_the_ssr_limit_says_its_unit(qtbot):
    """The SSR limit read 0.000100 beside a column in µm⁻¹ (ssr_per_um), without a unit."""
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    assert view.min_ssr.text() == "any"
    view.min_ssr.setValue(1e-4)
    assert view.min_ssr.text() == "0.000100 /µm"


def test_results_are_saved_to_the_file_and_as_csv_like_the_command_line(inverted, tmp_path,
                                                                         qtbot):
    import csv

    import h5py

    from smm_daq.storage.nexus import list_entries, read_map

    view = inverted
    assert view.save_button.isEnabled() and view.csv_button.isEnabled()
    assert not view.library_button.isEnabled()  # the cuboid model has no library form
    with_signal = []
    view.saved.connect(with_signal.append)
    assert save(view, qtbot)[0]
    assert save(view, qtbot)[0]  # a second save takes the next free name
    names = [e.name for e in list_entries(view.path)]
    assert names[-2:] == ["scan_mmt", "scan_mmt_2"]
    assert with_signal == [view.path, view.path]
    info = {e.name: e for e in list_entries(view.path)}["scan_mmt"]
    assert info.kind == "mmt" and info.sources == ("scan",)
    residual = read_map(view.path, "scan_mmt")
    np.testing.assert_allclose(residual.bz, view.result.residual.bz)
    with h5py.File(view.path, "r") as f:
        np.testing.assert_allclose(f["scan_mmt/grains/mx"][()], view.result.magnetization[:, 0])
        assert f["scan_mmt/grains/mx"].attrs["units"] == "A/m"
        command = f["scan_mmt/process/parameters/command"][()].decode()
        assert "--grain-format cuboids" in command

    out = tmp_path / "grains_result.csv"
    assert export_to(view, qtbot, "csv", out)[0]
    rows = list(csv.DictReader(out.open()))
    assert [int(r["grain"]) for r in rows] == [1, 2, 3]
    np.testing.assert_allclose([float(r["my_A_per_m"]) for r in rows],
                               view.result.magnetization[:, 1], rtol=1e-8)
    before = view.path.read_bytes()
    ok, said = export_to(view, qtbot, "csv", view.path)  # never over the session file
    assert not ok and said.startswith("Not exported: ") and "HDF5" in said
    assert view.path.read_bytes() == before


def test_a_saved_result_records_a_command_line_that_makes_that_entry(inverted, qtbot):
    """The entry's recorded command parses as `smm-daq mmt invert` and names what the save
    chose (the entry, the next free name the second time), not only the run's options: the
    command line needs --out, and without --result-entry it would write another entry."""
    import shlex

    import h5py

    from smm_daq.cli.main import build_parser

    view = inverted
    assert save(view, qtbot)[0]
    assert save(view, qtbot)[0]
    for name in ("scan_mmt", "scan_mmt_2"):
        with h5py.File(view.path, "r") as f:
            command = f[f"{name}/process/parameters/command"][()].decode()
        assert command.startswith("smm-daq gui: mmt invert ")
        again = build_parser().parse_args(shlex.split(command.removeprefix("smm-daq gui: ")))
        assert (again.file, again.entry, again.grains, again.grain_format) == (
            str(view.path), ["scan"], str(view.grain_edit.text()), "cuboids")
        assert (again.result_entry, again.out) == (name, f"{name}.csv")


@pytest.fixture
def held_inversion(monkeypatch):
    """GreenModel.block made to wait, on its first call, until the test releases it: the
    inversion is then in flight, between the start of its first block and its end."""
    import threading

    from smm_daq.analysis.mmt.models.cuboid import GreenModel

    started, release = threading.Event(), threading.Event()
    block = GreenModel.block

    def held(self, *args, **kwargs):
        started.set()
        assert release.wait(WAIT_MS / 1000)
        return block(self, *args, **kwargs)

    monkeypatch.setattr(GreenModel, "block", held)
    yield started, release
    release.set()


def test_cancel_stops_the_inversion_after_its_block_then_a_new_run_works(
        qtbot, session, held_inversion):
    path, grains = session
    started, release = held_inversion
    view = open_view(qtbot, path, grains)
    assert not view.cancel_button.isEnabled()
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
        assert started.wait(WAIT_MS / 1000)
        assert view.running and view.cancel_button.isEnabled()
        view.cancel()
        assert not view.cancel_button.isEnabled()
        release.set()
    assert done.args == [False, "cancelled"]
    assert "cancelled" in view.status.text()
    assert view.result is None and not view.running
    assert view.run_button.isEnabled() and not view.cancel_button.isEnabled()

    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as again:
        assert view.run()
    assert again.args[0], again.args[1]
    assert view.result is not None
    assert view.busy.maximum() == view.busy.value() == 1


def _run_inputs(view) -> list:
    """The tab's inputs an inversion reads as it starts, each with whether it takes edits."""
    return [(w, w.isEnabled()) for w in (
        view.entry, view.grain_edit, view.grain_browse, view.grain_format, view.sigma,
        view.model, view.device, view.more_entries, view.mask_edit, view.mask_browse,
        view.dragonfly.crop, view.registration)]


@pytest.mark.parametrize("ending", ["finished", "cancelled"])
def test_the_inputs_take_no_edits_while_an_inversion_runs(qtbot, session, held_inversion,
                                                          ending):
    """The inputs are read as the run starts: edited mid-run they would do nothing, so they
    are disabled until it ends, finished or cancelled."""
    started, release = held_inversion
    view = open_view(qtbot, *session)
    assert all(on for _, on in _run_inputs(view))
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
        assert started.wait(WAIT_MS / 1000)
        assert [w for w, on in _run_inputs(view) if on] == []
        if ending == "cancelled":
            view.cancel()
        release.set()
    assert done.args[0] is (ending == "finished"), done.args
    assert [w for w, on in _run_inputs(view) if not on] == []


def test_the_inputs_take_edits_again_after_a_failed_inversion(qtbot, session, tmp_path):
    view = open_view(qtbot, session[0], tmp_path / "nope.csv")
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
        assert [w for w, on in _run_inputs(view) if on] == []
    assert done.args[0] is False
    assert [w for w, on in _run_inputs(view) if not on] == []


def test_closing_during_an_inversion_asks_then_cancels_it(window, qtbot, session,
                                                          held_inversion, monkeypatch):
    from PyQt6 import QtWidgets

    path, grains = session
    started, release = held_inversion
    answers = [QtWidgets.QMessageBox.StandardButton.No, QtWidgets.QMessageBox.StandardButton.Yes]
    asked = []

    def question(*args, **kwargs):
        asked.append(args[2])
        return answers[len(asked) - 1]

    monkeypatch.setattr(QtWidgets.QMessageBox, "question", question)
    view = window.mmt
    view.set_file(path)
    view.set_grain_file(grains)
    assert view.run()
    assert started.wait(WAIT_MS / 1000)

    assert not window.close()  # "No": the inversion goes on
    assert window.isVisible() and view.running and not view._cancel.is_set()
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        window.close()  # "Yes"
        assert not window.isVisible() and view._cancel.is_set()
        release.set()
    assert len(asked) == 2 and "MMT inversion" in asked[0]
    assert done.args == [False, "cancelled"]
    assert view.result is None


def test_a_joint_multipole_result_is_saved_whole_like_the_command_line(qtbot, session,
                                                                        tmp_path):
    """The window saves through the command line's writer: the model, its coefficients and
    their covariances, both scans with their σ, fit and mask, and how it was made."""
    import h5py

    from smm_daq.storage.nexus import list_entries

    path, grains = session
    first = read_map(path, "scan")
    again = first.with_bz(first.bz + np.random.default_rng(9).normal(0, 0.05 * UT,
                                                                     first.bz.shape),
                          name="again")
    write_map_entry(path, again, kind="scan")
    mask = np.zeros(first.bz.shape, dtype=bool)
    mask[0, :5] = True
    np.save(tmp_path / "bad.npy", mask)
    view = open_view(qtbot, path, grains)
    view.entry.setCurrentText("scan")
    view.model.setCurrentText("quadrupole")
    view.more_entries.setText("again")
    view.mask_edit.setText(str(tmp_path / "bad.npy"))
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    assert save(view, qtbot, "joint")[0]
    info = {e.name: e for e in list_entries(path)}["joint"]
    assert info.kind == "mmt" and info.sources == ("scan", "again")
    with h5py.File(path, "r") as f:
        results = f["joint/results"]
        assert results["model"][()].decode() == "quadrupole"
        assert results["device"][()].decode() == "cpu"
        assert results["scans"][()].decode() == "scan,again"
        np.testing.assert_array_equal(results["coefficients"][()], view.result.coefficients)
        assert results["coefficient_covariance"].shape == (3, 8, 8)
        assert results["coefficient_units"][()].decode().split(",") == \
            ["A/m"] * 3 + ["A m3"] * 5  # a quadrupole's columns mix units
        for name in ("scan", "again"):
            assert f[f"joint/scans/{name}/sigma"].attrs["units"] == "T"
            np.testing.assert_array_equal(f[f"joint/scans/{name}/mask"][()], mask)
        command = f["joint/process/parameters/command"][()].decode()
        assert "--entry scan --entry again" in command
        assert "--model quadrupole" in command and "--mask" in command
        assert f["joint/process/parameters/model"][()].decode() == "quadrupole"


def test_the_cuboid_model_for_point_grains_is_refused_clearly(qtbot, session, tmp_path):
    path, _ = session
    points = tmp_path / "points.txt"
    points.write_text("3e-05 3e-05 -6e-06 1e-15 1\n8e-05 6e-05 -1e-05 8e-16 2\n")
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.set_file(path)
    view.set_grain_file(points, "points")
    view.model.setCurrentText("cuboid")
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        view.run()
    assert done.args[0] is False
    assert "cuboid model needs cuboid grains" in view.status.text()
    assert "dipole, quadrupole or octupole" in view.status.text()


DRAGONFLY = (
    "Label Index;Voxel count;Volume (mm³);Center Of Mass X (mm);Center Of Mass Y (mm);"
    "Center Of Mass Z (mm);\n"
    "1;672;6.72e-07;0.0335;0.030;0.494;\n"
    "2;800;8.0e-07;0.080;0.060;0.490;\n"
    "3;216;2.16e-07;0.060;0.100;0.470;\n"
    "4;2;2.0e-09;0.050;0.050;0.495;\n"  # too few voxels
    "5;900;9.0e-07;3.000;0.050;0.490;\n"  # 3 mm beyond the scan: out of sight
)


def test_dragonfly_options_a_mask_per_scan_and_the_library_export(qtbot, session, tmp_path):
    import h5py

    path, _ = session
    first = read_map(path, "scan")
    write_map_entry(path, first.with_bz(first.bz * 1.01, name="again"), kind="scan")
    export = tmp_path / "cc.csv"
    export.write_bytes(DRAGONFLY.encode("latin-1"))
    masks = []
    for k in range(2):
        mask = np.zeros(first.bz.shape, dtype=bool)
        mask[k, :4] = True
        masks.append(tmp_path / f"bad{k}.npy")
        np.save(masks[-1], mask)
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.show()
    view.set_file(path)
    view.entry.setCurrentText("scan")
    view.set_grain_file(export, "dragonfly")
    assert view.dragonfly.isVisible()
    view.dragonfly.min_voxels.setValue(5)
    view.dragonfly.z_top.setValue(500.0)
    view.dragonfly.crop.setChecked(True)
    view.model.setCurrentText("dipole")
    view.more_entries.setText("again")
    view.mask_edit.setText(f"{masks[0]}, {masks[1]}, {masks[0]}")
    assert not view.run()  # three masks for two scans
    assert "3 masks for 2 scans" in view.status.text()
    view.mask_edit.setText(f"{masks[0]}, {masks[1]}")
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    assert list(view.result.grains.labels) == [1, 2, 3]
    np.testing.assert_allclose(view.result.grains.centroids()[:, 2] / UM, [-6, -10, -30],
                               atol=1e-9)
    assert "--min-voxels 5 --z-top-um 500.0 --crop-to-scan" in view.made["command"]
    assert view.made["grains"] == str(export)
    assert view.status.text().count(" nT (") == 1 and ", " in view.status.text()  # 2 σ
    assert save(view, qtbot, "df")[0]
    with h5py.File(path, "r") as f:
        for k, name in enumerate(("scan", "again")):
            assert f[f"df/scans/{name}/mask"][()][k, :4].all()
            assert not f[f"df/scans/{name}/mask"][()][1 - k].any()
    assert view.library_button.isEnabled()
    out = tmp_path / "InvMag.npz"
    assert export_to(view, qtbot, "library", out)[0]
    got = np.load(out)
    volumes = view.result.grains.volumes()
    np.testing.assert_allclose(got["inv_multipole_moments"][:, :3],
                               view.result.coefficients[:, :3] * volumes[:, None])
    np.testing.assert_array_equal(got["identifier"], [1, 2, 3])
    view.mask_edit.setText(f"none, {masks[1]}")  # the first scan unmasked
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    assert f"--mask none --mask {masks[1]}" in view.made["command"]
    assert save(view, qtbot, "df_none")[0]
    with h5py.File(path, "r") as f:
        assert "mask" not in f["df_none/scans/scan"]
        assert f["df_none/scans/again/mask"][()][1, :4].all()
    view.grain_format.setCurrentText("points")  # the crop alone: the reader's options go
    assert view.dragonfly.isVisible() and not view.dragonfly.dragonfly_part.isVisible()
    view.grain_format.setCurrentText("cuboids")
    assert not view.dragonfly.isVisible()


def test_a_volume_sensor_entry_keeps_its_thickness_and_the_cuboid_model_refuses_it(
        qtbot, session):
    from smm_daq.analysis.mmt.formats.grains import read_grain_file
    from smm_daq.analysis.mmt.solver.joint import Scan, as_points, invert_scans

    path, grains = session
    first = read_map(path, "scan")
    write_map_entry(path, first.with_bz(first.bz, name="thick"), kind="scan",
                    extra={"instrument/sensor/thickness": 1 * UM})
    view = open_view(qtbot, path, grains)
    view.entry.setCurrentText("thick")
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()  # auto: the cuboid model for cuboid grains
    assert done.args[0] is False
    assert "'thick' was measured by a sensor 1 µm thick" in view.status.text()
    view.model.setCurrentText("dipole")
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    volume = invert_scans([Scan(first, HEIGHT, (2 * UM, 2 * UM, 1 * UM))],
                          as_points(read_grain_file(grains)), model="dipole")
    np.testing.assert_allclose(view.result.coefficients, volume.coefficients, rtol=1e-9)


def test_a_scan_named_twice_is_refused(qtbot, session):
    path, grains = session
    view = open_view(qtbot, path, grains)
    view.more_entries.setText("scan")
    assert not view.run()
    assert "expected each scan once" in view.status.text()


def test_the_progress_bar_follows_the_blocks_of_sensors(qtbot, session):
    path, grains = session
    view = open_view(qtbot, path, grains)
    seen = []
    view.progress_bridge.sensors.connect(  # after the view's own slot: the bar as updated
        lambda done, total: seen.append((view.busy.value(), view.busy.maximum())))
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    assert seen == [(view.result.n_sensors, view.result.n_sensors)]  # one block here


@pytest.mark.skipif(not qr_streams._threadsafe_layer(),
                    reason="numba's layer takes kernels from one thread at a time")
def test_the_merge_of_two_streams_is_shown_as_its_own_stage(qtbot, session, monkeypatch):
    """Forced into two streams, the inversion's merge of their triangles is told after the
    sensors: the status names it with its panels and the bar shows its share done."""
    monkeypatch.setattr(qr_streams, "stream_count", lambda *args, **kwargs: 2)
    path, grains = session
    view = open_view(qtbot, path, grains)
    seen = []
    view.progress_bridge.sensors.connect(
        lambda done, total: seen.append(("sensors", done, total)))
    view.progress_bridge.merging.connect(  # after the view's own slot: as shown
        lambda done, total, share: seen.append(
            ("merge", done, total, view.status.text(), view.busy.value(), view.busy.maximum())))
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    n = view.result.n_sensors
    # two blocks, one a stream, told as either stream ends first
    assert seen[0] in [("sensors", n // 2, n), ("sensors", n - n // 2, n)]
    assert seen[1] == ("sensors", n, n)
    steps = view.busy.maximum()  # the bar's steps over the merge, back to 1 once ended
    merge = [entry for entry in seen[2:] if entry[0] == "merge"]
    assert len(merge) == 2 and merge[0][5] > 1 and steps == 1
    assert seen[2:] == [
        ("merge", 0, 1, "merging the two streams' triangles: 0 of 1 panels", 0, merge[0][5]),
        ("merge", 1, 1, "the two streams' triangles merged", merge[0][5], merge[0][5])]


def test_a_scans_merge_then_the_next_scans_sensors_give_back_the_status(qtbot):
    """Scans folded apart merge each their triangles: the merge's status and bar, its share
    of work, then the next scan's sensors with the status the merge took the place of."""
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    said = "QR of the Green's matrix: 200 sensors × 3 grains × 8"
    view.status.setText(said)
    bridge = view.progress_bridge
    bridge.sensors.emit(100, 200)
    shown = []
    for done, share in [(0, 0.0), (1, 0.6), (2, 1.0)]:
        bridge.merging.emit(done, 2, share)
        shown.append((view.status.text(), view.busy.value() / view.busy.maximum()))
    assert shown == [("merging the two streams' triangles: 0 of 2 panels", 0.0),
                     ("merging the two streams' triangles: 1 of 2 panels", 0.6),
                     ("the two streams' triangles merged", 1.0)]
    bridge.sensors.emit(150, 200)
    assert view.status.text() == said
    assert (view.busy.value(), view.busy.maximum()) == (150, 200)


def _held_at_the_solve(qtbot, session, monkeypatch) -> tuple[MMTView, Held]:
    """The MMT tab on `session`, its inversion to be held where it solves the triangle
    (every block of sensors done)."""
    from smm_daq.analysis.mmt.solver import inversion

    path, grains = session
    held = Held(inversion.solve_triangle)
    monkeypatch.setattr(inversion, "solve_triangle", held)
    return open_view(qtbot, path, grains), held


def test_a_cancel_after_the_last_block_discards_the_result(qtbot, session, monkeypatch):
    view, held = _held_at_the_solve(qtbot, session, monkeypatch)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
        held.wait_entered()  # every block done, solving
        view.cancel()
        held.go.set()
    assert done.args == [False, "cancelled"]
    assert view.result is None


def test_a_mask_shape_that_excludes_nothing_is_shown_with_the_result(qtbot, session,
                                                                      tmp_path):
    import json

    path, grains = session
    shapes = tmp_path / "m.json"
    shapes.write_text(json.dumps({"rectangles_um": [[500, 600, 500, 600]]}))  # off the scan
    view = open_view(qtbot, path, grains)
    view.mask_edit.setText(str(shapes))
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    assert "Warning: " in view.status.text()
    assert "rectangles_um[0] covers no pixel centre" in view.status.text()


def test_another_threads_warning_is_not_among_the_results_notes(qtbot, session, monkeypatch,
                                                                recwarn):
    """The window's thread warns while the inversion runs in the worker: the warning is
    shown as Python shows it, not as a note of the result (the worker's catch_warnings
    caught every thread's)."""
    import warnings

    view, held = _held_at_the_solve(qtbot, session, monkeypatch)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
        held.wait_entered()  # the worker inside its record of the result's notes
        warnings.warn("a warning of the window's thread", UserWarning, stacklevel=1)
        held.go.set()
    assert done.args[0], done.args[1]
    assert "window's thread" not in view.status.text()
    assert "a warning of the window's thread" in [str(w.message) for w in recwarn]


def test_warnings_of_the_grain_file_are_shown_with_the_result(qtbot, session, tmp_path):
    """As the command line prints them: here a cuboid of one grain overlapping another's."""
    path, grains = session
    rows = grains.read_text().splitlines()
    first = rows[1].split(",", 1)[1]
    overlapping = tmp_path / "overlap.csv"
    overlapping.write_text("\n".join([*rows, f"99,{first}"]) + "\n")
    view = open_view(qtbot, path, overlapping)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    assert "Warning: " in view.status.text() and "overlap" in view.status.text()


def test_a_mask_that_leaves_no_pixel_is_refused_by_name(qtbot, session, tmp_path):
    path, grains = session
    every = tmp_path / "all.npy"
    np.save(every, np.ones(read_map(path, "scan").shape, bool))
    view = open_view(qtbot, path, grains)
    view.mask_edit.setText(str(every))
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert not done.args[0]
    assert "all.npy: excludes every pixel of scan 'scan'" in view.status.text()


def test_a_result_is_saved_beside_its_scans_after_another_file_is_opened(qtbot, session,
                                                                         tmp_path):
    path, grains = session
    other = tmp_path / "other.h5"
    scan = read_map(path, "scan")
    write_map_entry(other, scan.with_bz(scan.bz, name="elsewhere"), kind="scan")
    view = open_view(qtbot, path, grains)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    view.set_file(other)
    assert save(view, qtbot)[0]
    assert "scan_mmt" in {e.name for e in list_entries(path)}
    assert "scan_mmt" not in {e.name for e in list_entries(other)}
    assert f"of {path}" in view.status.text()


def test_only_measured_maps_are_offered_and_a_models_map_is_refused(qtbot, session):
    """A fit's residual or a χ map holds a model's Bz: inverting it is a mistake the command
    line refuses, and the tab neither offers it nor takes it typed in as a joint scan."""
    path, grains = session
    scan = read_map(path, "scan")
    write_map_entry(path, MapData(bz=scan.bz, x=scan.x, y=scan.y, height=HEIGHT,
                                  sensor_size=(2 * UM, 2 * UM), name="chi"),
                    kind="susceptibility")
    view = open_view(qtbot, path, grains)
    assert [view.entry.itemText(i) for i in range(view.entry.count())] == ["scan"]
    view.more_entries.setText("chi")
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert not done.args[0]
    assert "entry 'chi' is a susceptibility result" in done.args[1]
    assert [e.name for e in list_entries(path)] == ["scan", "chi"]  # nothing written


def test_the_map_list_changes_once_per_change_of_the_files_entries(qtbot, session, settings,
                                                                   monkeypatch):
    """The Session tab re-reads a file's entries after every scan, recipe or write; the MMT
    tab's list of maps is filled again only when the entries it offers changed (once), and
    the map the user chose stays chosen."""
    import gui.mmt_view
    from gui.main_window import MainWindow

    path, _grains = session
    scan = read_map(path, "scan")
    write_map_entry(path, scan.with_bz(scan.bz, name="again"), kind="scan")
    window = MainWindow(load_profile(), settings, persist=False)
    qtbot.addWidget(window)
    assert opened(window.session, qtbot, path)
    combo = window.mmt.entry
    assert [combo.itemText(i) for i in range(combo.count())] == ["scan", "again"]
    combo.setCurrentText("again")  # the user's choice
    listed, chosen, read = [], [], []
    combo.model().rowsInserted.connect(lambda *_: listed.append(1))
    combo.model().rowsRemoved.connect(lambda *_: listed.append(1))
    combo.model().modelReset.connect(lambda: listed.append(1))
    combo.currentTextChanged.connect(chosen.append)
    file_reads = gui.mmt_view.list_entries
    monkeypatch.setattr(gui.mmt_view, "list_entries",
                        lambda p: read.append(p) or file_reads(p))
    for _ in range(3):
        assert refreshed(window.session, qtbot)  # nothing changed
    assert (listed, chosen, read) == ([], [], [])
    assert combo.currentText() == "again"

    write_map_entry(path, scan.with_bz(scan.bz, name="third"), kind="scan")
    assert refreshed(window.session, qtbot)
    assert [combo.itemText(i) for i in range(combo.count())] == ["scan", "again", "third"]
    assert combo.currentText() == "again" and chosen == [] and read == []
    changes = len(listed)
    assert refreshed(window.session, qtbot)
    assert len(listed) == changes  # listed for that change only


def test_save_to_file_writes_off_the_gui_thread_and_blocks_a_second_action(inverted, qtbot,
                                                                           monkeypatch):
    """A large result takes seconds to write: the window stays live, and neither a second save
    nor an inversion (which would replace the result being written) can start meanwhile."""
    import threading

    from smm_daq.analysis.mmt import result_file
    from smm_daq.storage.nexus import list_entries

    view = inverted
    held = Held(result_file.write_result_entry)
    monkeypatch.setattr(result_file, "write_result_entry", held)
    with qtbot.waitSignal(view.saveEnded, timeout=WAIT_MS) as ended:
        assert view.save_to_file("first")
        held.wait_entered()
        assert view.saving and "Saving" in view.status.text()
        assert not view.save_button.isEnabled() and not view.run_button.isEnabled()
        assert not view.save_to_file("second") and not view.run()
        held.go.set()
    assert ended.args == [True, f"Saved as entry 'first' of {view.path}"]
    writers = held.threads
    assert writers == [writers[0]] and writers[0] is not threading.main_thread()
    assert [e.name for e in list_entries(view.path)] == ["scan", "first"]
    assert view.save_button.isEnabled() and view.run_button.isEnabled()


@pytest.mark.parametrize("how", ["csv", "library"])
def test_exports_write_off_the_gui_thread_with_their_buttons_disabled(qtbot, session,
                                                                      tmp_path, monkeypatch,
                                                                      how):
    """An export to a slow share takes seconds: the CSV and NPZ files are checked and written
    in a worker (before: on the window's thread, frozen meanwhile), the export buttons
    disabled and a second export refused until it has ended, the status saying so."""
    import threading

    from smm_daq.analysis.mmt import result_file
    from smm_daq.analysis.mmt.formats import mpe

    path, grains = session
    view = open_view(qtbot, path, grains)
    if how == "library":
        view.model.setCurrentText("dipole")
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    module, name = ((result_file, "write_result_csv") if how == "csv"
                    else (mpe, "write_library_results"))
    held = Held(getattr(module, name))
    monkeypatch.setattr(module, name, held)
    out = tmp_path / ("out.csv" if how == "csv" else "out.npz")
    start = view.export_csv if how == "csv" else view.export_library
    with qtbot.waitSignal(view.exportEnded, timeout=WAIT_MS) as ended:
        assert start(out)
        held.wait_entered()
        assert view.status.text().startswith("Writing ") and not out.exists()
        assert not view.csv_button.isEnabled() and not view.library_button.isEnabled()
        assert not view.export_csv(out) and not view.export_library(out)
        held.go.set()
    assert ended.args[0] and ended.args[1].endswith(f"written to {out}")
    assert view.status.text() == ended.args[1] and out.exists()
    assert held.threads == [held.threads[0]] and held.threads[0] is not threading.main_thread()
    assert view.csv_button.isEnabled()
    assert view.library_button.isEnabled() == (how == "library")


def test_a_save_refused_is_shown_and_changes_nothing(inverted, qtbot):
    from smm_daq.storage.nexus import list_entries, read_map

    view = inverted
    before = read_map(view.path, "scan").bz
    ok, said = save(view, qtbot, "scan")  # the scan's own name: never replaced
    assert not ok
    assert said == view.status.text()
    assert said.startswith("Not saved: ") and "entry 'scan' already exists" in said
    assert [e.name for e in list_entries(view.path)] == ["scan"]
    np.testing.assert_array_equal(read_map(view.path, "scan").bz, before)
    assert view.save_button.isEnabled()


def test_a_new_result_shows_no_grain_of_the_last_one_selected(inverted, qtbot):
    """The grain picked in the last result (its outline highlighted, its field and label in
    the grain pane) is not shown over the next result, where no grain is selected yet."""
    view = inverted
    with qtbot.waitSignal(view.grainShown, timeout=WAIT_MS):
        view.table.selectRow(column(view, "grain").index(2))
    assert view.highlight.getData()[0].size > 0
    assert view.grain_view.plot.titleLabel.text == "fitted field of grain 2"
    assert view.grain_view.colour_bar.isVisible()
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    assert view.table.selectionModel().selectedRows() == []
    xs, _ys = view.highlight.getData()
    assert xs is None or xs.size == 0
    # no grain: the pane says how to show one, with no colour scale over its zeros
    assert view.grain_view.plot.titleLabel.text == "fitted field: select a grain"
    assert not np.any(view.grain_view.map.bz) and not view.grain_view.colour_bar.isVisible()


def test_a_grain_whose_field_is_not_computed_has_no_colour_scale(inverted, qtbot, monkeypatch):
    """A grain selected after another whose field was shown: while its field is computed, and
    where it could not be, the pane's zeros have no colour scale (the last grain's stayed)."""
    import gui.mmt_view as mmt_view
    from smm_daq.errors import InputError

    view = inverted
    with qtbot.waitSignal(view.grainShown, timeout=WAIT_MS):
        view.table.selectRow(column(view, "grain").index(2))
    assert view.grain_view.colour_bar.isVisible()

    def not_computed(*_args):
        raise InputError("no field")

    monkeypatch.setattr(mmt_view, "grain_field", not_computed)
    view.table.selectRow(column(view, "grain").index(3))
    assert not view.grain_view.colour_bar.isVisible()  # computing
    qtbot.waitUntil(lambda: view.grain_view.plot.titleLabel.text.endswith("not computed"),
                    timeout=WAIT_MS)
    assert not np.any(view.grain_view.map.bz) and not view.grain_view.colour_bar.isVisible()


def test_the_grain_pane_keeps_its_size_as_its_colour_scale_comes_and_goes(inverted, qtbot):
    """The grain pane's colour scale, hidden with no grain's field, keeps its place: the pane
    is as wide with it as without, so its range and the linked map's are final when
    `grainShown` is emitted (the pane was laid out again after the signal, narrower, and
    through the links the map's zoom changed after it, by the timing of the two)."""
    view = inverted
    QtWidgets.QApplication.processEvents()  # laid out with no grain selected
    no_grain = view.grain_view.view_box.size()
    with qtbot.waitSignal(view.grainShown, timeout=WAIT_MS):
        view.table.selectRow(column(view, "grain").index(2))
    shown = [v.view_box.viewRange() for v in (view.data_view, view.grain_view)]
    QtWidgets.QApplication.processEvents()  # a layout the signal left pending
    assert view.grain_view.view_box.size() == no_grain
    assert [v.view_box.viewRange() for v in (view.data_view, view.grain_view)] == shown


def test_exports_are_proposed_beside_the_file_of_the_inverted_scans(qtbot, session, tmp_path,
                                                                    monkeypatch):
    """Another file opened since the inversion: the CSV is still proposed beside the scans the
    result is of (where Save to file writes it), named after that file and the map, whose ':'
    (on Windows a hidden stream of the name before it) becomes '_'."""
    import dataclasses

    from PyQt6 import QtWidgets

    path, grains = session
    path = tmp_path / "s2.h5"
    write_map_entry(path, dataclasses.replace(read_map(session[0], "scan"), name="scan:2"),
                    kind="scan")
    view = open_view(qtbot, path, grains)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    other = tmp_path / "elsewhere" / "other.h5"
    other.parent.mkdir()
    write_map_entry(other, read_map(session[0], "scan"), kind="scan")
    view.set_file(other)
    proposed: list[str] = []
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        lambda _parent, _caption, start, _filter: proposed.append(start)
                        or ("", ""))
    view.csv_button.click()
    assert proposed == [str(tmp_path / "s2_scan_2_mmt.csv")]


def test_a_grains_field_is_computed_off_the_gui_thread_and_the_last_pick_wins(
        inverted, qtbot, monkeypatch):
    """On a large map a grain's own field takes a second: the window stays live, and a grain
    picked while the one before is computed is the one drawn, under its own label."""
    import threading

    from gui import mmt_view

    view = inverted
    computed: list[tuple[int, threading.Thread]] = []
    entered, release = threading.Event(), threading.Event()
    field = mmt_view.grain_field

    def held(result, g, data):
        computed.append((g, threading.current_thread()))
        if len(computed) == 1:
            entered.set()
            assert release.wait(WAIT_MS / 1000)
        return field(result, g, data)

    monkeypatch.setattr(mmt_view, "grain_field", held)
    rows = column(view, "grain")
    shown: list[int] = []
    view.grainShown.connect(shown.append)
    view.table.selectRow(rows.index(2))
    assert entered.wait(WAIT_MS / 1000)
    assert view.grain_view.plot.titleLabel.text == "fitted field of grain 2: computing…"
    assert not np.any(view.grain_view.map.bz)  # not the field of a grain selected before
    with qtbot.waitSignal(view.grainShown, timeout=WAIT_MS):
        view.table.selectRow(rows.index(3))
        release.set()
    assert shown == [2]  # grain 3's index: grain 2's field, done first, was not drawn
    assert [g for g, _t in computed] == [1, 2]
    assert all(t is not threading.main_thread() for _g, t in computed)
    assert view.grain_view.plot.titleLabel.text == "fitted field of grain 3"
    np.testing.assert_allclose(view.grain_view.map.bz, field(view.result, 2).bz)


def test_the_grains_outlines_are_computed_off_the_gui_thread(qtbot, session, monkeypatch):
    """Thousands of grains take a second to outline: the inversion's worker does it, and the
    window draws the segments it hands over."""
    import threading

    from gui import mmt_view

    outlined: list[threading.Thread] = []
    segments = mmt_view.grain_segments

    def recorded(grains, only=None):
        if only is None:
            outlined.append(threading.current_thread())
        return segments(grains, only)

    monkeypatch.setattr(mmt_view, "grain_segments", recorded)
    view = open_view(qtbot, *session)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    assert len(outlined) == 1 and outlined[0] is not threading.main_thread()
    xs, ys = view.data_view.outlines.getData()
    whole = segments(view.result.grains) / UM
    np.testing.assert_array_equal(xs, whole[:, :, 0].ravel())
    np.testing.assert_array_equal(ys, whole[:, :, 1].ravel())


def test_a_fresh_result_names_its_scan_and_file_when_another_file_is_opened(inverted,
                                                                          tmp_path):
    """The result stays on show (and is saved into its own file) when the Session tab opens
    another file, whose maps the tab then offers: its status names the scan and the file it
    is of, which it did not."""
    view = inverted
    other = tmp_path / "other.h5"
    scan = read_map(tmp_path / "s.h5", "scan")
    write_map_entry(other, scan.with_bz(scan.bz, name="elsewhere"), kind="scan")
    view.set_file(other)
    assert view.entry.currentText() == "elsewhere"
    assert view.status.text().startswith("Result of 'scan' of s.h5: 3 grains")


def test_the_csv_export_writes_the_grains_shown_or_all_as_chosen_and_says_which(inverted,
                                                                                tmp_path,
                                                                                qtbot):
    """The export wrote every grain while the SSR limit (a reliability criterion) hid some,
    without a word; now it writes the grains shown, the choice beside the button names how
    many, and the status line says what was written; unticked, every grain."""
    import csv

    view = inverted
    ssr = view.table_columns["ssr_per_um"]
    view.min_ssr.setValue(float(np.median(ssr)))
    kept = [int(g) for g, s in zip(view.table_columns["grain"], ssr, strict=True)
            if s >= view.min_ssr.value()]
    assert 0 < len(kept) < len(ssr)
    assert view.csv_shown_only.isChecked()
    assert view.csv_shown_only.text() == f"only the {len(kept)} grains shown"
    out = tmp_path / "shown.csv"
    assert export_to(view, qtbot, "csv", out)[0]
    assert [int(r["grain"]) for r in csv.DictReader(out.open())] == kept
    assert view.status.text() == (f"Per-grain results of the {len(kept)} of {len(ssr)} grains "
                                  f"shown by the limits written to {out}")
    view.csv_shown_only.setChecked(False)
    assert export_to(view, qtbot, "csv", out)[0]
    assert [int(r["grain"]) for r in csv.DictReader(out.open())] == [1, 2, 3]
    assert view.status.text() == f"Per-grain results of all 3 grains written to {out}"


def test_a_view_closed_during_an_inversion_cancels_it(qtbot, session, held_inversion):
    """Closed on its own (a test's teardown, a view torn off), the view's inversion stops
    after its block in hand: it computed on and sent progress to a view being deleted."""
    path, grains = session
    started, release = held_inversion
    view = open_view(qtbot, path, grains)
    blocks: list[tuple[int, int]] = []
    view.progress_bridge.sensors.connect(lambda done, total: blocks.append((done, total)))
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
        assert started.wait(WAIT_MS / 1000)
        view.close()
        release.set()
    assert done.args == [False, "cancelled"]
    assert blocks == [] and view.result is None


def test_a_result_saved_after_an_earlier_decomposed_scan_name_is_named_composed(
        qtbot, session) -> None:
    """Saved under the next free name after the scan's: where an earlier release named the
    scan with a decomposed accent, the result's name is composed, as a new entry's must be
    (the save, after the whole inversion, was refused for a name nobody typed)."""
    path, grains = session
    nfd = "e\u0301chantillon"
    with h5py.File(path, "a") as f:
        f.move("scan", nfd)
        f.attrs["default"] = nfd
    view = open_view(qtbot, path, grains)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    written, said = save(view, qtbot)
    assert written, said
    assert {e.name for e in list_entries(path)} == {nfd, "\u00e9chantillon_mmt"}


DELETED_MID_INVERSION = """
import sys
import threading
from pathlib import Path

from PyQt6 import QtWidgets, sip

from gui.mmt_view import MMTView
from smm_daq.analysis.mmt.models.cuboid import GreenModel
from smm_daq.analysis.mmt.solver import inversion
from smm_daq.instruments.profile import load_profile

app = QtWidgets.QApplication([])
started, release, ended = threading.Event(), threading.Event(), threading.Event()
block, invert_map = GreenModel.block, inversion.invert_map

def held(self, *args, **kwargs):
    started.set()
    release.wait()
    return block(self, *args, **kwargs)

def invert(*args, **kwargs):
    try:
        return invert_map(*args, **kwargs)
    finally:
        ended.set()

GreenModel.block, inversion.invert_map = held, invert
folder = Path(sys.argv[1])
view = MMTView(load_profile())
view.set_file(folder / "s.h5")
view.set_grain_file(folder / "grains.csv")
assert view.run()
started.wait()
worker = view.worker
sip.delete(view)  # freed as its window is, with no close of its own: nothing cancels
release.set()  # its blocks end, each telling its progress
ended.wait()
worker.submit(lambda: None).result()  # the inversion's call has ended, its end sent
app.processEvents()
print("deleted mid-inversion", flush=True)
"""


def test_an_inversion_ending_after_its_view_was_deleted_does_not_crash(repo, gui_env,
                                                                      tmp_path):
    """A view deleted with no close of its own (as the window's tabs are, once the window is
    freed) while its inversion runs: the inversion's progress, sent from its thread, had
    crashed the process (SIGSEGV), signalled through the view's deleted progress object."""
    import subprocess
    import sys

    write_cuboid_session(tmp_path)
    done = subprocess.run([sys.executable, "-c", DELETED_MID_INVERSION, str(tmp_path)],
                          cwd=repo, env=gui_env, capture_output=True, text=True,
                          timeout=WAIT_MS / 1000)  # it may compile the kernels
    assert done.returncode == 0, done.stderr
    assert done.stdout == "deleted mid-inversion\n"
