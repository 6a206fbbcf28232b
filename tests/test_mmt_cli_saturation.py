"""`mmt invert`'s summary line names the grains magnetized beyond magnetite's saturation
(480 kA/m), and how many of them its uncertainty ratio < 10 % would select: no magnetite grain
carries such a magnetization, whatever the noise statistics say (the MMT tutorial's QDM scan
has such grains among its best resolved)."""

from __future__ import annotations

import numpy as np
from test_mmt_export import NPZ, _imported

from smm_daq.cli.main import main

SAID = "grain(s) magnetized beyond magnetite's saturation (480 kA/m)"


def _summary(tmp_path, capsys, given: list[str]) -> str:
    h5 = _imported(tmp_path)
    capsys.readouterr()
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", *given, "--sigma-nT", "1",
                 "--out", str(tmp_path / "r.csv")]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def _points(tmp_path, volumes_m3: list[float]):
    """The demo scan's three particles (moments about 3e-14 A m²) with these volumes."""
    grains = tmp_path / "points.txt"
    pos = np.load(NPZ)["particle_positions"]
    np.savetxt(grains, np.c_[pos, volumes_m3, [1, 2, 3]], header="x y z volume label",
               comments="")
    return ["--grain-format", "points", "--grains", str(grains)]


def test_grains_beyond_saturation_are_counted_and_the_strongest_named(tmp_path, capsys):
    # grains 1 and 2 at 1/100 of their volumes: about 1,350 and 940 kA/m; grain 3 at 6 kA/m
    line = _summary(tmp_path, capsys, _points(tmp_path, [2e-20, 4e-20, 6e-18]))
    assert f"; 3 grains with uncertainty ratio < 10 %; 2 {SAID}, up to 1.3" in line, line
    assert "kA/m (grain 1), 2 of them with uncertainty ratio < 10 %: " in line, line


def test_plausible_magnetizations_are_not_remarked(tmp_path, capsys):
    line = _summary(tmp_path, capsys, _points(tmp_path, [2e-18, 4e-18, 6e-18]))  # 6 to 14 kA/m
    assert "saturation" not in line, line


def test_cuboid_grains_beyond_saturation_are_named(tmp_path, capsys):
    grains = tmp_path / "grains.csv"  # the demo's particles as 0.2 µm cubes: about 10⁶ kA/m
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n"
                      "1,5,4,-3,.2,.2,.2\n2,14,10,-4,.2,.2,.2\n3,9,12,-6,.2,.2,.2\n")
    line = _summary(tmp_path, capsys, ["--grains", str(grains)])
    assert line.startswith("3 grains (cuboid)") and f"; 3 {SAID}, up to " in line, line


def test_the_saturation_chosen_for_the_crop_is_the_one_compared(tmp_path, capsys):
    """--crop-magnetization-kA-per-m says the sample's mineral: a grain under its saturation
    is not remarked on, one beyond it is, against that value, not magnetite's."""
    given = [*_points(tmp_path, [2e-20, 4e-20, 6e-18]), "--crop-to-scan",
             "--crop-magnetization-kA-per-m", "1000"]  # grains at about 1,350 and 940 kA/m
    line = _summary(tmp_path, capsys, given)
    assert ("; 1 grain(s) magnetized beyond the saturation magnetization chosen (1000 kA/m), "
            "up to 1.3") in line, line
    assert ("kA/m (grain 1), 1 of them with uncertainty ratio < 10 %: more than any grain of "
            "that mineral carries") in line, line
    assert "magnetite" not in line, line


def test_the_uncertainty_ratio_is_the_tables_not_computed_again(tmp_path, capsys,
                                                                 monkeypatch):
    """The note counts the grains of the table's uncertainty-ratio column: computed once per
    run (seconds at thousands of grains)."""
    from smm_daq.analysis.mmt.solver import stats

    calls: list[int] = []
    real = stats.uncertainty_ratio_pct

    def counted(m, cov):
        calls.append(len(m))
        return real(m, cov)

    monkeypatch.setattr(stats, "uncertainty_ratio_pct", counted)
    line = _summary(tmp_path, capsys, _points(tmp_path, [2e-20, 4e-20, 6e-18]))
    assert "2 of them with uncertainty ratio < 10 %" in line, line
    assert calls == [3], calls


def test_a_table_without_ratios_has_them_computed_for_the_grains_beyond():
    """A saved table need not hold the uncertainty-ratio column (another program's): the
    ratios of the grains beyond saturation are then computed from M and its covariance."""
    from smm_daq.cli.mmt_models import beyond_saturation_note

    m = np.array([[6e5, 0.0, 0.0], [1e3, 0.0, 0.0], [0.0, 9e5, 0.0]])
    cov = np.array([np.eye(3) * 1e6, np.eye(3) * 1e6, np.eye(3) * 1e12])  # SDs 1, 1, 1000 kA/m
    note = beyond_saturation_note(np.array([4, 5, 6]), m, cov, None)
    assert note.startswith("; 2 grain(s) magnetized beyond magnetite's saturation (480 kA/m), "
                           "up to 900 kA/m (grain 6), 1 of them with uncertainty ratio < 10 %: "
                           ), note
