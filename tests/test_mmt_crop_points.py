"""`mmt invert --crop-to-scan` with every point-grain format (points, mpe), by the rule a
Dragonfly export is cropped with; refused with cuboid grains."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main

DATA = Path(__file__).parent / "data"
JSON = DATA / "MetaDict_mpe_demo.json"
NPZ = DATA / "MagneticSample_mpe_demo.npz"
FAR = np.array([0.05, 0.05, -3e-6])  # 5 cm off the 20 × 16 µm scan: no field on it


def _grain_files(tmp_path: Path) -> dict[str, Path]:
    """The demo's three particles and one far beyond the scan, as a point list and an NPZ."""
    demo = np.load(NPZ)
    pos = np.vstack([demo["particle_positions"], FAR])
    vol = np.r_[demo["volumes"], 2e-18]
    labels = np.arange(1, 5)
    points = tmp_path / "g.txt"
    np.savetxt(points, np.column_stack([pos, vol, labels]))
    npz = tmp_path / "g.npz"
    np.savez(npz, particle_positions=pos, volumes=vol, identifier=labels.astype(float))
    return {"points": points, "mpe": npz}


@pytest.mark.parametrize("fmt", ["points", "mpe"])
def test_crop_to_scan_drops_the_grains_that_cannot_reach_the_scan(tmp_path, capsys, fmt):
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(h5), "--name", "qdm"]) == 0
    grains = _grain_files(tmp_path)[fmt]
    out = tmp_path / "r.csv"
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", fmt,
                 "--grains", str(grains), "--sigma-nT", "1", "--crop-to-scan",
                 "--out", str(out)]) == 0
    rows = out.read_text().splitlines()[1:]
    assert sorted(int(r.split(",")[0]) for r in rows) == [1, 2, 3]
    with h5py.File(h5) as f:
        params = f["qdm_mmt/process/parameters"]
        assert params["crop_to_scan"][()] == 1
        window = params["crop"][()]
        assert params["crop_noise"][()] == pytest.approx(1e-9)
        assert "min_voxels" not in params  # no Dragonfly option was used
    assert window == pytest.approx([0, 19e-6, 0, 15e-6], abs=1e-12)  # the point sensors


def test_crop_to_scan_is_refused_with_cuboid_grains(tmp_path, capsys):
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(h5), "--name", "qdm"]) == 0
    grains = tmp_path / "g.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,5,4,-3,1,1,1\n")
    before = h5.read_bytes()
    capsys.readouterr()
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grains", str(grains),
                 "--crop-to-scan", "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "--crop-to-scan given with --grain-format cuboids" in err
    assert "--grain-format points, mpe, dragonfly" in err
    assert h5.read_bytes() == before and not (tmp_path / "r.csv").exists()


def test_crop_magnetization_keeps_an_iron_grain_of_a_point_list_and_is_recorded(
        tmp_path, capsys):
    """At 100 µm above the top with σ 250 nT, a 10 µm³ grain 10 µm deep and 300 µm beyond the
    scan's edge could put 17 nT on it as magnetite (under a tenth of σ) but 61 nT as iron: a
    point list's crop keeps it at 1710 kA/m, drops it at the default 480, and records which."""
    from smm_daq.storage.mapdata import MapData
    from smm_daq.storage.nexus import write_map_entry

    um, nt = 1e-6, 1e-9
    x, y = np.arange(0, 50.1, 5) * um, np.arange(0, 40.1, 5) * um
    bz = 250 * nt * np.random.default_rng(7).standard_normal((y.size, x.size))
    h5 = tmp_path / "s.h5"
    write_map_entry(h5, MapData(bz=bz, x=x, y=y, height=100 * um, name="scan"), kind="scan")
    grains = tmp_path / "g.txt"
    np.savetxt(grains, [[20 * um, 20 * um, -10 * um, 1e-18, 1],      # under the scan
                        [350 * um, 20 * um, -10 * um, 10e-18, 2]])  # 300 µm beyond x1
    common = ["mmt", "invert", str(h5), "--entry", "scan", "--grains", str(grains),
              "--grain-format", "points", "--crop-to-scan", "--sigma-nT", "250"]
    for name, extra, kept, recorded in (
            ("iron", ["--crop-magnetization-kA-per-m", "1710"], [1, 2], 1710e3),
            ("magnetite", [], [1], 480e3)):
        out = tmp_path / f"{name}.csv"
        assert main([*common, *extra, "--out", str(out), "--result-entry", name]) == 0, \
            capsys.readouterr().err
        rows = out.read_text().splitlines()[1:]
        assert sorted(int(r.split(",")[0]) for r in rows) == kept
        with h5py.File(h5) as f:
            params = f[f"{name}/process/parameters"]
            assert params["crop_to_scan"][()] == 1
            assert params["crop_magnetization"][()] == recorded
            assert params["crop_magnetization"].attrs["units"] == "A/m"


def test_crop_magnetization_without_a_known_noise_is_refused_naming_the_option(
        tmp_path, capsys):
    """A noiseless map and no --sigma-nT: the crop goes by distance, where a saturation plays
    no part, so --crop-magnetization-kA-per-m would do nothing: refused, saying what would
    make it count, nothing written; with --sigma-nT it is taken."""
    from smm_daq.storage.mapdata import MapData
    from smm_daq.storage.nexus import write_map_entry

    um = 1e-6
    x, y = np.arange(0, 50.1, 5) * um, np.arange(0, 40.1, 5) * um
    X, Y = np.meshgrid(x, y)
    bz = 1e-7 * (1 + X / (50 * um) + Y / (40 * um))  # a plane: no noise floor shows
    h5 = tmp_path / "s.h5"
    write_map_entry(h5, MapData(bz=bz, x=x, y=y, height=100 * um, name="scan"), kind="scan")
    grains = tmp_path / "g.txt"
    np.savetxt(grains, [[20 * um, 20 * um, -10 * um, 1e-18, 1],
                        [30 * um, 10 * um, -12 * um, 2e-18, 2]])
    common = ["mmt", "invert", str(h5), "--entry", "scan", "--grains", str(grains),
              "--grain-format", "points", "--crop-to-scan",
              "--crop-magnetization-kA-per-m", "1710"]
    before = h5.read_bytes()
    out = tmp_path / "r.csv"
    assert main([*common, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--crop-magnetization-kA-per-m is 1710 and no noise is known" in err, err
    assert "expected --sigma-nT" in err and "Traceback" not in err
    assert h5.read_bytes() == before and not out.exists()
    assert main([*common, "--sigma-nT", "5", "--out", str(out)]) == 0, capsys.readouterr().err
    with h5py.File(h5) as f:
        assert f["scan_mmt/process/parameters/crop_magnetization"][()] == 1710e3
