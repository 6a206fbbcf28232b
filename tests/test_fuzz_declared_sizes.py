"""Fuzzing what a file says it holds against what it holds, which the other fuzz tests leave
out: a session file's map of 10^6 × 10^6 pixels (a chunked dataset of fill values: a few kB
on disk), a text of as many characters, a mask .npy and the multipole library's NPZ arrays
whose header states more values than the file holds. Reading them asked NumPy for terabytes
(a MemoryError and a traceback, or, where the system lets the allocation through, the memory
filled). Each must be refused with one message naming the file, exit 2, no traceback, every
file unchanged and nothing written.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from fuzz_harness import Case, run_all
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

N = 12
X = np.arange(N) * 10e-6
BZ = 1e-6 * np.exp(-((X[None, :] - 55e-6) ** 2 + (X[:, None] - 55e-6) ** 2) / 4e-10)
BIG = 10**6


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session file with the scans 'ok' and 'bad' (spoiled in each case's copy)."""
    path = tmp_path_factory.mktemp("sizes") / "base.h5"
    for name in ("ok", "bad"):
        write_map_entry(path, MapData(BZ, X, X, height=20e-6, sensor_size=(0.0, 0.0),
                                      applied_field=np.array([0.0, 4e-5, 0.0]), name=name),
                        kind="scan")
    return path


def _huge_map(f: h5py.File) -> None:
    """Bz of BIG × BIG never written (each chunk its fill value), with axes to match."""
    for name in ("Bz", "x", "y"):
        del f[f"bad/data/{name}"]
    f.create_dataset("bad/data/Bz", shape=(BIG, BIG), dtype="f8", chunks=(64, 64),
                     fillvalue=np.nan)
    f["bad/data/x"] = f["bad/data/y"] = np.arange(BIG) * 1e-6


def test_a_map_larger_than_any_scan_is_refused_before_it_is_read(base: Path,
                                                                  tmp_path: Path) -> None:
    path = tmp_path / "huge.h5"
    shutil.copy(base, path)
    with h5py.File(path, "a") as f:
        _huge_map(f)
    grains = tmp_path / "grains.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,55,55,-10,8,8,8\n")
    out = tmp_path / "out.csv"
    s = str(path)
    commands = {
        "info": ["info", s],
        "export": ["export", s, "--entry", "bad", "--csv", str(out)],
        "subtract": ["subtract", s, "--in-field", "bad", "--remanent", "ok", "--name", "new"],
        "noise": ["noise", s, "--entry", "bad", "--border-um", "20"],
        "crop": ["crop", s, "--entry", "bad", "--name", "new", "--x-um", "0,50",
                 "--y-um", "0,50"],
        "mmt invert": ["mmt", "invert", s, "--entry", "bad", "--grains", str(grains),
                       "--out", str(out)],
    }
    counts, failures = run_all(
        Case("huge map", command, argv, [path, grains], [out],
             [path.name, "'bad'", "(1000000, 1000000)", "at most 25,000,000"])
        for command, argv in commands.items())
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)


@pytest.mark.parametrize("name", ["title", "start_time"])
def test_a_text_of_10_to_the_12_characters_is_refused_unread(base: Path, tmp_path: Path,
                                                             name: str) -> None:
    """A text dataset stating 10^6 × 10^6 bytes was read whole before it was found to be no
    text (a MemoryError)."""
    path = tmp_path / "text.h5"
    shutil.copy(base, path)
    with h5py.File(path, "a") as f:
        del f[f"bad/{name}"]
        f.create_dataset(f"bad/{name}", shape=(BIG, BIG), dtype="S1", chunks=(64, 64))
    out = tmp_path / "x.csv"
    cases = [Case("huge text", f"{name} / {command}", argv, [path], [out],
                  [path.name, "'bad'", f"'{name}'", "(1000000, 1000000)"])
             for command, argv in (
                 ("info", ["info", str(path)]),
                 ("export", ["export", str(path), "--entry", "bad", "--csv", str(out)]))]
    _, failures = run_all(cases)
    assert not failures, "\n".join(failures)


def _header(shape: tuple[int, ...], descr: str) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _npz(**members: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(f"{name}.npy", data)
    return buf.getvalue()


def _npy(values: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, values)
    return buf.getvalue()


PARTICLES = {"particle_positions": _npy(np.array([[55e-6, 55e-6, -10e-6]])),
             "volumes": _npy(np.array([1e-16])), "identifier": _npy(np.array([1]))}
GEOMETRY = {"Scan height Hz": 2e-5, "Scan area x-dimension Sx": 1.2e-4,
            "Scan area y-dimension Sy": 1.2e-4, "Scan x-step Sdx": 1e-5, "Scan y-step Sdy": 1e-5,
            "Sensor origin x": 0.0, "Sensor origin y": 0.0, "Sensor dimensions": []}
# a header stating more than the file holds: from one value too many to 10^12 of them
SHAPES = st.one_of(st.just((BIG, BIG)), st.just((N, N + 1)),
                   st.lists(st.integers(1, 10**6), min_size=1, max_size=3).map(tuple))
KINDS = ("mask", "particles", "particle member", "scan")


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(KINDS), shape=SHAPES, descr=st.sampled_from(["<f8", "|b1", "<i4"]),
       held=st.integers(0, 64))
def test_an_array_header_stating_more_than_the_file_holds_is_refused(
        base: Path, tmp_path: Path, kind: str, shape: tuple[int, ...], descr: str,
        held: int) -> None:
    stated = int(np.prod(shape)) * np.dtype(descr).itemsize
    if stated <= held:
        held = 0  # no data at all, then: the header always states more than there is
    array = _header(shape, descr) + bytes(held)
    session = tmp_path / "s.h5"
    shutil.copy(base, session)
    out = tmp_path / "r.csv"
    grains = tmp_path / "points.txt"
    grains.write_text("5.5e-05 5.5e-05 -1e-05 1e-16 1\n")
    invert = ["mmt", "invert", str(session), "--entry", "ok", "--out", str(out)]
    if kind == "mask":
        bad = tmp_path / "mask.npy"
        bad.write_bytes(array)
        argv = [*invert, "--grains", str(grains), "--grain-format", "points", "--mask", str(bad)]
    elif kind in ("particles", "particle member"):
        bad = tmp_path / "particles.npz"
        members = ({**PARTICLES, "particle_positions": array} if kind == "particles"
                   else {**PARTICLES, "extra": array})
        bad.write_bytes(_npz(**members))
        argv = [*invert, "--grains", str(bad), "--grain-format", "mpe"]
    else:
        bad = tmp_path / "sample.npz"
        bad.write_bytes(_npz(Bz_array=array))
        params = tmp_path / "meta.json"
        params.write_text(json.dumps(GEOMETRY))
        out = tmp_path / "imported.h5"
        argv = ["import", "mpe", str(params), str(bad), "--out", str(out), "--name", "q"]
    _, failures = run_all([Case(kind, f"{shape} {descr} with {held} bytes", argv,
                                [bad, session, grains], [out], [bad.name, "states"])])
    assert not failures, "\n".join(failures)
