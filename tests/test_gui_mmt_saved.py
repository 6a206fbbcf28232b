"""MMT tab: a result saved in the session file (by the command line or the window) is read back
off the GUI thread and shown as a fresh one is: the CSV's columns and values, the fitted and
residual maps, the outlines, the net and a multipole model's resolved column; a damaged or
foreign entry gives a message and changes nothing."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
from PyQt6 import QtCore
from scan_gate import Held
from session_reads import opened
from test_gui_mmt import write_cuboid_session

from gui.mmt_view import MMTView
from smm_daq.analysis.mmt.formats.points import write_points
from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
from smm_daq.analysis.mmt.solver.inversion import forward
from smm_daq.cli.main import main
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map, write_map_entry

UM = 1e-6
UT = 1e-6
WAIT_MS = 120_000
HEIGHT = 20 * UM
POINTS = point_grains(np.array([[10, 10, -3], [30, 12, -4], [20, 30, -5]]) * UM,
                      np.array([4.0, 6.0, 8.0]) * UM**3)
COEF = np.zeros((3, 8))
COEF[:, :3] = [[3e4, 0, -2e4], [-1e4, 2e4, 1e4], [1e4, 1e4, 2e4]]
COEF[0, 3:] = 2e4 * 4 * UM**3 * 1.0 * UM  # a strong quadrupole on grain 1 only


@pytest.fixture
def cuboid_session(tmp_path):
    """A scan of three cuboid grains, its grain file, and its inversion by the command line
    (entry 'scan_mmt', CSV r.csv)."""
    path, grains = write_cuboid_session(tmp_path)
    out = tmp_path / "r.csv"
    assert main(["mmt", "invert", str(path), "--entry", "scan", "--grains", str(grains),
                 "--out", str(out)]) == 0
    return path, grains, out


def open_saved(qtbot, path, entry, grains=None):
    """A fresh MMT tab on the file, the saved `entry` read and shown: (view, loadEnded args)."""
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.set_file(path)
    if grains is not None:
        view.set_grain_file(grains)
    with qtbot.waitSignal(view.loadEnded, timeout=WAIT_MS) as ended:
        assert view.load_result(path, entry)
    return view, ended.args


def assert_table_is_the_csv(view, csv_path):
    """The table's columns, in order, and every grain's values are the CSV's (the command
    line's own file: nobody in the window wrote it), whichever way the rows are sorted."""
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    model = view.proxy.sourceModel()
    horizontal = QtCore.Qt.Orientation.Horizontal
    tips = [view.table.model().headerData(j, horizontal, QtCore.Qt.ItemDataRole.ToolTipRole)
            for j in range(len(model.names))]
    # each heading's tooltip names its CSV column (the declination's header its convention)
    assert [tip.split(": ")[0] for tip in tips] == [f"CSV column {h}" for h in rows[0]]
    assert "clockwise from north" in tips[model.names.index("declination_deg")]
    assert model.rowCount() == len(rows) - 1
    for j, name in enumerate(model.names):
        shown = model.columns[name]  # by grain, in the result's order (the CSV's)
        written = np.array([float(row[j]) for row in rows[1:]])
        np.testing.assert_allclose(shown, written, rtol=5e-9, atol=0, equal_nan=True,
                                   err_msg=name)


def test_a_cuboid_result_saved_by_the_command_line_is_shown_as_a_fresh_one(qtbot,
                                                                            cuboid_session):
    path, _grains, out = cuboid_session
    view, (ok, text) = open_saved(qtbot, path, "scan_mmt")
    assert ok, text
    assert "Saved result 'scan_mmt'" in text and "cuboid model; scans scan" in text
    assert "3 grains from" in text and "computed on cpu" in text
    assert_table_is_the_csv(view, out)
    with h5py.File(path, "r") as f:  # the maps stored, read by h5py itself
        fitted, residual = f["scan_mmt/fitted/Bz"][()], f["scan_mmt/data/Bz"][()]
    np.testing.assert_array_equal(view.result.fitted.bz, fitted)
    np.testing.assert_array_equal(view.residual_view.map.bz, residual)
    np.testing.assert_array_equal(view.data_view.map.bz, read_map(path, "scan").bz)
    # the grain file the entry records is read: the footprints are drawn as after a run
    assert view.result.shapes and view.data_view.outlines.xData.size > 0
    assert len(view.net.lower.data) + len(view.net.upper.data) == 3
    assert not view.save_button.isEnabled() and not view.save_to_file()  # in the file already
    assert view.csv_button.isEnabled()
    before = path.read_bytes()
    view.sort_by("ssr_per_um")
    view.min_ssr.setValue(1e-6)
    assert path.read_bytes() == before
    with qtbot.waitSignal(view.grainShown, timeout=WAIT_MS):
        view.select_grain(0)  # a grain's own field: from the grain file's cuboids


def as_written_by_version_3(path, entry):
    """The entry as layout version 3 wrote it: the declination counter-clockwise from +x."""
    with h5py.File(path, "a") as f:
        g = f[entry]
        g.attrs["mmt_result_version"] = 3
        dec = g["grains/declination"]
        dec[...] = (90.0 - dec[()]) % 360.0


def as_written_before_version_3(path, entry):
    """The entry as the NeXus layout was before its version 3: no version attribute, no
    grains' cuboids, grain format, absolute grain path, thickness or scans' grids."""
    as_written_by_version_3(path, entry)
    with h5py.File(path, "a") as f:
        g = f[entry]
        del g.attrs["mmt_result_version"]
        for name in ("grain_cuboids", "instrument/sensor/thickness",
                     "process/parameters/grains_absolute", "process/parameters/grain_format"):
            if name in g:
                del g[name]
        for scan in g.get("scans", {}).values():
            for name in ("x", "y", "sensor_size", "sensor_thickness"):
                if name in scan:
                    del scan[name]


def test_without_its_grain_file_the_table_and_maps_are_shown_and_the_outlines_said_missing(
        qtbot, cuboid_session, tmp_path):
    """An entry written before the grains' cuboids were stored needs the grain file."""
    path, grains, out = cuboid_session
    as_written_before_version_3(path, "scan_mmt")
    moved = grains.rename(tmp_path / "elsewhere.csv")
    view, (ok, text) = open_saved(qtbot, path, "scan_mmt")
    assert ok, text
    assert "Not shown: the grains' outlines and their own fields" in text
    assert "grains.csv is not found" in text
    assert_table_is_the_csv(view, out)
    assert view.data_view.outlines.xData is None or view.data_view.outlines.xData.size == 0
    view.select_grain(1)
    assert view.grain_view.plot.titleLabel.text.endswith("needs the grain file")
    view.set_grain_file(moved)  # the user points at the grain file: shown whole
    with qtbot.waitSignal(view.loadEnded, timeout=WAIT_MS) as ended:
        assert view.load_result(path, "scan_mmt")
    assert ended.args[0] and "Not shown" not in ended.args[1]
    assert view.data_view.outlines.xData.size > 0


def write_point_session(tmp: Path, step_um: float = 1.0, *more: str) -> tuple[Path, Path]:
    """Two scans of three point grains with a quadrupole on one (40 µm square, `step_um`
    apart), a mask of the left edge, and their joint quadrupole inversion by the command
    line, with `more` of its options (entry 'joint', CSV q.csv): (session file, CSV)."""
    x = y = np.arange(0, 40.1, step_um) * UM
    X, Y = np.meshgrid(x, y)
    path = tmp / "p.h5"
    rng = np.random.default_rng(2)
    for name, h in (("low", 2 * UM), ("high", 4 * UM)):
        sensors = np.c_[X.ravel(), Y.ravel(), np.full(X.size, h)]
        bz = forward(MultipoleModel.build(POINTS, Sensor(), "quadrupole"), sensors, COEF)
        write_map_entry(path, MapData(bz=(bz + rng.normal(0, 2e-9, X.size)).reshape(X.shape),
                                      x=x, y=y, height=h, sensor_size=(0.0, 0.0), name=name),
                        kind="scan")
    grains = tmp / "g.txt"
    write_points(grains, POINTS)
    mask = tmp / "mask.json"
    mask.write_text('{"rectangles_um": [[0, 3, 0, 40]]}')
    out = tmp / "q.csv"
    assert main(["mmt", "invert", str(path), "--entry", "low", "--entry", "high", "--grains",
                 str(grains), "--grain-format", "points", "--model", "quadrupole", "--mask",
                 str(mask), "--out", str(out), "--result-entry", "joint", *more]) == 0
    return path, out


@pytest.fixture
def point_session(tmp_path):
    """`write_point_session` at 1 µm, with the library's NPZ written too (cli.npz)."""
    return write_point_session(tmp_path, 1.0, "--library-out", str(tmp_path / "cli.npz"))


def test_a_joint_multipole_result_with_a_mask_shows_its_resolved_column(qtbot, point_session,
                                                                         tmp_path):
    path, out = point_session
    view, (ok, text) = open_saved(qtbot, path, "joint")
    assert ok, text
    assert "quadrupole model; scans low, high" in text and "of 2 scans" in text
    assert "with resolved higher orders" in text
    assert_table_is_the_csv(view, out)
    model = view.proxy.sourceModel()
    assert model.columns["higher_order_resolved"][0] == 1.0  # its strong quadrupole
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(view.result.residual.bz, f["joint/data/Bz"][()])
        np.testing.assert_array_equal(view.result.masks["low"], f["joint/scans/low/mask"][()])
    assert view.library_button.isEnabled()  # the coefficients are there to export
    with qtbot.waitSignal(view.exportEnded, timeout=WAIT_MS) as exported:
        assert view.export_library(tmp_path / "window.npz")
    assert exported.args[0], exported.args[1]
    with np.load(tmp_path / "window.npz") as ours, np.load(tmp_path / "cli.npz") as cli:
        assert sorted(ours.files) == sorted(cli.files)
        for key in cli.files:  # as the command line wrote them for the library
            np.testing.assert_allclose(ours[key], cli[key], rtol=1e-12, err_msg=key)
    assert view.data_view.outlines.xData.size > 0  # point grains: circles, as after a run
    with qtbot.waitSignal(view.grainShown, timeout=WAIT_MS):
        view.select_grain(0)


def first_layout_entry(path, name, source, result, table, more=None):
    """The entry as the first versions wrote it (before the NeXus layout): every CSV column
    under results/ (the declination counter-clockwise from +x), the fitted map in fitted/Bz,
    σ, covariances and the command beside."""
    extra: dict[str, object] = {f"results/{k}": np.asarray(v, dtype=float)
                                for k, v in table.items()}
    extra["results/declination_deg"] = (90.0 - table["declination_deg"]) % 360.0
    extra["results/grain"] = np.asarray(result.grains.labels, dtype=np.int64)
    extra["results/covariance_A2_per_m2"] = result.covariance
    extra["results/sigma_T"] = result.sigma
    extra["results/sigma_from_residual"] = int(result.sigma_from_residual)
    extra["results/condition_number"] = result.condition_number
    extra["results/damping"] = result.damping
    extra["results/n_sensors"] = result.n_sensors
    extra["fitted/Bz"] = result.fitted.bz
    extra["results/command"] = "mmt invert s.h5 --entry scan --grains grains.csv"
    extra.update(more or {})
    residual = result.residual.with_bz(result.residual.bz, name=name, sources=(source,),
                                       title=f"MMT residual of {source}")
    write_map_entry(path, residual, kind="mmt", extra=extra)


def test_results_written_by_earlier_versions_are_shown(qtbot, cuboid_session, tmp_path):
    from smm_daq.analysis.mmt.formats.grains import read_grain_file
    from smm_daq.analysis.mmt.result_file import write_result_csv
    from smm_daq.analysis.mmt.solver.inversion import invert_map

    path, grains, out = cuboid_session
    data = read_map(path, "scan")
    result = invert_map(data, read_grain_file(grains), height=HEIGHT,
                        sensor_size=(2 * UM, 2 * UM))
    first_layout_entry(path, "old_mmt", "scan", result, result.table())
    write_result_csv(tmp_path / "old.csv", result.table())
    view, (ok, text) = open_saved(qtbot, path, "old_mmt")
    assert ok, text
    assert_table_is_the_csv(view, tmp_path / "old.csv")
    np.testing.assert_array_equal(view.result.fitted.bz, result.fitted.bz)
    # the command names grains.csv, found beside the session file: the grains' footprints
    assert view.result.shapes and view.data_view.outlines.xData.size > 0
    # an entry of the NeXus layout written before the device was recorded
    with h5py.File(path, "a") as f:
        del f["scan_mmt/results/device"]
    view, (ok, text) = open_saved(qtbot, path, "scan_mmt")
    assert ok and "computed on" not in text
    assert_table_is_the_csv(view, out)


def test_a_joint_multipole_result_of_the_first_layout_is_shown(qtbot, point_session,
                                                              tmp_path):
    """The first versions wrote a point model's coefficients, scans and device under results/
    and each scan's σ as scans/<entry>/sigma_T."""
    from smm_daq.analysis.mmt.formats.grains import read_grain_file
    from smm_daq.analysis.mmt.result_file import write_result_csv
    from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans

    path, _out = point_session
    scans = [Scan(read_map(path, e), h, (0.0, 0.0), None, None)
             for e, h in (("low", 2 * UM), ("high", 4 * UM))]
    result = invert_scans(scans, read_grain_file(tmp_path / "g.txt", "points"),
                          model="quadrupole")
    table = result.table()
    write_result_csv(tmp_path / "old.csv", table)
    first_layout_entry(path, "old_joint", "low", result, table, {
        "results/model": "quadrupole", "results/coefficients": result.coefficients,
        "results/coefficient_covariance": result.coefficient_covariance,
        "results/scans": "low,high", "results/device": "cpu",
        "scans/low/sigma_T": result.sigmas[0], "scans/high/sigma_T": result.sigmas[1]})
    view, (ok, text) = open_saved(qtbot, path, "old_joint")
    assert ok, text
    assert "quadrupole model; scans low, high, computed on cpu" in text
    assert_table_is_the_csv(view, tmp_path / "old.csv")
    assert "higher_order_resolved" in view.proxy.sourceModel().names
    assert view.result.sigmas == result.sigmas


@pytest.mark.parametrize(("damage", "words"), [
    (None, "is of kind 'scan', not an MMT result"),
    ("del scan_mmt/grains/mx", "has no column mx_A_per_m"),
    ("del scan_mmt/results/covariance", "'covariance' is missing"),
    ("shape scan_mmt/fitted/Bz", "'fitted/Bz' has shape (2, 2)"),
    ("units scan_mmt/grains/ssr", "column 'ssr' has units 'furlong'"),
])
def test_a_damaged_or_foreign_entry_gives_a_message_and_changes_nothing(
        qtbot, cuboid_session, damage, words):
    path, _grains, _out = cuboid_session
    entry = "scan" if damage is None else "scan_mmt"
    if damage is not None:
        how, where = damage.split()
        with h5py.File(path, "a") as f:
            if how in ("del", "shape"):
                del f[where]
            if how == "shape":
                f[where] = np.zeros((2, 2))
            if how == "units":
                f[where].attrs["units"] = "furlong"
    before = path.read_bytes()
    view, (ok, text) = open_saved(qtbot, path, entry)
    assert not ok and text.startswith("Saved result not shown: ")
    assert words in text and f"entry '{entry}'" in text, text
    assert "Traceback" not in text and view.result is None
    assert path.read_bytes() == before


def test_the_result_is_read_in_the_background_worker_and_the_window_stays_live(
        qtbot, cuboid_session, monkeypatch):
    """A 4,300-grain result takes seconds to read: it is read in the tab's load worker while
    the GUI thread goes on, and shown once read."""
    from PyQt6 import QtCore

    from smm_daq.analysis.mmt import result_read

    path, _grains, out = cuboid_session
    held = Held(result_read.read_result_entry)
    monkeypatch.setattr(result_read, "read_result_entry", held)
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.set_file(path)
    ticks: list[int] = []
    timer = QtCore.QTimer(view)
    timer.timeout.connect(lambda: ticks.append(1))
    with qtbot.waitSignal(view.loadEnded, timeout=WAIT_MS) as ended:
        assert view.load_result(path, "scan_mmt")
        held.wait_entered()
        assert view.load_worker.pending == 1 and "Reading the saved result" in \
            view.status.text()
        timer.start(0)
        qtbot.waitUntil(lambda: len(ticks) >= 3, timeout=WAIT_MS)  # the event loop runs
        timer.stop()
        assert view.result is None
        held.go.set()
    assert ended.args[0]
    readers = held.threads
    assert readers == [readers[0]] and readers[0] is not threading.main_thread()
    assert readers[0].name.startswith("smm-gui-mmt-load")
    assert_table_is_the_csv(view, out)


def test_the_session_tab_shows_a_saved_result_in_the_mmt_tab(qtbot, cuboid_session, settings):
    from gui.main_window import MainWindow

    path, _grains, out = cuboid_session
    window = MainWindow(load_profile(), settings, persist=False)
    qtbot.addWidget(window)
    assert opened(window.session, qtbot, path)
    qtbot.waitUntil(lambda: window.session.table.rowCount() == 2, timeout=WAIT_MS)
    session = window.session
    names = [session.table.item(r, 0).text() for r in range(session.table.rowCount())]
    session.table.selectRow(names.index("scan"))
    assert not session.mmt_button.isEnabled()  # a scan is not an MMT result
    session.table.selectRow(names.index("scan_mmt"))
    assert session.mmt_button.isEnabled()
    saved = window.mmt.saved_entry
    assert [saved.itemText(i) for i in range(saved.count())] == ["scan_mmt"]
    with qtbot.waitSignal(window.mmt.loadEnded, timeout=WAIT_MS) as ended:
        session.mmt_button.click()
    assert ended.args[0], ended.args[1]
    assert window.tabs.currentWidget() is window.mmt
    assert_table_is_the_csv(window.mmt, out)
    window.mmt.status.clear()
    with qtbot.waitSignal(window.mmt.loadEnded, timeout=WAIT_MS) as ended:
        window.mmt.show_saved_button.click()  # the tab's own list of saved results
    assert ended.args[0] and "Saved result 'scan_mmt'" in window.mmt.status.text()


def test_a_saved_inversion_records_its_entry_as_bash_reads_it_back():
    """An entry named with a newline (or beginning with '-') stays one word on one line of
    the recorded command, as bash reads it back, not split or taken as an option."""
    from gui.mmt_view import saved_command

    assert saved_command("smm-daq mmt invert f.h5", "-a\nb") == (
        "smm-daq mmt invert f.h5 $'--out=-a\\nb.csv' $'--result-entry=-a\\nb'")
