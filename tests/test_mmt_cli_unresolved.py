"""`mmt invert` names, on its summary line, the grains the map does not determine (infinite
SDs), as `info` counts them: the singular-Q warning only counts them, and their rows of the
table hold a pseudo-inverse's arbitrary magnetization."""

from __future__ import annotations

import csv
import re

import h5py
import numpy as np
from test_mmt_export import NPZ, _imported

from smm_daq.analysis.mmt.result_read import read_result_entry
from smm_daq.cli.main import main


def test_point_grains_at_one_place_are_named_unresolved(tmp_path, capsys):
    h5 = _imported(tmp_path)
    pos = np.load(NPZ)["particle_positions"]
    rows = np.c_[pos[[0, 1, 1]], [2e-18, 4e-18, 4e-18], [3, 7, 8]]  # 7 and 8 coincide
    grains = tmp_path / "points.txt"
    np.savetxt(grains, rows, header="x y z volume label", comments="")
    capsys.readouterr()
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "points",
                 "--grains", str(grains), "--sigma-nT", "1", "--out",
                 str(tmp_path / "r.csv")]) == 0
    out = capsys.readouterr().out
    assert "2 grain(s) unresolved (infinite SDs, magnetization not determined): grain 7, 8" \
        in out
    assert main(["info", str(h5)]) == 0
    assert "3 grains (dipole, 2 unresolved)" in capsys.readouterr().out


def test_cuboid_grains_at_one_place_are_named_unresolved(tmp_path, capsys):
    h5 = _imported(tmp_path)
    grains = tmp_path / "grains.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n"
                      "1,5,4,-3,2,2,2\n4,14,10,-4,2,2,2\n5,14,10,-4,2,2,2\n")
    capsys.readouterr()
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grains", str(grains),
                 "--sigma-nT", "1", "--out", str(tmp_path / "r.csv")]) == 0
    assert "2 grain(s) unresolved (infinite SDs, magnetization not determined): grain 4, 5" \
        in capsys.readouterr().out



def test_unresolved_grains_have_no_higher_order_p_value(tmp_path, capsys):
    """An unresolved grain's higher-order test is not available, its p-value as its χ²: NaN
    in the CSV ("nan", as χ²), the entry and as read back, never 1 ("no evidence of higher
    orders", which the map cannot say); a resolved grain keeps its p-value."""
    h5 = _imported(tmp_path)
    pos = np.load(NPZ)["particle_positions"]
    rows = np.c_[pos[[0, 1, 1]], [2e-18, 4e-18, 4e-18], [3, 7, 8]]
    grains = tmp_path / "points.txt"
    np.savetxt(grains, rows, header="x y z volume label", comments="")
    out = tmp_path / "r.csv"
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "points",
                 "--grains", str(grains), "--model", "quadrupole", "--sigma-nT", "1",
                 "--out", str(out), "--result-entry", "r"]) == 0
    with out.open(encoding="utf-8") as f:
        table = {int(r["grain"]): r for r in csv.DictReader(f)}
    for g in (7, 8):
        assert table[g]["higher_order_chi2"] == table[g]["higher_order_p"] == "nan", table[g]
        assert table[g]["higher_order_resolved"] == "0"
    assert 0.0 <= float(table[3]["higher_order_p"]) <= 1.0
    with h5py.File(h5, "r") as f:
        p = f["r/grains/higher_order_p"][()]
    assert np.isnan(p[1:]).all() and np.isfinite(p[0]), p
    chi2, p_read, resolved = read_result_entry(h5, "r").higher_orders()
    assert np.isnan(chi2[1:]).all() and np.isnan(p_read[1:]).all() and not resolved[1:].any()


def test_cuboid_and_point_summary_lines_have_one_shape(tmp_path, capsys):
    """The cuboid model's summary line names its model and scan count as the point models'
    does: the two lines differ only in their numbers and names."""
    h5 = _imported(tmp_path)
    cuboids = tmp_path / "grains.csv"
    cuboids.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,5,4,-3,2,2,2\n")
    points = tmp_path / "points.txt"
    pos = np.load(NPZ)["particle_positions"][:1]
    np.savetxt(points, np.c_[pos, [8e-18], [1]], header="x y z volume label", comments="")
    lines = []
    for given in (["--grains", str(cuboids)],
                  ["--grain-format", "points", "--grains", str(points)]):
        capsys.readouterr()
        assert main(["mmt", "invert", str(h5), "--entry", "qdm", *given, "--sigma-nT", "1",
                     "--out", str(tmp_path / "r.csv"), "--overwrite"]) == 0
        lines.append(capsys.readouterr().out.strip().splitlines()[-1])
    assert lines[0].startswith("1 grains (cuboid) from ") and " of 1 scan(s); sigma 1 nT; " \
        in lines[0], lines[0]
    shapes = [re.sub(r"\((cuboid|dipole)\)|[-+.\w']+", "#", line) for line in lines]
    assert shapes[0] == shapes[1], lines
