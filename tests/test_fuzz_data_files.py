"""Fuzzing session files: entries of the wrong kind or shape, corrupt and truncated HDF5.

Every analysis command (info, export, subtract, background, level, noise, crop,
susceptibility, magnetization, mmt invert) is run on each malformed file; each must refuse it
with one message naming the file and entry, exit 2, and leave the file as it was.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from fuzz_harness import Case, run_all

from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

N = 12
STEP = 10e-6
PER_FILE = 4  # commands besides info run on each malformed file


def _map(name: str) -> MapData:
    x = np.arange(N) * STEP
    rng = np.random.default_rng(1)
    bz = 1e-6 * np.exp(-((x[None, :] - 60e-6) ** 2 + (x[:, None] - 50e-6) ** 2) / 4e-10) \
        + 1e-9 * rng.standard_normal((N, N))
    return MapData(bz, x, x, height=20e-6, sensor_size=(0.0, 0.0),
                   applied_field=np.array([0.0, 40e-6, 0.0]), name=name, title=name)


def _base(path: Path) -> Path:
    """A session file with two good entries, 'ok' and 'bad' (about to be spoiled)."""
    for name in ("ok", "bad"):
        write_map_entry(path, _map(name), kind="scan")
        with h5py.File(path, "a") as f:
            f[f"{name}/data/line_done"] = np.ones(N, dtype=bool)
    return path


def _replace(path: str, value: object) -> Callable[[h5py.File], None]:
    def spoil(f: h5py.File) -> None:
        if path in f:
            del f[path]
        if isinstance(value, str) and value == "group":
            f.create_group(path)
        elif value is not None:
            f[path] = value
    return spoil


def _attr(name: str, value: object) -> Callable[[h5py.File], None]:
    def spoil(f: h5py.File) -> None:
        f["bad"].attrs[name] = value
    return spoil


X = np.arange(N) * STEP
# What is wrong with entry 'bad': every command that reads it must refuse the file.
SPOILED: dict[str, Callable[[h5py.File], None]] = {
    "Bz a group": _replace("bad/data/Bz", "group"),
    "Bz a string": _replace("bad/data/Bz", "hello"),
    "Bz a number": _replace("bad/data/Bz", 1.0),
    "Bz 1-D": _replace("bad/data/Bz", np.zeros(N)),
    "Bz 3-D": _replace("bad/data/Bz", np.zeros((2, N, N))),
    "Bz zero rows": lambda f: (_replace("bad/data/Bz", np.zeros((0, N)))(f),
                               _replace("bad/data/y", np.zeros(0))(f)),
    "Bz zero columns": lambda f: (_replace("bad/data/Bz", np.zeros((N, 0)))(f),
                                  _replace("bad/data/x", np.zeros(0))(f)),
    "Bz wrong shape": _replace("bad/data/Bz", np.zeros((N, N + 1))),
    "Bz complex": _replace("bad/data/Bz", np.zeros((N, N), complex)),
    "Bz infinite": _replace("bad/data/Bz", np.full((N, N), np.inf)),
    "Bz 1e308 T": _replace("bad/data/Bz", np.full((N, N), 1e308)),

    "x NaN": _replace("bad/data/x", np.full(N, np.nan)),
    "x one NaN": _replace("bad/data/x", np.where(np.arange(N) == 3, np.nan, X)),
    "x constant": _replace("bad/data/x", np.zeros(N)),
    "x decreasing": _replace("bad/data/x", X[::-1].copy()),
    "x uneven": _replace("bad/data/x", X ** 2 / STEP),
    "x 1e308 m": _replace("bad/data/x", X * 1e308),
    "x a string": _replace("bad/data/x", "x"),
    "x a group": _replace("bad/data/x", "group"),
    "y 2-D": _replace("bad/data/y", np.zeros((N, 1))),
    "y missing": _replace("bad/data/y", None),
    "sensor size one element": _replace("bad/instrument/sensor/size", np.array([1e-6])),
    "sensor size NaN": _replace("bad/instrument/sensor/size", np.array([np.nan, 1e-6])),
    "sensor size negative": _replace("bad/instrument/sensor/size", np.array([-1e-6, 1e-6])),
    "sensor size a string": _replace("bad/instrument/sensor/size", "big"),
    "sensor height negative": _replace("bad/instrument/sensor/height", -1e-5),
    "sensor height zero": _replace("bad/instrument/sensor/height", 0.0),
    "sensor height NaN": _replace("bad/instrument/sensor/height", np.nan),
    "sensor height 1e308 m": _replace("bad/instrument/sensor/height", 1e308),
    "sensor height an array": _replace("bad/instrument/sensor/height", np.ones(3)),
    "sensor height a group": _replace("bad/instrument/sensor/height", "group"),
    "field two components": _replace("bad/sample/magnetic_field", np.ones(2)),
    "field a string": _replace("bad/sample/magnetic_field", "north"),
    "field NaN": _replace("bad/sample/magnetic_field", np.full(3, np.nan)),
    "line_done a group": _replace("bad/data/line_done", "group"),
    "line_done a string": _replace("bad/data/line_done", "yes"),
    "line_done too short": _replace("bad/data/line_done", np.ones(2, dtype=bool)),
    "data a dataset": _replace("bad/data", np.zeros(3)),
    "instrument a dataset": _replace("bad/instrument", 1.0),
    "title a group": _replace("bad/title", "group"),
    "status a number": _replace("bad/status", 3.0),
    "sources a number": _attr("sources", 7),
    "kind a number array": _attr("kind", np.arange(3)),
}
# Maps that are well formed but that no analysis can use: the analysis commands refuse them
# (info and export show them as they are).
UNUSABLE: dict[str, Callable[[h5py.File], None]] = {
    "Bz missing": _replace("bad/data/Bz", None),  # an entry without a map (info lists it)
    "entry a dataset": _replace("bad", np.zeros(4)),  # not an entry (info skips it)
    "Bz all NaN": _replace("bad/data/Bz", np.full((N, N), np.nan)),
    "one pixel": lambda f: (_replace("bad/data/Bz", np.zeros((1, 1)))(f),
                            _replace("bad/data/x", np.zeros(1))(f),
                            _replace("bad/data/y", np.zeros(1))(f),
                            _replace("bad/data/line_done", np.ones(1, bool))(f)),
}


def _commands(f: Path, grains: Path, out: Path, entry: str = "bad") -> dict[str, list[str]]:
    s = str(f)
    return {
        "info": ["info", s],
        "export": ["export", s, "--entry", entry, "--csv", str(out / "x.csv")],
        "subtract in-field": ["subtract", s, "--in-field", entry, "--remanent", "ok",
                              "--name", "new"],
        "subtract remanent": ["subtract", s, "--in-field", "ok", "--remanent", entry,
                              "--name", "new"],
        "background": ["background", s, "--entry", entry, "--name", "new", "--border-um", "20"],
        "level": ["level", s, "--entry", entry, "--name", "new", "--border-um", "20"],
        "noise": ["noise", s, "--entry", entry, "--border-um", "20"],
        "crop": ["crop", s, "--entry", entry, "--name", "new", "--x-um", "0,50",
                 "--y-um", "0,50"],
        "susceptibility": ["susceptibility", s, "--entry", entry, "--name", "new",
                           "--thickness-um", "10"],
        "magnetization": ["magnetization", s, "--entry", entry, "--name", "new",
                          "--thickness-um", "10", "--direction", "0,0,1"],
        "mmt invert": ["mmt", "invert", s, "--entry", entry, "--grains", str(grains),
                       "--out", str(out / "r.csv")],
    }


@pytest.fixture
def grains(tmp_path: Path) -> Path:
    g = tmp_path / "grains.csv"
    g.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,55,55,-10,8,8,8\n")
    return g


def _cases(tmp_path: Path, grains: Path) -> Iterator[Case]:
    base = _base(tmp_path / "base.h5")
    out = tmp_path / "out"
    out.mkdir()
    # Every spoiled file goes to `info` and to a seeded draw of PER_FILE other commands (all
    # commands read entries through the same reader; the draw covers each many times).
    rng = np.random.default_rng(20261204)
    for table, skip in ((SPOILED, ()), (UNUSABLE, ("info", "export"))):
        for label, spoil in table.items():
            path = tmp_path / f"{label.replace(' ', '_')}.h5"
            shutil.copy(base, path)
            with h5py.File(path, "a") as f:
                spoil(f)
            commands = _commands(path, grains, out)
            others = [c for c in commands if c not in ("info", *skip)]
            drawn = {"info", *rng.choice(others, PER_FILE, replace=False)}
            for command, argv in commands.items():
                if command in skip or command not in drawn:
                    continue
                yield Case("data file (entry)", f"{label} / {command}", argv, [path, grains],
                           [out / "x.csv", out / "r.csv"], [path.name])


def _signatures(data: bytes) -> list[int]:
    """Offsets of the HDF5 metadata structures that carry a checksum."""
    found = []
    for sig in (b"OHDR", b"FRHP", b"FHDB", b"BTHD", b"BTLF", b"BTIN", b"OCHK", b"FSHD"):
        start = 0
        while (i := data.find(sig, start)) >= 0:
            found.append(i)
            start = i + 1
    return sorted(found)


def _corrupt_cases(tmp_path: Path, grains: Path) -> Iterator[Case]:
    base = _base(tmp_path / "base.h5")
    data = base.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    spoiled: dict[str, bytes] = {
        "empty file": b"",
        "text file": b"grain,x_um\n1,2\n",
        "signature broken": b"\x00" + data[1:],
        "superblock version 9": data[:8] + b"\x09" + data[9:],
        "superblock checksum": data[:44] + bytes(b ^ 0xFF for b in data[44:48]) + data[48:],
        "end-of-file address": data[:28] + b"\xff" * 8 + data[36:],
    }
    for frac in (0.02, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.99):
        spoiled[f"truncated at {frac:.0%}"] = data[: int(len(data) * frac)]
    rng = np.random.default_rng(20261204)
    sigs = _signatures(data)
    for i in rng.choice(len(sigs), size=min(12, len(sigs)), replace=False):
        at = sigs[i] + int(rng.integers(5, 12))
        spoiled[f"checksum error at byte {at}"] = data[:at] + bytes([data[at] ^ 0x5A]) \
            + data[at + 1:]
    for label, content in spoiled.items():
        path = tmp_path / f"{label.replace(' ', '_').replace('%', 'pc')}.h5"
        path.write_bytes(content)
        commands = {**_commands(path, grains, out, entry="ok"),
                    "scan into it": ["scan", "--center-um", "12500,12500", "--size-um", "20,20",
                                     "--step-um", "10", "--name", "s2", "--out", str(path)]}
        others = [c for c in commands if c not in ("info", "subtract remanent")]
        drawn = {"info", *rng.choice(others, PER_FILE, replace=False)}
        for command, argv in commands.items():
            if command not in drawn:
                continue
            yield Case("data file (corrupt)", f"{label} / {command}", argv, [path, grains],
                       [out / "x.csv", out / "r.csv"], [path.name])


def test_every_malformed_entry_is_refused_by_the_commands_that_read_it(tmp_path: Path,
                                                                       grains: Path):
    counts, failures = run_all(_cases(tmp_path, grains))
    print(counts)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)


def test_every_corrupt_or_truncated_file_is_refused_and_never_written(tmp_path: Path,
                                                                       grains: Path):
    counts, failures = run_all(_corrupt_cases(tmp_path, grains))
    print(counts)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)
