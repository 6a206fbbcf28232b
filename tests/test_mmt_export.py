"""`smm-daq mmt export`: a saved MMT result's per-grain CSV and multipole-library NPZ, the same
bytes as `mmt invert --out/--library-out` wrote for it."""

from __future__ import annotations

from pathlib import Path

from smm_daq.cli.main import main

DATA = Path(__file__).parent / "data"
JSON = DATA / "MetaDict_mpe_demo.json"
NPZ = DATA / "MagneticSample_mpe_demo.npz"
CUBOIDS = ("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n"
           "1,5,4,-3,1.2,1.4,1.2\n2,14,10,-4,1.6,1.5,1.7\n3,9,12,-6,1.8,1.7,2\n")


def _imported(tmp_path: Path) -> Path:
    """The demo scan of tests/data imported as entry 'qdm' into a new file."""
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(h5), "--name", "qdm"]) == 0
    return h5


def test_export_of_a_point_model_gives_the_inversion_time_files(tmp_path, capsys):
    h5 = _imported(tmp_path)
    csv_then, npz_then = tmp_path / "then.csv", tmp_path / "then.npz"
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "mpe",
                 "--grains", str(NPZ), "--model", "quadrupole", "--out", str(csv_then),
                 "--library-out", str(npz_then)]) == 0
    csv_now, npz_now = tmp_path / "now.csv", tmp_path / "now.npz"
    assert main(["mmt", "export", str(h5), "--entry", "qdm_mmt", "--csv", str(csv_now),
                 "--library-out", str(npz_now)]) == 0
    assert csv_now.read_bytes() == csv_then.read_bytes()
    assert "q22s_Am3" in csv_now.read_text().splitlines()[0]  # the higher orders too
    assert npz_now.read_bytes() == npz_then.read_bytes()
    said = capsys.readouterr().out
    assert f"wrote {csv_now}" in said and f"wrote {npz_now}" in said


def test_export_of_a_cuboid_result_and_its_refusals(tmp_path, capsys):
    h5 = _imported(tmp_path)
    grains = tmp_path / "g.csv"
    grains.write_text(CUBOIDS)
    then = tmp_path / "then.csv"
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grains", str(grains),
                 "--out", str(then), "--result-entry", "cub"]) == 0
    now, npz = tmp_path / "now.csv", tmp_path / "now.npz"
    capsys.readouterr()
    # the cuboid model has no multipole-library NPZ: refused before anything is written
    assert main(["mmt", "export", str(h5), "--entry", "cub", "--csv", str(now),
                 "--library-out", str(npz)]) == 2
    err = capsys.readouterr().err
    assert "cuboid model" in err and "--model dipole, quadrupole or octupole" in err
    assert not now.exists() and not npz.exists()
    assert main(["mmt", "export", str(h5), "--entry", "cub", "--csv", str(now)]) == 0
    assert now.read_bytes() == then.read_bytes()
    # a scan is no MMT result
    other = tmp_path / "other.csv"
    assert main(["mmt", "export", str(h5), "--entry", "qdm", "--csv", str(other)]) == 2
    assert "not an MMT result; expected an entry of kind 'mmt'" in capsys.readouterr().err
    assert not other.exists()


def test_export_never_overwrites_without_overwrite(tmp_path, capsys):
    h5 = _imported(tmp_path)
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "mpe",
                 "--grains", str(NPZ), "--out", str(tmp_path / "r.csv")]) == 0
    out = tmp_path / "kept.csv"
    out.write_text("mine\n")
    capsys.readouterr()
    assert main(["mmt", "export", str(h5), "--entry", "qdm_mmt", "--csv", str(out)]) == 2
    assert "which exists" in capsys.readouterr().err
    assert out.read_text() == "mine\n"
    assert main(["mmt", "export", str(h5), "--entry", "qdm_mmt", "--csv", str(out),
                 "--overwrite"]) == 0
    assert out.read_bytes() == (tmp_path / "r.csv").read_bytes()
    # `export` takes maps: the table is pointed to this command
    assert main(["export", str(h5), "--entry", "qdm_mmt", "--dataset", "grains",
                 "--csv", str(tmp_path / "t.csv")]) == 2
    assert (f"the per-grain table, not a map; expected `smm-daq mmt export {h5} --entry "
            "qdm_mmt --csv OUT.csv`") in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()
    # nothing to export, the session file named as an output: refused
    assert main(["mmt", "export", str(h5), "--entry", "qdm_mmt"]) == 2
    assert "nothing to export" in capsys.readouterr().err
    assert main(["mmt", "export", str(h5), "--entry", "qdm_mmt", "--csv", str(h5),
                 "--overwrite"]) == 2
    assert h5.stat().st_size > 0



def test_export_of_a_point_result_an_earlier_release_wrote(tmp_path, capsys):
    """An entry without `results/volume` (written before it was stored) exports its grains'
    volumes from the table: the CSV the same bytes, the NPZ equal to rounding. One without
    its coefficients is refused as what it is, not as a result of the cuboid model."""
    import h5py
    import numpy as np

    h5 = _imported(tmp_path)
    csv_then, npz_then = tmp_path / "then.csv", tmp_path / "then.npz"
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "mpe",
                 "--grains", str(NPZ), "--model", "quadrupole", "--out", str(csv_then),
                 "--library-out", str(npz_then)]) == 0
    with h5py.File(h5, "a") as f:
        del f["qdm_mmt/results/volume"]
    csv_now, npz_now = tmp_path / "now.csv", tmp_path / "now.npz"
    assert main(["mmt", "export", str(h5), "--entry", "qdm_mmt", "--csv", str(csv_now),
                 "--library-out", str(npz_now)]) == 0
    assert csv_now.read_bytes() == csv_then.read_bytes()
    with np.load(npz_then) as then, np.load(npz_now) as now:
        assert sorted(now) == sorted(then)
        for key in then:
            np.testing.assert_allclose(now[key], then[key], rtol=1e-12, atol=0)
    with h5py.File(h5, "a") as f:
        del f["qdm_mmt/results/coefficients"], f["qdm_mmt/results/coefficient_covariance"]
    capsys.readouterr()
    again = tmp_path / "again.npz"
    assert main(["mmt", "export", str(h5), "--entry", "qdm_mmt", "--library-out",
                 str(again)]) == 2
    err = capsys.readouterr().err
    assert "a result of the quadrupole model, holds no coefficients" in err, err
    assert "cuboid" not in err and not again.exists()
