"""`mmt invert` says which of the grain file's grains it leaves out (Dragonfly's specks below
--min-voxels, grains whose field cannot reach the scans under --crop-to-scan): its summary
counts only the grains inverted, and the file's other labels were dropped without a word."""

from __future__ import annotations

import numpy as np
from test_mmt_export import NPZ, _imported

from smm_daq.cli.main import main

# Dragonfly's connected components of the demo sample's three particles (CT z up, the sample
# top at CT z 100 µm), a 3-voxel speck and a grain 5 mm beyond the scan: ';', latin-1, mm
DRAGONFLY = (
    "Label Index;Voxel count;Volume (mm³);Center Of Mass X (mm);Center Of Mass Y (mm);"
    "Center Of Mass Z (mm);\r\n"
    "1;100;2.0E-09;0.005;0.004;0.097;\r\n"
    "2;200;4.0E-09;0.014;0.010;0.096;\r\n"
    "3;300;6.0E-09;0.009;0.012;0.094;\r\n"
    "4;3;6.0E-11;0.010;0.010;0.099;\r\n"
    "5;50;1.0E-09;5.000;0.010;0.090;\r\n")


def test_components_left_out_are_named_with_their_reasons(tmp_path, capsys):
    h5 = _imported(tmp_path)
    export = tmp_path / "components.csv"
    export.write_bytes(DRAGONFLY.encode("latin-1"))
    base = ["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "dragonfly",
            "--grains", str(export), "--z-top-um", "100", "--sigma-nT", "1"]
    capsys.readouterr()
    assert main([*base, "--min-voxels", "10", "--crop-to-scan", "--out",
                 str(tmp_path / "r.csv")]) == 0
    run = capsys.readouterr()
    assert (f"{export}: 3 of 5 grains inverted; left out 1 of fewer than 10 voxels "
            "(--min-voxels): grain 4; 1 whose field could not reach the scans above their "
            "noise (--crop-to-scan): grain 5") in run.err
    assert run.out.startswith("3 grains (dipole)")
    # registered grains are cropped after the turn and shift: the same grains are left out
    assert main([*base, "--min-voxels", "10", "--crop-to-scan", "--grains-shift-um", "0,0,-1",
                 "--out", str(tmp_path / "s.csv"), "--result-entry", "shifted"]) == 0
    assert "3 of 5 grains inverted" in capsys.readouterr().err


def test_points_cropped_to_the_scan_are_named(tmp_path, capsys):
    h5 = _imported(tmp_path)
    pos = np.load(NPZ)["particle_positions"]
    rows = np.c_[np.r_[pos, [[5e-3, 1e-5, -1e-5]]], [2e-18, 4e-18, 6e-18, 1e-18], [1, 2, 3, 9]]
    grains = tmp_path / "points.txt"
    np.savetxt(grains, rows, header="x y z volume label", comments="")
    capsys.readouterr()
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "points",
                 "--grains", str(grains), "--sigma-nT", "1", "--crop-to-scan", "--out",
                 str(tmp_path / "r.csv")]) == 0
    assert (f"{grains}: 3 of 4 grains inverted; left out 1 whose field could not reach the "
            "scans above their noise (--crop-to-scan): grain 9") in capsys.readouterr().err


def test_a_refused_model_does_not_say_grains_were_inverted(tmp_path, capsys):
    """--model cuboid with Dragonfly's points is refused (exit 2): nothing is inverted, so
    stderr does not say "3 of 5 grains inverted" before the refusal."""
    h5 = _imported(tmp_path)
    export = tmp_path / "components.csv"
    export.write_bytes(DRAGONFLY.encode("latin-1"))
    capsys.readouterr()
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "dragonfly",
                 "--grains", str(export), "--z-top-um", "100", "--sigma-nT", "1",
                 "--min-voxels", "10", "--model", "cuboid",
                 "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "--model cuboid needs cuboid grains" in err and "inverted" not in err, err
    assert not (tmp_path / "r.csv").exists()
