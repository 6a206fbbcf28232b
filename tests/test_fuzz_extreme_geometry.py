"""Fuzzing a session file's geometry with values at the ends of what a float holds, which the
other fuzz tests leave out: axes of 1e-300 m steps, pixels a million times longer than they
are wide, a sensor 1e-300 m above the sample, an applied field of 1e308 T. Each command must
refuse what it cannot use with one message naming the file and entry (the value as the file
gives it, not as an option the user never gave), exit 2, no traceback and no warning of an
overflow, the file unchanged and nothing written.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from fuzz_harness import Case, run_all

from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

N = 12
X = np.arange(N) * 10e-6
BZ = 1e-6 * np.exp(-((X[None, :] - 55e-6) ** 2 + (X[:, None] - 55e-6) ** 2) / 4e-10)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("extreme") / "base.h5"
    for name in ("ok", "bad"):
        write_map_entry(path, MapData(BZ, X, X, height=20e-6, sensor_size=(0.0, 0.0),
                                      applied_field=np.array([0.0, 4e-5, 0.0]), name=name),
                        kind="scan")
    return path


def _axis(values: np.ndarray) -> Callable[[h5py.File], None]:
    def spoil(f: h5py.File) -> None:
        del f["bad/data/x"]
        f["bad/data/x"] = values
    return spoil


def _set(name: str, value: object) -> Callable[[h5py.File], None]:
    def spoil(f: h5py.File) -> None:
        f[name][...] = value
    return spoil


def _spoiled(base: Path, folder: Path, label: str, spoil: Callable[[h5py.File], None]) -> Path:
    path = folder / f"{label}.h5"
    shutil.copy(base, path)
    with h5py.File(path, "a") as f:
        spoil(f)
    return path


def _layer(path: Path, command: str) -> list[str]:
    extra = ["--direction", "0,0,1"] if command == "magnetization" else []
    return [command, str(path), "--entry", "bad", "--name", "new", "--thickness-um", "10",
            *extra]


@pytest.mark.parametrize("command", ["susceptibility", "magnetization"])
@pytest.mark.parametrize(("label", "spoil", "mention"), [
    # the padding of 8 heights came to 4.8e296 pixels: an OverflowError in scipy's FFT sizes
    ("steps of 1e-300 m", _axis(np.arange(N) * 1e-300), "4.8e+296 × 68 pixels"),
    # pixels 1 m × 10 µm: the transfer's near field, sampled at 10 µm across 128 m, asked
    # for 49 GiB (a MemoryError)
    ("steps of 1 m across 10 µm", _axis(np.arange(N) * 1.0), "closer to square"),
])
def test_a_layer_on_a_grid_no_inversion_can_hold_is_refused(
        base: Path, tmp_path: Path, command: str, label: str,
        spoil: Callable[[h5py.File], None], mention: str) -> None:
    path = _spoiled(base, tmp_path, label.replace(" ", "_"), spoil)
    _, failures = run_all([Case("layer", f"{label} / {command}", _layer(path, command), [path],
                                [], [path.name, "'bad'", mention])])
    assert not failures, "\n".join(failures)


def test_a_sensor_height_the_file_gives_is_named_as_the_files(base: Path,
                                                              tmp_path: Path) -> None:
    """The cuboid inversion said '--height-um is None' of a height read from the entry."""
    path = _spoiled(base, tmp_path, "low", _set("bad/instrument/sensor/height", 1e-300))
    grains = tmp_path / "grains.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,55,55,-10,8,8,8\n")
    out = tmp_path / "r.csv"
    argv = ["mmt", "invert", str(path), "--entry", "bad", "--grains", str(grains),
            "--out", str(out)]
    _, failures = run_all([Case("height", "1e-300 m", argv, [path, grains], [out],
                                [path.name, "entry 'bad'", "1e-294 µm", "give --height-um"])])
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("command", ["info", "export", "noise"])
def test_an_applied_field_of_1e308_tesla_is_refused_without_an_overflow(
        base: Path, tmp_path: Path, command: str) -> None:
    """Its norm (and `info`'s listing in µT) overflowed, a RuntimeWarning on stderr, before it
    was refused."""
    path = _spoiled(base, tmp_path, "field", _set("bad/sample/magnetic_field", 1e308))
    out = tmp_path / "x.csv"
    argv = {"info": ["info", str(path)],
            "export": ["export", str(path), "--entry", "bad", "--csv", str(out)],
            "noise": ["noise", str(path), "--entry", "bad", "--border-um", "20"]}[command]
    _, failures = run_all([Case("field", f"1e308 T / {command}", argv, [path], [out],
                                [path.name, "'bad'", "applied field"])])
    assert not failures, "\n".join(failures)
