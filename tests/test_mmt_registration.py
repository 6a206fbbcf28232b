"""`mmt invert --grains-shift-um / --grains-rotation-deg / --grains-rotation-origin-um`: a
grain file in another frame than the scan's (a micro-CT's), brought into the scan's before the
inversion; synthetic samples whose grain file is given shifted and turned are recovered."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main

SHIFT_UM = (7.0, -4.0, 1.5)  # the CT frame to the scan's, after the turn
ORIGIN_UM = (3.0, 5.0)


def _rows(path: Path) -> dict[int, dict[str, float]]:
    with open(path) as f:
        return {int(r["grain"]): {k: float(v) for k, v in r.items()} for r in csv.DictReader(f)}


def _to_ct(x: np.ndarray, y: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Scan-frame (x, y) in µm as the CT frame has them: the registration undone."""
    t = math.radians(-degrees)
    u, v = x - ORIGIN_UM[0] - SHIFT_UM[0], y - ORIGIN_UM[1] - SHIFT_UM[1]
    return (ORIGIN_UM[0] + math.cos(t) * u - math.sin(t) * v,
            ORIGIN_UM[1] + math.sin(t) * u + math.cos(t) * v)


def _synth(tmp_path: Path, model: str) -> tuple[Path, Path, Path]:
    h5, grains, truth = tmp_path / "s.h5", tmp_path / "g", tmp_path / "t.csv"
    assert main(["mmt", "synth", "--model", model, "--out", str(h5), "--name", "scan",
                 "--grains-out", str(grains), "--truth-out", str(truth), "--size-um", "30,30",
                 "--thickness-um", "10", "--density-per-mm3", "2e5", "--height-um", "2",
                 "--step-um", "1", "--noise-nT", "5", "--seed", "4"]) == 0
    return h5, grains, truth


def _check_recovered(out: Path, truth: Path) -> None:
    true = _rows(truth)
    got = _rows(out)
    assert set(got) == set(true)
    for label, r in got.items():
        t = true[label]
        for c in ("x_um", "y_um", "z_um"):
            assert r[c] == pytest.approx(t[c], abs=1e-6), (label, c)
        for c in ("mx", "my", "mz"):
            assert abs(r[f"{c}_A_per_m"] - t[f"{c}_A_per_m"]) < 5 * r[f"sd_{c}_A_per_m"]


def _options(degrees: float) -> list[str]:
    return ["--grains-shift-um", ",".join(f"{v:g}" for v in SHIFT_UM),
            "--grains-rotation-deg", f"{degrees:g}",
            "--grains-rotation-origin-um", ",".join(f"{v:g}" for v in ORIGIN_UM)]


def test_point_grains_in_a_turned_and_shifted_frame_are_recovered(tmp_path):
    h5, grains, truth = _synth(tmp_path, "dipole")
    scan = np.loadtxt(grains, ndmin=2)  # x y z volume label, m
    x, y = _to_ct(scan[:, 0] / 1e-6, scan[:, 1] / 1e-6, 30.0)
    ct = scan.copy()
    ct[:, 0], ct[:, 1], ct[:, 2] = x * 1e-6, y * 1e-6, scan[:, 2] - SHIFT_UM[2] * 1e-6
    ct_file = tmp_path / "ct.txt"
    np.savetxt(ct_file, ct)
    out = tmp_path / "r.csv"
    assert main(["mmt", "invert", str(h5), "--entry", "scan", "--grain-format", "points",
                 "--grains", str(ct_file), "--sigma-nT", "5", "--out", str(out),
                 *_options(30.0)]) == 0
    _check_recovered(out, truth)
    with h5py.File(h5) as f:
        params = f["scan_mmt/process/parameters"]
        assert params["grains_shift"][()] == pytest.approx(np.array(SHIFT_UM) * 1e-6)
        assert params["grains_rotation"][()] == 30.0
        assert params["grains_rotation"].attrs["units"] == "degree"
        assert params["grains_rotation_origin"][()] == pytest.approx(np.array(ORIGIN_UM) * 1e-6)


def test_cuboid_grains_turned_a_quarter_and_shifted_are_recovered(tmp_path, capsys):
    h5, grains, truth = _synth(tmp_path, "cuboid")
    with open(grains) as f:
        rows = list(csv.DictReader(f))
    x, y = _to_ct(np.array([float(r["x_um"]) for r in rows]),
                  np.array([float(r["y_um"]) for r in rows]), 90.0)
    ct_file = tmp_path / "ct.csv"
    with open(ct_file, "w") as f:
        f.write("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n")
        for r, xi, yi in zip(rows, x, y, strict=True):
            z = float(r["z_um"]) - SHIFT_UM[2]
            f.write(f"{r['grain']},{float(xi)!r},{float(yi)!r},{z!r},"
                    f"{r['dy_um']},{r['dx_um']},{r['dz_um']}\n")  # a quarter turn swaps them
    out = tmp_path / "r.csv"
    assert main(["mmt", "invert", str(h5), "--entry", "scan", "--grains", str(ct_file),
                 "--sigma-nT", "5", "--out", str(out), *_options(90.0)]) == 0
    _check_recovered(out, truth)
    # another angle cannot keep cuboids axis-aligned: refused, nothing written
    before = h5.read_bytes()
    capsys.readouterr()
    assert main(["mmt", "invert", str(h5), "--entry", "scan", "--grains", str(ct_file),
                 "--out", str(tmp_path / "r2.csv"), "--result-entry", "r2",
                 *_options(30.0)]) == 2
    assert "--grains-rotation-deg is 30 with cuboid grains" in capsys.readouterr().err
    assert h5.read_bytes() == before and not (tmp_path / "r2.csv").exists()


def test_registration_options_are_checked(tmp_path, capsys):
    h5, grains, _ = _synth(tmp_path, "dipole")
    base = ["mmt", "invert", str(h5), "--entry", "scan", "--grain-format", "points",
            "--grains", str(grains), "--out", str(tmp_path / "r.csv")]
    for more, said in ((["--grains-shift-um", "1"], "--grains-shift-um is '1'; expected 2 "),
                       (["--grains-rotation-origin-um", "1,2"], "without --grains-rotation-deg"),
                       (["--grains-rotation-deg", "nan"], "--grains-rotation-deg is nan")):
        capsys.readouterr()
        assert main([*base, *more]) == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_cuboid_grains_inverted_as_points_take_any_angle(tmp_path):
    """A point model sees a cuboid grain's centroid alone: any turn is taken, about the
    origin given, and the table's centroids are the turned ones."""
    data = Path(__file__).parent / "data"
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(data / "MetaDict_mpe_demo.json"),
                 str(data / "MagneticSample_mpe_demo.npz"), "--out", str(h5),
                 "--name", "qdm"]) == 0
    grains = tmp_path / "g.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n"
                      "1,5,4,-3,1,1,1\n2,14,10,-4,1,1,1\n3,9,12,-6,1,1,1\n")
    out = tmp_path / "r.csv"
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grains", str(grains),
                 "--model", "dipole", "--grains-rotation-deg", "30",
                 "--grains-rotation-origin-um", "10,8", "--out", str(out)]) == 0
    t = math.radians(30)
    for label, (x, y) in {1: (5, 4), 2: (14, 10), 3: (9, 12)}.items():
        row = _rows(out)[label]
        u, v = x - 10, y - 8
        assert row["x_um"] == pytest.approx(10 + math.cos(t) * u - math.sin(t) * v)
        assert row["y_um"] == pytest.approx(8 + math.sin(t) * u + math.cos(t) * v)


def test_dragonfly_grains_are_registered_before_the_crop(tmp_path):
    """Components 1 mm off the scan in the CT's frame lie under it once shifted: the crop,
    after the registration, keeps them (before it, it would have kept none)."""
    data = Path(__file__).parent / "data"
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(data / "MetaDict_mpe_demo.json"),
                 str(data / "MagneticSample_mpe_demo.npz"), "--out", str(h5),
                 "--name", "qdm"]) == 0
    demo = np.load(data / "MagneticSample_mpe_demo.npz")
    export = tmp_path / "components.csv"
    lines = ["Label Index;Voxel count;Volume (µm³);Center Of Mass X (µm);Center Of Mass Y (µm);"
             "Center Of Mass Z (µm)"]
    for label, (p, v) in enumerate(zip(demo["particle_positions"], demo["volumes"],
                                       strict=True), start=1):
        lines.append(f"{label};10;{v / 1e-18:g};{p[0] / 1e-6 - 1000:g};{p[1] / 1e-6:g};"
                     f"{p[2] / 1e-6:g}")
    export.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "r.csv"
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "dragonfly",
                 "--grains", str(export), "--z-top-um", "0", "--crop-to-scan",
                 "--sigma-nT", "1", "--grains-shift-um", "1000,0", "--out", str(out)]) == 0
    rows = _rows(out)
    assert sorted(rows) == [1, 2, 3]
    assert rows[1]["x_um"] == pytest.approx(5.0) and rows[1]["z_um"] == pytest.approx(-3.0)
    with h5py.File(h5) as f:
        params = f["qdm_mmt/process/parameters"]
        assert params["crop_to_scan"][()] == 1 and params["min_voxels"][()] == 1
        assert params["grains_shift"][()] == pytest.approx([1e-3, 0, 0])


def test_registration_by_hand_turns_counter_clockwise_about_the_origin_then_shifts():
    """Worked by hand: (2, 1) µm turned 90° about (1, 1) is (1, 2) (counter-clockwise seen
    from above, z up: +x goes to +y), then shifted by (10, 0, -1) is (11, 2); at 30° about
    (0, 0), (1, 0) goes to (cos 30°, sin 30°). A cuboid 4 × 2 µm (x × y) turned a quarter is
    2 × 4, its centre turned like a point."""
    from smm_daq.analysis.grains import GrainSet
    from smm_daq.analysis.mmt.models.multipole import PointGrains
    from smm_daq.analysis.mmt.registration import GrainRegistration, register_grains

    um = 1e-6
    quarter = GrainRegistration((10 * um, 0.0, -1 * um), 90.0, (1 * um, 1 * um))
    points = PointGrains(np.array([[2 * um, 1 * um, -3 * um]]), np.array([1e-18]),
                         np.array([1]))
    moved = register_grains(points, quarter)
    assert moved.positions[0] / um == pytest.approx([11.0, 2.0, -4.0])
    turned = register_grains(points, GrainRegistration(rotation_deg=30.0, origin=(um, um)))
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    assert turned.positions[0] / um == pytest.approx([1 + c, 1 + s, -3.0])
    cuboids = GrainSet(np.array([[2 * um, 1 * um, -3 * um, 4 * um, 2 * um, 1 * um]]),
                       np.array([0]), np.array([1]))
    for degrees, centre in ((90.0, (11.0, 2.0)), (-90.0, (11.0, 0.0)), (270.0, (11.0, 0.0)),
                            (180.0, (10.0, 1.0))):
        box = register_grains(cuboids, GrainRegistration((10 * um, 0.0, -1 * um), degrees,
                                                         (1 * um, 1 * um)))
        edges = (2.0, 4.0) if degrees % 180 else (4.0, 2.0)
        assert box.cuboids[0] / um == pytest.approx([*centre, -4.0, *edges, 1.0]), degrees


def test_a_z_shift_lifting_point_grains_above_the_top_is_refused_naming_it():
    """Cuboid grains lifted above the top are refused; point grains too, naming the shift and
    the grain lifted highest; a grain the file itself puts above the top is left to the
    inversion's warning, and a shift that keeps every grain below passes."""
    from smm_daq.analysis.mmt.models.multipole import PointGrains
    from smm_daq.analysis.mmt.registration import GrainRegistration, register_grains
    from smm_daq.errors import InputError

    um = 1e-6
    points = PointGrains(np.array([[1 * um, 1 * um, -3 * um], [2 * um, 2 * um, -1 * um],
                                   [3 * um, 3 * um, -1.5 * um]]),
                         np.full(3, 1e-18), np.array([4, 5, 6]), "p.txt",
                         np.array([2, 3, 4]))
    with pytest.raises(InputError, match=r"^p\.txt, line 3: 2 of 3 point grains lie above the "
                       r"sample top once registered \(--grains-shift-um 1,0,2\), e\.g\. grain "
                       r"5 from z = -1 µm to 1 µm; expected every grain at or below the top"):
        register_grains(points, GrainRegistration((um, 0.0, 2 * um)))
    assert register_grains(points, GrainRegistration((0.0, 0.0, um))).positions[1, 2] == 0.0
    above = PointGrains(np.array([[1 * um, 1 * um, 2 * um]]), np.array([1e-18]),
                        np.array([1]))
    assert register_grains(above, GrainRegistration((um, 0.0, 0.0))).positions[0, 2] == 2 * um


def test_a_registration_beyond_the_readers_limits_is_refused_naming_it():
    """The readers take cuboid grains within ±1 m and point grains within ±1 km; a shift or a
    turn about a far origin that moves a grain beyond is refused, naming the registration."""
    from smm_daq.analysis.grains import GrainSet
    from smm_daq.analysis.mmt.models.multipole import PointGrains
    from smm_daq.analysis.mmt.registration import GrainRegistration, register_grains
    from smm_daq.errors import InputError

    um = 1e-6
    cuboids = GrainSet(np.array([[0.9, 0.0, -3 * um, um, um, um]]), np.array([0]),
                       np.array([7]), source="c.csv")
    with pytest.raises(InputError, match=r"^c\.csv: grain 7 lands at \(1\.4e\+06, 0, -3\) µm "
                       r"once registered \(--grains-shift-um 500000,0,0\); expected every "
                       r"grain within ±1 m"):
        register_grains(cuboids, GrainRegistration((0.5, 0.0, 0.0)))
    points = PointGrains(np.array([[999.0, 999.0, -um]]), np.array([1e-18]), np.array([3]))
    with pytest.raises(InputError, match=r"grain 3 lands at .* once registered "
                       r"\(--grains-rotation-deg 45 about \(0, 0\) µm\); expected every grain "
                       r"within ±1000 m"):
        register_grains(points, GrainRegistration(rotation_deg=45.0))


def test_the_command_line_refuses_a_lift_above_the_top_writing_nothing(tmp_path, capsys):
    data = Path(__file__).parent / "data"
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(data / "MetaDict_mpe_demo.json"),
                 str(data / "MagneticSample_mpe_demo.npz"), "--out", str(h5),
                 "--name", "qdm"]) == 0
    grains = tmp_path / "g.txt"
    np.savetxt(grains, [[5e-6, 4e-6, -3e-6, 1e-18, 1], [14e-6, 10e-6, -4e-6, 1e-18, 2]])
    before = h5.read_bytes()
    out = tmp_path / "r.csv"
    capsys.readouterr()
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "points",
                 "--grains", str(grains), "--grains-shift-um", "0,0,3.5",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--grains-shift-um 0,0,3.5" in err and "grain 1 from z = -3 µm to 0.5 µm" in err, err
    assert h5.read_bytes() == before and not out.exists()
