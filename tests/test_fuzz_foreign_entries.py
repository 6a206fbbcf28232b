"""Fuzzing the names commands write to, in session files another tool has written into: a
group, a dataset, an NXentry of another program, a soft link to a scan, links to nothing.
Every command that writes an entry, --overwrite given, must refuse to replace what it did not
write, with one message naming the file and the name, exit 2, no traceback, and the file
unchanged. The counts are printed (pytest -s).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
from fuzz_harness import Case, run_all

from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

N = 12
NAME = "new"


def _base(path: Path) -> Path:
    x = np.arange(N) * 10e-6
    bz = 1e-6 * np.exp(-((x[None, :] - 55e-6) ** 2 + (x[:, None] - 55e-6) ** 2) / 4e-10)
    for name, field in (("ok", 0.0), ("in", 40e-6)):
        write_map_entry(path, MapData(bz, x, x, height=20e-6, sensor_size=(0.0, 0.0),
                                      applied_field=np.array([0.0, field, 0.0]), name=name),
                        kind="scan")
    return path


def _entry_of(program: str) -> Callable[[h5py.File], None]:
    def spoil(f: h5py.File) -> None:
        g = f.create_group(NAME)
        g.attrs.update({"NX_class": "NXentry", "kind": "induced"})
        g["program_name"] = program
        g["data/Bz"] = np.zeros((N, N))
    return spoil


FOREIGN: dict[str, Callable[[h5py.File], None]] = {
    "a group": lambda f: f.create_group(NAME).create_dataset("v", data=[1, 2]),
    "a dataset": lambda f: f.create_dataset(NAME, data=[1.0]),
    "an NXentry without a program": lambda f: f.create_group(NAME).attrs.update(
        {"NX_class": "NXentry", "kind": "induced"}),
    "an NXentry of another program": _entry_of("nexpy"),
    "a soft link to a scan": lambda f: f.__setitem__(NAME, h5py.SoftLink("/ok")),
    "a soft link to nothing": lambda f: f.__setitem__(NAME, h5py.SoftLink("/nowhere")),
    "an external link to nothing": lambda f: f.__setitem__(
        NAME, h5py.ExternalLink("missing.h5", "/x")),
}


def _commands(s: str, tmp: Path) -> dict[str, list[str]]:
    params = tmp / "params.json"
    params.write_text(json.dumps({
        "Sensor center domain LL-x-y": [0.0, 0.0], "Sensor center domain UR-x-y": [3e-6, 2e-6],
        "Scan spacing": 1e-6, "Scan delta-x": 5e-7, "Scan delta-y": 5e-7,
        "Scan height": 6e-6}))
    scan_map = tmp / "map.txt"
    scan_map.write_text("1e-6 2e-6 3e-6 4e-6\n" * 3)
    return {
        "subtract": ["subtract", s, "--in-field", "in", "--remanent", "ok", "--name", NAME,
                     "--no-register", "--overwrite"],
        "crop": ["crop", s, "--entry", "ok", "--name", NAME, "--x-um", "0,50", "--y-um",
                 "0,50", "--overwrite"],
        "level": ["level", s, "--entry", "ok", "--name", NAME, "--border-um", "20",
                  "--overwrite"],
        # the noise given: GCV on this coarse noiseless peak falls to its floor, which is
        # refused before the write (the entry's name is what is fuzzed here)
        "susceptibility": ["susceptibility", s, "--entry", "in", "--name", NAME,
                           "--thickness-um", "10", "--noise-nT", "1", "--overwrite"],
        "import mmt-scan": ["import", "mmt-scan", str(scan_map), "--params", str(params),
                            "--out", s, "--name", NAME, "--overwrite"],
        "scan": ["scan", "--center-um", "12500,12500", "--size-um", "20,20", "--step-um", "10",
                 "--name", NAME, "--out", s],
    }


def _cases(tmp: Path) -> Iterator[Case]:
    base = _base(tmp / "base.h5")
    for i, (label, spoil) in enumerate(FOREIGN.items()):
        for j, (command, argv) in enumerate(_commands("PATH", tmp).items()):
            path = tmp / f"f{i}_{j}.h5"
            shutil.copy(base, path)
            with h5py.File(path, "a") as f:
                spoil(f)
            argv = [str(path) if a == "PATH" else a for a in argv]
            yield Case("session file (foreign entry)", f"{label} / {command}", argv, [path], [],
                       [path.name, f"'{NAME}'"])


def test_nothing_another_tool_wrote_is_ever_overwritten(tmp_path: Path) -> None:
    counts, failures = run_all(_cases(tmp_path))
    print(counts)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)
