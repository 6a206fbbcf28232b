"""The MMT tab says, under its table, which grains of the grain file it left out (min voxels,
the crop to the scan) and which the map does not determine, as `mmt invert` says them; a
result without such grains has no note."""

from __future__ import annotations

from pathlib import Path

from gui.mmt_view import MMTView
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
