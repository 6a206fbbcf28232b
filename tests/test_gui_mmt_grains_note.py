"""The MMT tab says, under its table, which grains of the grain file it left out (min voxels,
the crop to the scan) and which the map does not determine, as `mmt invert` says them; a
result without such grains has no note."""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import numpy as np
from test_mmt_export import NPZ

from gui.mmt_view import MMTView, grains_note
from smm_daq.analysis.mmt.solver import misfit, stats
from smm_daq.cli.main import main
from smm_daq.instruments.profile import load_profile

DATA = Path(__file__).parent / "data"
WAIT_MS = 120_000
# Dragonfly's components of the demo sample's particles (CT z up, top at 100 µm): a 3-voxel
# speck (4), a grain 5 mm beyond the scan (5) and one at grain 2's place (6)
HEADER = ("Label Index;Voxel count;Volume (mm³);Center Of Mass X (mm);Center Of Mass Y (mm);"
          "Center Of Mass Z (mm);\r\n")
KEPT = ("1;100;2.0E-09;0.005;0.004;0.097;\r\n2;200;4.0E-09;0.014;0.010;0.096;\r\n"
        "3;300;6.0E-09;0.009;0.012;0.094;\r\n")
OTHERS = ("4;3;6.0E-11;0.010;0.010;0.099;\r\n5;50;1.0E-09;5.000;0.010;0.090;\r\n"
          "6;200;4.0E-09;0.014;0.010;0.096;\r\n")


def _run(qtbot, view: MMTView, export: Path) -> None:
    view.set_grain_file(export, "dragonfly")
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]


def _view(qtbot, tmp_path: Path) -> MMTView:
    """The tab on the demo scan imported as 'qdm', σ 1 nT, the CT's top at 100 µm."""
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(DATA / "MetaDict_mpe_demo.json"),
                 str(DATA / "MagneticSample_mpe_demo.npz"), "--out", str(h5), "--name",
                 "qdm"]) == 0
    view = MMTView(load_profile())
    qtbot.addWidget(view)
    view.set_file(h5)
    view.entry.setCurrentText("qdm")
    view.sigma.setValue(0.001)  # 1 nT
    view.dragonfly.z_top.setValue(100.0)
    return view


def test_grains_left_out_and_unresolved_are_named_under_the_table(qtbot, tmp_path):
    export = tmp_path / "components.csv"
    export.write_bytes((HEADER + KEPT + OTHERS).encode("latin-1"))
    view = _view(qtbot, tmp_path)
    view.dragonfly.min_voxels.setValue(10)
    view.dragonfly.crop.setChecked(True)
    _run(qtbot, view, export)
    note = view.grains_note.text()
    assert (f"{export}: 4 of 6 grains inverted; left out 1 of fewer than 10 voxels "
            "(min voxels): grain 4; 1 whose field could not reach the scans above their "
            "noise (only grains under the scan): grain 5") in note, note
    assert ("2 grain(s) unresolved (infinite SDs, magnetization not determined): grain 2, 6"
            in note), note
    assert not view.grains_note.isHidden()
    clean = tmp_path / "clean.csv"
    clean.write_bytes((HEADER + KEPT).encode("latin-1"))
    _run(qtbot, view, clean)
    assert view.grains_note.text() == "" and view.grains_note.isHidden()


def test_grains_beyond_saturation_are_named_under_the_table(qtbot, tmp_path):
    """Grain 1 at a hundredth of its volume: about 1,350 kA/m, beyond magnetite's 480."""
    export = tmp_path / "components.csv"
    export.write_bytes((HEADER + KEPT.replace("1;100;2.0E-09", "1;100;2.0E-11"))
                       .encode("latin-1"))
    view = _view(qtbot, tmp_path)
    _run(qtbot, view, export)
    note = view.grains_note.text()
    assert note.startswith("1 grain(s) magnetized beyond magnetite's saturation (480 kA/m), "
                           "up to 1.3"), note
    assert "kA/m (grain 1), 1 of them with uncertainty ratio < 10 %: " in note, note
    assert not view.grains_note.isHidden()


def test_the_crops_saturation_is_the_one_compared_and_the_tables_ratio_counted(
        qtbot, tmp_path, monkeypatch):
    """A saturation chosen for the crop (another mineral's) is the one a grain's
    magnetization is compared with; the note counts the ratios of the table, not computing
    them again on the GUI thread (seconds at thousands of grains)."""
    export = tmp_path / "components.csv"
    export.write_bytes((HEADER + KEPT.replace("1;100;2.0E-09", "1;100;2.0E-11"))
                       .encode("latin-1"))
    view = _view(qtbot, tmp_path)
    view.dragonfly.crop.setChecked(True)
    view.dragonfly.saturation.setValue(1000.0)  # grain 1 at about 1,350 kA/m
    _run(qtbot, view, export)
    assert view.grains_note.text().startswith(
        "1 grain(s) magnetized beyond the saturation magnetization chosen (1000 kA/m), up to "
        "1.3"), view.grains_note.text()

    def computed(*_args):
        raise AssertionError("the uncertainty ratio computed again on the GUI thread")

    monkeypatch.setattr(stats, "uncertainty_ratio_pct", computed)
    assert grains_note(view.result, view.made, view.table_columns) == view.grains_note.text()


def test_a_saved_results_crop_saturation_is_the_one_compared(qtbot, tmp_path):
    """Read back, the result's recorded crop saturation is compared with, as when fresh."""
    view = _view(qtbot, tmp_path)
    h5 = tmp_path / "s.h5"
    points = tmp_path / "points.txt"
    np.savetxt(points, np.c_[np.load(NPZ)["particle_positions"], [2e-20, 4e-20, 6e-18],
                             [1, 2, 3]], header="x y z volume label", comments="")
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "points",
                 "--grains", str(points), "--sigma-nT", "1", "--crop-to-scan",
                 "--crop-magnetization-kA-per-m", "1000", "--out", str(tmp_path / "r.csv")]) == 0
    with qtbot.waitSignal(view.loadEnded, timeout=WAIT_MS) as ended:
        assert view.load_result(h5, "qdm_mmt")
    assert ended.args[0], ended.args[1]
    assert view.grains_note.text().startswith(
        "1 grain(s) magnetized beyond the saturation magnetization chosen (1000 kA/m), up to "
        "1.3"), view.grains_note.text()


def test_a_grain_missing_from_the_file_is_said_to_limit_the_fit(qtbot, tmp_path):
    """Grain 3 of the demo sample left out of the components: the residual is many times the
    σ typed (1 nT), and the note says the fit is limited by the model, before the grains."""
    export = tmp_path / "components.csv"
    export.write_bytes((HEADER + "".join(KEPT.splitlines(keepends=True)[:2]))
                       .encode("latin-1"))
    view = _view(qtbot, tmp_path)
    _run(qtbot, view, export)
    note = view.grains_note.text()
    assert note.startswith("the residual is "), note
    assert ("× the noise (scan 'qdm': " in note and "nT against the noise given, 1 nT; "
            "reduced chi-square " in note), note
    # a dipole result: no higher-order test to name
    assert note.endswith("the fit is limited by the model, not the noise; the SDs assume noise "
                         "only (σ 0 (from the residual) scales the SDs by it; a misfit is no "
                         "white noise)"), note
    assert view.made["sd_from"] == "noise" and view.made["residual_over_noise"] > 1.5


def test_a_saved_results_misfit_is_against_the_noise_its_command_gave(qtbot, tmp_path):
    """`--sigma-nT 1 --sd-from residual`, read back: the residual set against the 1 nT given,
    as the command's summary and its `residual_over_noise` have it, not against a floor."""
    view = _view(qtbot, tmp_path)
    h5 = tmp_path / "s.h5"
    points = tmp_path / "points.txt"  # grain 3 left out of the grain file
    np.savetxt(points, np.c_[np.load(NPZ)["particle_positions"][:2], [2e-18, 4e-18], [1, 2]],
               header="x y z volume label", comments="")
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "points",
                 "--grains", str(points), "--sigma-nT", "1", "--sd-from", "residual",
                 "--out", str(tmp_path / "r.csv")]) == 0
    with h5py.File(h5) as f:
        recorded = float(f["qdm_mmt/process/parameters/residual_over_noise"][()])
    with qtbot.waitSignal(view.loadEnded, timeout=WAIT_MS) as ended:
        assert view.load_result(h5, "qdm_mmt")
    assert ended.args[0], ended.args[1]
    note = view.grains_note.text()
    assert note.startswith(f"the residual is {recorded:.3g} × the noise"), note
    assert "against the noise given, 1 nT" in note, note


def test_a_saved_results_note_is_made_off_the_gui_thread(qtbot, tmp_path, monkeypatch):
    """Read back, the note's work (the residual's floor over the map, each grain's checks:
    most of a second on a map of millions of pixels) is done in the worker that reads the
    result, not on the window's thread; the note is the one the command line's run makes."""
    view = _view(qtbot, tmp_path)
    h5 = tmp_path / "s.h5"
    points = tmp_path / "points.txt"  # grain 3 left out of the grain file: a misfit said
    np.savetxt(points, np.c_[np.load(NPZ)["particle_positions"][:2], [2e-18, 4e-18], [1, 2]],
               header="x y z volume label", comments="")
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "points",
                 "--grains", str(points), "--sigma-nT", "1", "--out",
                 str(tmp_path / "r.csv")]) == 0
    threads = []
    measured = misfit.residual_misfit

    def recorded(*args, **kwargs):
        threads.append(threading.current_thread())
        return measured(*args, **kwargs)

    monkeypatch.setattr(misfit, "residual_misfit", recorded)
    with qtbot.waitSignal(view.loadEnded, timeout=WAIT_MS) as ended:
        assert view.load_result(h5, "qdm_mmt")
    assert ended.args[0], ended.args[1]
    assert threads and threading.main_thread() not in threads, threads
    assert view.grains_note.text().startswith("the residual is "), view.grains_note.text()
    assert grains_note(view.result, view.made, view.table_columns) == view.grains_note.text()
