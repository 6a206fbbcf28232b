"""`smm-daq info` reads each map's noise floor while it lists the entries, in the listing's
one open of the file (as it reads a scan's runs), not by opening the file again per map
entry (slow on a network disk with many entries); what it prints is as before."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from test_scan_clock import _opens
from test_storage_earlier_staging import _leftover

from smm_daq.analysis.forward import cuboid_bz
from smm_daq.analysis.noise import white_noise_floor
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import read_map, write_map_entry
from smm_daq.storage.scan_entry import ScanEntryWriter

UM = 1e-6
HEIGHT = 20 * UM
GRAINS = "grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,40.0,40.0,-10.0,8.0,8.0,6.0\n"
NOISE = np.random.default_rng(7)


def _map(name: str, bz: np.ndarray, x: np.ndarray, y: np.ndarray,
         field: float = 0.0) -> MapData:
    return MapData(bz=bz, x=x, y=y, height=HEIGHT, sensor_size=(2 * UM, 2 * UM), name=name,
                   applied_field=np.array([0.0, 0.0, field]))


def _session(tmp_path: Path) -> Path:
    """Scans (maps, and one laid out by the scan writer, not yet measured), a subtraction,
    a χ map, an MMT result, a link and an earlier release's leftover."""
    path, grains = tmp_path / "s.h5", tmp_path / "grains.csv"
    grains.write_text(GRAINS)
    x, y = np.arange(0, 80.1, 4) * UM, np.arange(0, 84.1, 4) * UM
    xx, yy = np.meshgrid(x, y)
    sensors = np.c_[xx.ravel(), yy.ravel(), np.full(xx.size, HEIGHT)]
    cuboid = np.array([[40, 40, -10, 8, 8, 6]]) * UM
    bz = cuboid_bz(sensors, cuboid, np.array([[2e4, 0, -3e4]]),
                   sensor_size=(2 * UM, 2 * UM)).reshape(xx.shape)
    for name, field, more in (("scan", 0.0, 0.0), ("rem", 0.0, 0.0), ("inf", 40e-6, 2e-9)):
        write_map_entry(path, _map(name, bz + more * xx / UM + NOISE.normal(0, 5e-8, bz.shape),
                                   x, y, field), kind="scan")
    ScanEntryWriter.create(path, name="laid_out", title="t", x=x[:4], y=y[:3],
                           field=np.zeros(3), height=HEIGHT, plan_text="{}",
                           profile=load_profile(), snapshot={})
    assert main(["subtract", str(path), "--in-field", "inf", "--remanent", "rem", "--name",
                 "induced", "--no-register"]) == 0
    assert main(["susceptibility", str(path), "--entry", "induced", "--name", "chi",
                 "--thickness-um", "10", "--noise-nT", "50"]) == 0
    assert main(["mmt", "invert", str(path), "--entry", "scan", "--grains", str(grains),
                 "--out", str(tmp_path / "r.csv")]) == 0
    with h5py.File(path, "a") as f:
        f["alias"] = h5py.SoftLink("/rem")
    _leftover(path, "earlier")
    return path


def test_info_lists_each_noise_floor_as_read_from_the_map(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _session(tmp_path)
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    parts = {line.split("  ")[1]: line.split("  ")[2:] for line in lines[1:]
             if line.startswith("  ") and not line.startswith("  unfinished")
             and not line.startswith("  not an entry")}
    assert sorted(parts) == ["chi", "induced", "inf", "laid_out", "rem", "scan", "scan_mmt"]
    for name in ("scan", "rem", "inf", "induced"):
        sigma = white_noise_floor(read_map(path, name).bz)
        assert f"noise floor {sigma / 1e-6:.3g} µT" in parts[name], (name, parts[name])
    assert "noise floor -" in parts["laid_out"]  # nothing measured yet
    for name in ("chi", "scan_mmt"):  # a model's map has no noise
        assert not any(p.startswith("noise floor") for p in parts[name])
    assert any("'earlier'" in line and "unfinished" in line for line in lines)
    assert any(line.startswith("  not an entry: 'alias'") for line in lines)


def test_info_reads_the_noise_floors_in_its_one_listing_open(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A map entry or an MMT result more costs `info` no open of the file: a map's noise
    floor and a result (its grains, model, σ and cond(Q)) are read in the listing's open.
    The output is that of the same file read entry by entry."""
    path = _session(tmp_path)
    opens = _opens(monkeypatch, lambda: main(["info", str(path)]))
    capsys.readouterr()
    copied = ("rem", "inf", "induced", "chi", "scan_mmt")
    with h5py.File(path, "a") as f:
        for name in copied:
            f.copy(f[name], f"{name}_copy")
    assert _opens(monkeypatch, lambda: main(["info", str(path)])) == opens
    lines = {part[1]: part[2] for part in (line.split("  ", 2) for line in
                                            capsys.readouterr().out.splitlines())
             if len(part) == 3 and not part[0]}
    assert "1 grain (cuboid), σ " in lines["scan_mmt"]
    for name in copied:
        assert lines[f"{name}_copy"] == lines[name]


def test_info_refuses_a_map_it_cannot_read_with_the_readers_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Read in the listing, a map the reader refuses still stops `info` at its entry, with
    `read_map`'s message (exit 2), the entries before it listed."""
    path = _session(tmp_path)
    with h5py.File(path, "a") as f:
        f["inf/data/Bz"].attrs["units"] = "furlong"
    with pytest.raises(InputError) as refused:
        read_map(path, "inf")
    capsys.readouterr()
    assert main(["info", str(path)]) == 2
    out, err = capsys.readouterr()
    assert [line.split("  ")[1] for line in out.splitlines()[1:]] == ["scan", "rem"]
    assert f"error: {refused.value}" in err and "Traceback" not in err
