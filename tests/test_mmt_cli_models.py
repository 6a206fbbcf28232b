"""`smm-daq import mpe`, and `smm-daq mmt invert | synth` with point grains, multipole models,
joint inversions and masks, end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.analysis.mmt.solver import device as devices
from smm_daq.cli.main import main

DATA = Path(__file__).parent / "data"
JSON = DATA / "MetaDict_mpe_demo.json"
NPZ = DATA / "MagneticSample_mpe_demo.npz"
HEADERS = ["grain", "mx_A_per_m", "my_A_per_m", "mz_A_per_m", "sd_mx_A_per_m", "sd_my_A_per_m",
           "sd_mz_A_per_m", "moment_Am2", "volume_um3", "depth_um", "ssr_per_um",
           "uncertainty_ratio_pct"]


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def imported(tmp_path, *names):
    h5 = tmp_path / "s.h5"
    for name in names:
        assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(h5),
                     "--name", name]) == 0
    return h5


def test_import_mpe_and_invert_the_particles(tmp_path):
    h5 = imported(tmp_path, "qdm")
    out, lib = tmp_path / "r.csv", tmp_path / "InvMag.npz"
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "mpe",
                 "--grains", str(NPZ), "--out", str(out), "--library-out", str(lib)]) == 0
    with open(out) as f:
        assert next(csv.reader(f))[:len(HEADERS)] == HEADERS
    rows = read_csv(out)
    truth = np.load(NPZ)["dipole_moments"]
    got = np.load(lib)
    sd = got["moments_std"][:, :3]
    assert np.all(np.abs(got["inv_multipole_moments"] - truth) < 5 * sd)
    vol = np.load(NPZ)["volumes"]
    assert np.isclose(float(rows[0]["mx_A_per_m"]) * vol[0], got["inv_multipole_moments"][0, 0],
                      rtol=1e-8)
    with h5py.File(h5) as f:
        assert f["qdm_mmt/results/model"][()].decode() == "dipole"
        assert f["qdm_mmt/results/coefficients"].shape == (3, 3)
        assert f["qdm_mmt/results/coefficients"].attrs["units"] == "A/m"
        assert f["qdm_mmt/results/coefficient_covariance"].attrs["units"] == "A2/m2"


def test_repeated_scans_inverted_jointly_halve_the_variance(tmp_path):
    h5 = imported(tmp_path, "a", "b")
    one, two = tmp_path / "1.csv", tmp_path / "2.csv"
    common = ["--grain-format", "points", "--grains", str(DATA / "grains_points.txt"),
              "--sigma-nT", "1"]
    assert main(["mmt", "invert", str(h5), "--entry", "a", *common, "--out", str(one)]) == 0
    assert main(["mmt", "invert", str(h5), "--entry", "a", "--entry", "b", *common,
                 "--out", str(two), "--result-entry", "ab"]) == 0
    for r1, r2 in zip(read_csv(one), read_csv(two), strict=True):
        assert np.isclose(float(r2["sd_mx_A_per_m"]), float(r1["sd_mx_A_per_m"]) / np.sqrt(2))
        assert np.isclose(float(r2["mx_A_per_m"]), float(r1["mx_A_per_m"]))
    with h5py.File(h5) as f:
        assert f["ab/results/scans"][()].decode() == "a,b"
        assert f["ab/scans/b/sigma"][()] == 1e-9
        assert f["ab/scans/b/sigma"].attrs["units"] == "T"


def test_mask_is_honoured_and_stored(tmp_path):
    h5 = imported(tmp_path, "qdm")
    mask = np.zeros((16, 20), bool)
    mask[:, :4] = True
    np.save(tmp_path / "m.npy", mask)
    out = tmp_path / "r.csv"
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "mpe",
                 "--grains", str(NPZ), "--mask", str(tmp_path / "m.npy"),
                 "--out", str(out)]) == 0
    with h5py.File(h5) as f:
        assert f["qdm_mmt/results/n_sensors"][()] == 16 * 16
        assert np.array_equal(f["qdm_mmt/scans/qdm/mask"][()].astype(bool), mask)
        assert np.all(np.isnan(f["qdm_mmt/data/Bz"][()][:, :4]))


def test_mask_none_leaves_one_scan_of_a_joint_inversion_unmasked(tmp_path):
    h5 = imported(tmp_path, "a", "b")
    mask = np.zeros((16, 20), bool)
    mask[:, :4] = True
    np.save(tmp_path / "m.npy", mask)
    assert main(["mmt", "invert", str(h5), "--entry", "a", "--entry", "b", "--grain-format",
                 "mpe", "--grains", str(NPZ), "--mask", "none", "--mask",
                 str(tmp_path / "m.npy"), "--out", str(tmp_path / "r.csv")]) == 0
    with h5py.File(h5) as f:
        assert f["a_mmt/results/n_sensors"][()] == 16 * 20 + 16 * 16
        assert "mask" not in f["a_mmt/scans/a"]
        assert np.array_equal(f["a_mmt/scans/b/mask"][()].astype(bool), mask)


def test_synth_multipole_sample_and_invert_it(tmp_path, capsys):
    h5, grains, truth, out = (tmp_path / n for n in ("s.h5", "g.txt", "t.csv", "r.csv"))
    assert main(["mmt", "synth", "--model", "quadrupole", "--out", str(h5), "--name", "scan",
                 "--grains-out", str(grains), "--truth-out", str(truth), "--size-um", "30,30",
                 "--thickness-um", "10", "--density-per-mm3", "2e5", "--height-um", "2",
                 "--step-um", "1", "--noise-nT", "5", "--seed", "4"]) == 0
    assert main(["mmt", "invert", str(h5), "--entry", "scan", "--grain-format", "points",
                 "--grains", str(grains), "--model", "quadrupole", "--sigma-nT", "5",
                 "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "resolved higher orders" in said
    rows = read_csv(out)
    good = sum(float(r["uncertainty_ratio_pct"]) < 10 for r in rows)
    assert f"; {good} grains with uncertainty ratio < 10 %" in said
    true = {r["grain"]: r for r in read_csv(truth)}
    assert "q22s_Am3" in rows[0] and "higher_order_p" in rows[0]
    for r in rows:
        t = true[r["grain"]]
        for c in ("mx_A_per_m", "q20_Am3", "q22s_Am3"):
            assert abs(float(r[c]) - float(t[c])) < 5 * float(r[f"sd_{c}"])


def test_bad_input_exits_2(tmp_path, capsys, monkeypatch):
    h5 = imported(tmp_path, "qdm")
    base = ["mmt", "invert", str(h5), "--entry", "qdm", "--out", str(tmp_path / "r.csv")]
    pts = ["--grain-format", "points", "--grains", str(DATA / "grains_points.txt")]
    assert main([*base, *pts, "--model", "cuboid"]) == 2
    assert "--model cuboid needs cuboid grains" in capsys.readouterr().err
    monkeypatch.setattr(devices, "gpu_problem", lambda: "CuPy finds no CUDA device")
    assert main([*base, *pts, "--device", "gpu"]) == 2
    assert "device 'gpu' asked for, but CuPy finds no CUDA device" in capsys.readouterr().err
    np.save(tmp_path / "m.npy", np.zeros((3, 3), bool))
    assert main([*base, *pts, "--mask", str(tmp_path / "m.npy")]) == 2
    assert "m.npy: holds an array of shape (3, 3)" in capsys.readouterr().err
    bad = tmp_path / "p.json"
    bad.write_text('{"Scan height Hz": 2e-06,\n  "Scan x-step Sdx" 1e-06}')
    assert main(["import", "mpe", str(bad), str(NPZ), "--out", str(h5), "--name", "x"]) == 2
    assert "p.json, line 2, column 21" in capsys.readouterr().err
    assert main(["import", "mpe", str(NPZ), str(JSON), "--out", str(h5), "--name", "x"]) == 2
    err = capsys.readouterr().err  # the two swapped: said so, not "is not UTF-8 text"
    assert (f"{NPZ}: is an NPZ (zip) archive, not the library's JSON of scan parameters; "
            "expected the JSON metadata first") in err and "UTF-8" not in err
    pts_bad = tmp_path / "g.txt"
    pts_bad.write_text("1e-6 2e-6 -3e-6 1e-18 1\n1e-6 2e-6 -3e-6 x 2\n")
    assert main([*base, "--grain-format", "points", "--grains", str(pts_bad)]) == 2
    assert "g.txt, line 2, column 17: volume is 'x'" in capsys.readouterr().err
    cub = tmp_path / "c.csv"
    cub.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,5,4,-3,2,2,2\n")
    assert main([*base, "--grains", str(cub), "--library-out", str(tmp_path / "l.npz")]) == 2
    assert "--library-out is for point models" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()
    with h5py.File(h5) as f:
        assert "qdm_mmt" not in f and "x" not in f


def test_outputs_that_would_destroy_an_input_or_each_other_are_refused(tmp_path, capsys):
    h5 = imported(tmp_path, "qdm")
    grains = tmp_path / "g.txt"
    grains.write_bytes((DATA / "grains_points.txt").read_bytes())
    before = grains.read_bytes()
    base = ["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "points",
            "--grains", str(grains), "--overwrite"]
    assert main([*base, "--out", str(grains)]) == 2
    assert f"--out is {str(grains)!r}, the file --grains reads" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "r.csv"), "--library-out", str(grains)]) == 2
    assert "--library-out" in capsys.readouterr().err
    same = str(tmp_path / "both.npz")
    assert main([*base, "--out", same, "--library-out", same]) == 2
    assert "--library-out and --out both name" in capsys.readouterr().err
    assert grains.read_bytes() == before
    assert not (tmp_path / "r.csv").exists() and not Path(same).exists()


def test_dragonfly_options_with_another_format_are_refused(tmp_path, capsys):
    h5 = imported(tmp_path, "qdm")
    base = ["mmt", "invert", str(h5), "--entry", "qdm", "--grains",
            str(DATA / "grains_points.txt"), "--out", str(tmp_path / "r.csv")]
    assert main([*base, "--grain-format", "points", "--min-voxels", "3", "--crop-to-scan"]) == 2
    err = capsys.readouterr().err
    assert "--min-voxels given with --grain-format points" in err  # --crop-to-scan crops points
    assert "only with --grain-format dragonfly" in err
    assert main([*base, "--grain-format", "dragonfly", "--z-top-um", "nan"]) == 2
    assert "--z-top-um is nan; expected a finite number" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_a_volume_sensor_entry_is_not_silently_read_as_an_area_by_the_cuboid_model(
        tmp_path, capsys):
    import json

    meta = json.loads(JSON.read_text())
    meta["Sensor dimensions"] = [0.25e-6, 0.25e-6, 0.5e-6]  # half-lengths: 1 µm thick
    params = tmp_path / "vol.json"
    params.write_text(json.dumps(meta))
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(params), str(NPZ), "--out", str(h5), "--name", "vol"]) == 0
    with h5py.File(h5) as f:
        assert f["vol/instrument/sensor/thickness"].attrs["units"] == "m"
    cub = tmp_path / "c.csv"
    cub.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n"
                   "1,5,4,-3,1,1,1\n2,14,10,-4,1,1,1\n3,9,12,-6,1,1,1\n")
    base = ["mmt", "invert", str(h5), "--entry", "vol", "--grains", str(cub)]
    assert main([*base, "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "entry 'vol'" in err and "sensor 1 µm thick" in err
    assert "--model dipole, quadrupole or octupole" in err and "--sensor-thickness-um 0" in err
    assert not (tmp_path / "r.csv").exists()
    assert main([*base, "--out", str(tmp_path / "r.csv"), "--sensor-thickness-um", "0"]) == 0
    assert main([*base, "--out", str(tmp_path / "d.csv"), "--model", "dipole",
                 "--result-entry", "vol_dipole"]) == 0


def test_a_mask_shape_that_excludes_nothing_is_warned_of_on_stderr(tmp_path, capsys):
    import json

    h5 = imported(tmp_path, "qdm")
    shapes = tmp_path / "m.json"
    shapes.write_text(json.dumps({"rectangles_um": [[500, 600, 500, 600]]}))  # off the scan
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "points",
                 "--grains", str(DATA / "grains_points.txt"), "--mask", str(shapes),
                 "--out", str(tmp_path / "r.csv")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warned == [f"smm-daq: warning: {shapes}: excludes no pixel of scan 'qdm': "
                      "rectangles_um[0] covers no pixel centre of it (it spans x 0 .. 19 µm, "
                      "y 0 .. 15 µm); expected shapes over its bad pixels, in µm. Every measured "
                      "pixel is used"]


def test_a_points_file_read_as_cuboids_names_the_format_that_fits(tmp_path, capsys):
    h5 = imported(tmp_path, "qdm")
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grains",
                 str(DATA / "grains_points.txt"), "--out", str(tmp_path / "r.csv")]) == 2
    assert "it looks like a points file (--grain-format points)" in capsys.readouterr().err


def test_a_damaged_mask_image_and_a_directory_of_grains_are_refused_by_name(tmp_path, capsys):
    h5 = imported(tmp_path, "qdm")
    cut = tmp_path / "bad.png"
    cut.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00")  # a PNG cut short
    base = ["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "points",
            "--out", str(tmp_path / "r.csv")]
    assert main([*base, "--grains", str(DATA / "grains_points.txt"), "--mask", str(cut)]) == 2
    assert f"{cut}: is not a readable image" in capsys.readouterr().err
    assert main([*base, "--grains", str(tmp_path)]) == 2
    assert f"{tmp_path}: is a directory; expected a grain file" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_crop_to_scan_of_a_joint_inversion_keeps_the_grains_under_every_scan(tmp_path):
    """Two scans side by side, a grain under each: cropped to the first scan alone, the grain
    under the second was dropped and its field fitted into the other; the crop spans both."""
    from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
    from smm_daq.analysis.mmt.solver.inversion import forward
    from smm_daq.storage.mapdata import MapData
    from smm_daq.storage.nexus import write_map_entry

    um = 1e-6
    pos = np.array([[10, 10, -3], [40, 10, -3]]) * um
    vol = np.array([4.0, 4.0]) * um**3
    m = np.array([[2e3, -1e3, 3e3], [-1e3, 2e3, 2e3]])
    model = MultipoleModel.build(point_grains(pos, vol, np.array([1, 2])), Sensor(), "dipole")
    h5 = tmp_path / "s.h5"
    y = np.arange(0.0, 21.0) * um
    for name, x0 in (("west", 0.0), ("east", 30.0)):
        x = (x0 + np.arange(0.0, 21.0)) * um
        X, Y = np.meshgrid(x, y)
        bz = forward(model, np.c_[X.ravel(), Y.ravel(), np.full(X.size, 2 * um)], m)
        write_map_entry(h5, MapData(bz=bz.reshape(X.shape), x=x, y=y, height=2 * um,
                                    sensor_size=(0.0, 0.0), name=name), kind="scan")
    cc = tmp_path / "cc.csv"
    cc.write_text("Label Index;Voxel count;Volume (µm³);Center Of Mass X (µm);"
                  "Center Of Mass Y (µm);Center Of Mass Z (µm)\n"
                  "1;100;4;10;10;97\n2;100;4;40;10;97\n", encoding="utf-8")
    out = tmp_path / "g.csv"
    assert main(["mmt", "invert", str(h5), "--entry", "west", "--entry", "east",
                 "--grain-format", "dragonfly", "--grains", str(cc), "--z-top-um", "100",
                 "--crop-to-scan", "--sigma-nT", "1,1", "--out", str(out)]) == 0
    rows = read_csv(out)
    assert [r["grain"] for r in rows] == ["1", "2"]
    assert abs(float(rows[0]["mz_A_per_m"]) - 3e3) < 1.0
    with h5py.File(h5) as f:
        np.testing.assert_allclose(f["west_mmt/process/parameters/crop"][()],
                                   np.array([0, 50, 0, 20]) * um)
        # the reach beyond the window: each grain's depth plus the scans' sensor height
        assert abs(f["west_mmt/process/parameters/crop_height"][()] - 2 * um) < 1e-18


def test_library_out_without_npz_writes_the_name_checked(tmp_path, capsys):
    """np.savez added ".npz" to a name lacking it: `--library-out r` was checked as r but
    replaced r.npz, also without --overwrite."""
    h5 = imported(tmp_path, "qdm")
    kept = tmp_path / "r.npz"
    kept.write_bytes(b"an earlier result")
    lib = tmp_path / "r"
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "mpe",
                 "--grains", str(NPZ), "--out", str(tmp_path / "r.csv"),
                 "--library-out", str(lib)]) == 0
    assert kept.read_bytes() == b"an earlier result"
    assert np.load(lib)["identifier"].tolist() == [1, 2, 3]


@pytest.mark.parametrize(("option", "value", "said"), [
    ("--height-um", "1e12", "--height-um is 1000000000000.0; expected 0.001 to 1e+06 µm"),
    ("--height-um", "2,1e308", "--height-um is 1e+308; expected 0.001 to 1e+06 µm"),
    ("--sigma-nT", "1e12", "--sigma-nT is 1000000000000.0; expected 1e-09 to 1e+09 nT"),
], ids=["height", "one entry's height", "sigma"])
def test_point_and_joint_inversions_bound_height_and_sigma_as_the_cuboid_one(
        tmp_path, capsys, option, value, said):
    """A height of 1,000 km (µm typed twice, or a typo) and a σ of a kilotesla had been taken by
    the point-grain and joint inversions, which only asked for numbers > 0, and written into a
    result (grains unresolved from so high; SDs of kilotesla noise); the cuboid inversion of one
    scan refused them."""
    h5 = imported(tmp_path, "a", "b")
    before = h5.read_bytes()
    entries = ["--entry", "a", "--entry", "b"] if "," in value else ["--entry", "a"]
    out = tmp_path / "r.csv"
    assert main(["mmt", "invert", str(h5), *entries, "--grain-format", "mpe", "--grains",
                 str(NPZ), option, value, "--out", str(out)]) == 2
    assert said in capsys.readouterr().err
    assert h5.read_bytes() == before and not out.exists()
