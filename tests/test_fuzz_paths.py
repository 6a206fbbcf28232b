"""Fuzzing the file options with paths that are no regular file (grain files, masks, the
multipole library's and the MMT community's scan files, profiles, recipes, session files),
which the other fuzz tests give only to a few readers and never a pipe: a directory, a device
(/dev/null) and a named pipe, whose read would wait for a writer forever. Each must be
refused with one message naming the path and saying what was expected, exit 2, no traceback,
no hang and nothing written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import Case, run_all

from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
N = 12
X = np.arange(N) * 10e-6


def _cases(tmp: Path) -> Iterator[Case]:
    session = tmp / "s.h5"
    bz = 1e-6 * np.exp(-((X[None, :] - 55e-6) ** 2 + (X[:, None] - 55e-6) ** 2) / 4e-10)
    write_map_entry(session, MapData(bz, X, X, height=20e-6, sensor_size=(0.0, 0.0),
                                     applied_field=np.zeros(3), name="ok"), kind="scan")
    grains = tmp / "grains.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,55,55,-10,8,8,8\n")
    pipe = tmp / "pipe"
    os.mkfifo(pipe)
    out, imported, csv = tmp / "r.csv", tmp / "imported.h5", tmp / "x.csv"
    params = tmp / "params.json"
    params.write_text(json.dumps({"Sensor center domain LL-x-y": [0, 0],
                                  "Sensor center domain UR-x-y": [1e-4, 1e-4],
                                  "Scan spacing": 1e-5, "Scan height": 2e-5}))
    s = str(session)
    for label, bad in (("a directory", tmp), ("a device", Path(os.devnull)),
                       ("a named pipe", pipe), ("a name too long", tmp / ("a" * 300))):
        argvs = {
            "mask": ["mmt", "invert", s, "--entry", "ok", "--grains", str(grains), "--mask",
                     str(bad), "--out", str(out)],
            "point list": ["mmt", "invert", s, "--entry", "ok", "--grains", str(bad),
                           "--grain-format", "points", "--model", "dipole", "--out", str(out)],
            "cuboids": ["mmt", "invert", s, "--entry", "ok", "--grains", str(bad),
                        "--out", str(out)],
            "library geometry": ["import", "mpe", str(bad),
                                 str(DATA / "MagneticSample_mpe_demo.npz"), "--out",
                                 str(imported), "--name", "q"],
            "library sample": ["import", "mpe", str(DATA / "MetaDict_mpe_demo.json"), str(bad),
                               "--out", str(imported), "--name", "q"],
            "community map": ["import", "mmt-scan", str(bad), "--params", str(params), "--out",
                              str(imported), "--name", "q"],
            "community parameters": ["import", "mmt-scan", str(params), "--params", str(bad),
                                     "--out", str(imported), "--name", "q"],
            "profile": ["check", "--profile", str(bad)],
            "recipe": ["run", str(bad), "--out", str(imported), "--yes"],
            "session (read)": ["export", str(bad), "--entry", "ok", "--csv", str(csv)],
            "session (info)": ["info", str(bad)],
        }
        for kind, argv in argvs.items():
            yield Case(kind, label, argv, [session], [out, imported, csv],
                       [str(bad), "expected"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_path_that_is_no_regular_file_is_refused_by_every_reader(tmp_path: Path) -> None:
    counts, failures = run_all(_cases(tmp_path))
    print(counts)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_an_output_that_is_no_regular_file_is_refused_saying_what_it_is(tmp_path: Path) -> None:
    """A pipe's write would wait for a reader: refused before any work, for a session file
    also a device (no HDF5 file lives on one). /dev/null as a text output is taken:
    tests/test_output_devnull.py."""
    session = tmp_path / "s.h5"
    write_map_entry(session, MapData(np.zeros((N, N)), X, X, height=20e-6,
                                     sensor_size=(0.0, 0.0), applied_field=np.zeros(3),
                                     name="ok"), kind="scan")
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    cases = [
        Case("output", "CSV", ["export", str(session), "--entry", "ok", "--csv", str(pipe),
                               "--overwrite"], [session], [], ["--csv", "a device or a pipe"]),
        Case("output", "session", ["scan", "--center-um", "12500,12500", "--size-um", "20,20",
                                   "--step-um", "10", "--name", "s", "--out", str(pipe)],
             [session], [], ["--out", "a device or a pipe"]),
        Case("output", "coil calibration", ["calibrate-coils", "--out", str(pipe),
                                            "--overwrite"], [session], [],
             ["--out", "a device or a pipe"]),
    ]
    counts, failures = run_all(cases)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)
